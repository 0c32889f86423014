"""`authgate serve`: run the registry front door (embedded store unless `--upstream`)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from dataclasses import replace
from typing import Any

import uvicorn

from authgate.app import create_app
from authgate.auth.keys import SigningKeyError
from authgate.cli.common import fail, settings_from
from authgate.cli.datadir import DataDirError
from authgate.cli.serve_checks import prepare_to_serve
from authgate.cli.workers import default_workers, export_overrides, run_workers, server_options
from authgate.cli.keys import check_signing_keys
from authgate.http_protocol import fit_open_files, protocol_class
from authgate.identity.base import IdentityConfigError
from authgate.identity.report import check_sources
from authgate.logs import configure_logging
from authgate.tls.serving import expiry_warning
from authgate.tls_probe import quiet_tls_probes

log = logging.getLogger("authgate")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run authgate (listens on port 5000, like the registry image)"
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; $AUTHGATE_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default 5000; $AUTHGATE_PORT)")
    parser.add_argument("--public-url", help="URL clients use to reach authgate ($AUTHGATE_PUBLIC_URL)")
    parser.add_argument("--upstream", help="gateway mode: the upstream registry URL ($AUTHGATE_UPSTREAM)")
    parser.add_argument(
        "--workers", type=int, metavar="N",
        help="processes sharing the port, database and data dir (default: one per CPU core this process may "
             "use, at most 8; $AUTHGATE_WORKERS; see docs/scale-out.md)")
    parser.set_defaults(handler=_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        return fail("--workers must be at least 1", 2)
    settings = settings_from(args, host=args.host, port=args.port, public_url=args.public_url, upstream=args.upstream,
                             workers=args.workers)
    configure_logging(settings.log_level, settings.log_format)
    try:
        settings = prepare_to_serve(settings)  # data directory (created owner only), tls init's certificate, policies
        # Checked before listening, so a missing or unsafe seal key is one clear line, not a startup traceback.
        check_signing_keys(settings)
    except (SigningKeyError, DataDirError) as exc:
        return fail(str(exc))
    from authgate.registry.embedded_s3 import check_object_store  # aiobotocore loads only when used

    problem = check_object_store(settings)  # wrong credentials or bucket: one line naming the setting
    if problem:
        return fail(problem)
    try:
        # An unreachable directory or a refused service account is one line naming the setting.
        sources = check_sources(settings)
    except IdentityConfigError as exc:
        return fail(f"configuration error: {exc}")
    log.info("identity sources, in order: %s", "; ".join(sources))
    if settings.tls_cert:
        log.info("serving HTTPS with %s; token realm %s", settings.tls_cert, settings.realm)
        warning = expiry_warning(settings.tls_cert)
        if warning:
            log.warning(warning)
    elif not _is_loopback(settings.host):
        log.warning(
            "serving plain HTTP on %s: docker on other hosts will refuse it (\"server gave HTTP response to HTTPS "
            "client\"). Run `authgate tls init --host NAME` and restart to serve HTTPS.",
            settings.host,
        )
    max_connections, warning = fit_open_files(settings.max_connections)
    if warning:
        log.warning(warning)
    if not settings.workers:
        settings = replace(settings, workers=default_workers())
        log.info("serving with %d worker process%s (one per CPU core, at most 8; choose with --workers N)",
                 settings.workers, "" if settings.workers == 1 else "es")
    args.workers = settings.workers
    if args.workers > 1:
        export_overrides(args)  # with the count: each worker sizes its share of the password checks by it
        run_workers(settings, args.workers)
        return 0
    uvicorn.run(
        create_app(settings),
        # httptools with headers, bodies and connections bounded (authgate.http_protocol); docker's HTTPS
        # probe on plain HTTP is not logged as a fault
        http=protocol_class(max_connections) if settings.tls_cert else quiet_tls_probes(protocol_class(max_connections)),
        **server_options(settings),
    )
    return 0
