"""`authgate serve --workers N`: what every worker process imports to build its app.

uvicorn starts workers with `spawn`, so each one imports the app factory by name and builds its
own settings the way the parent did: `serve` puts its command-line overrides into the environment
(`AUTHGATE_*`, `AUTHGATE_CONFIG`) before starting them. The workers share the port (one listening
socket), the database and the data dir; what each keeps to itself is listed in docs/scale-out.md.

The default is one worker per core: the login limiter, the account changes and the signing keys are
shared through the database, so N workers behave as one. Capped at `MAX_DEFAULT_WORKERS` because each
worker holds its own caches (~100 MB) and database pool, and PostgreSQL's default `max_connections`
is 100: past that, say `--workers N` on purpose.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from authgate.app import create_app
from authgate.http_protocol import KEEP_ALIVE_TIMEOUT, protocol_class
from authgate.logs import configure_logging
from authgate.settings import Settings, load_settings
from authgate.tls.serving import with_data_dir_tls

MAX_DEFAULT_WORKERS = 8

#: The bounded HTTP protocol at module level, so a worker can import it by name ("module:attribute").
BOUNDED_PROTOCOL = protocol_class()


def http_protocol_name() -> str:
    """What `uvicorn.run(http=...)` takes when the config must cross into spawned processes."""
    return BOUNDED_PROTOCOL if isinstance(BOUNDED_PROTOCOL, str) else f"{__name__}:BOUNDED_PROTOCOL"


def worker_app() -> Starlette:
    """The app of one worker (uvicorn factory)."""
    settings = with_data_dir_tls(load_settings())
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn set up this process's logging before calling us; keep its access log off as `serve` does.
    logging.getLogger("uvicorn.access").propagate = False
    return create_app(settings)


def export_overrides(args: argparse.Namespace) -> None:
    """Hand `serve`'s command-line settings to the workers through their inherited environment."""
    for name in ("host", "port", "public_url", "upstream", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            os.environ[f"AUTHGATE_{name.upper()}"] = str(value)
    if getattr(args, "config", None):
        os.environ["AUTHGATE_CONFIG"] = str(args.config)


def run_workers(settings: Settings, workers: int) -> None:
    """uvicorn's supervisor: binds once, starts `workers` processes, restarts one that dies."""
    uvicorn.run(f"{__name__}:worker_app", factory=True, workers=workers, http=http_protocol_name(),
                **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """What `uvicorn.run` is given by `serve`, with one process or several."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "ssl_certfile": str(settings.tls_cert) if settings.tls_cert else None,
        "ssl_keyfile": str(settings.tls_key) if settings.tls_key else None,
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT,  # longer than clients keep idle connections: they close first
        # The client address is authgate's to work out (`trusted_proxies`, audit.context): uvicorn's own
        # default believes X-Forwarded-For from any loopback peer, so a local process could pick its address.
        "proxy_headers": False,
    }


def default_workers(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """One per core this process may run on: its CPU affinity, and a container's CPU quota (cgroup v2
    `cpu.max`, `docker run --cpus`), which affinity does not show."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, min(cores, MAX_DEFAULT_WORKERS))
