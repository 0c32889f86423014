"""Requests per second of the small requests, authgate beside the references, measured by `wrk`.

    python bench/request_rate.py [--duration 3] [--rounds 2] [--connections 16] [--no-postgres] [--no-gateway]
                                 [--rows /token]

Needs `wrk` (Debian package `wrk`: a C load generator, so the client is not the bottleneck, as an
httpx client at ~300 requests/s was) and `docker-registry` (distribution 2.8); PostgreSQL server
binaries for the PostgreSQL column (skipped without them). Everything listens on loopback; each
measurement lasts `--duration` seconds, so a run is bounded (about rows x columns x rounds x duration).

Columns, all started by this script, one process each:
  bare        a bare starlette endpoint on the same uvicorn settings as authgate: the framework ceiling
  direct      distribution 2.8 (`docker-registry`), no auth: the Go registry authgate is measured against
  embedded    authgate on its embedded store, SQLite
  gateway     authgate in gateway mode in front of the same `direct` registry, SQLite
  pg          authgate on its embedded store, PostgreSQL
Rows: `/token` with Basic credentials already verified (no bcrypt), the refresh grant (POST, a Lua
script sends the form), then with a bearer token (HEAD rows: see `head_rate`): `GET /v2/`, manifest GET and HEAD by tag and by
digest, blob HEAD, tags/list. Ratios: `/token` rows against `bare`, the others against `direct`.
Rounds interleave the columns, and each ratio is of two rates taken seconds apart in the same round:
on a shared machine absolute rates are noisy, ratios much less so. Also printed: each server's CPU
time per request (user + system, from /proc), which load disturbs far less than rates: a
single-process authgate answers at most about 1e6 / that figure requests a second, while
distribution spreads its work over every core. The load average is printed
beside the figures, and the peak RSS (VmHWM) of each authgate process at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import Daemon, Distribution, Postgres, authgate_env, free_port, run_cli, wait_for  # noqa: E402

from blob_throughput import cpu_seconds  # noqa: E402  (a sibling script: bench/ is on sys.path when run)

SERVICE = "bench"
USER, PASSWORD = "bench", "bench-password-123"
REPOSITORY = "bench/app"
SCOPE = f"repository:{REPOSITORY}:pull,push"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = os.urandom(4096)
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _manifest() -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(CONFIG),
                   "size": len(CONFIG)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(LAYER),
                    "size": len(LAYER)}],
    }).encode()


MANIFEST = _manifest()


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    method: str = "GET"
    #: "token" rows are compared with the bare ceiling, "registry" rows with distribution direct.
    reference: str = "direct"
    #: How the request authenticates: "basic", "refresh" (POST form), "bearer".
    auth: str = "bearer"


ROWS = [
    Row("/token Basic, cached", f"/token?service={SERVICE}&scope={SCOPE}", reference="bare", auth="basic"),
    Row("/token refresh grant", "/token", "POST", reference="bare", auth="refresh"),
    Row("GET /v2/", "/v2/"),
    Row("manifest GET by tag", f"/v2/{REPOSITORY}/manifests/v1"),
    Row("manifest GET by digest", f"/v2/{REPOSITORY}/manifests/{digest(MANIFEST)}"),
    Row("manifest HEAD by tag", f"/v2/{REPOSITORY}/manifests/v1", "HEAD"),
    Row("manifest HEAD by digest", f"/v2/{REPOSITORY}/manifests/{digest(MANIFEST)}", "HEAD"),
    Row("blob HEAD", f"/v2/{REPOSITORY}/blobs/{digest(LAYER)}", "HEAD"),
    Row("tags/list", f"/v2/{REPOSITORY}/tags/list"),
]


@dataclass
class Target:
    name: str
    url: str
    #: Which rows it answers: the bare endpoint answers all, distribution no /token.
    serves: Callable[[Row], bool]
    headers: Callable[[Row], dict[str, str]]
    body: Callable[[Row], str] = lambda row: ""
    pid: int | None = None


# -- the servers ----------------------------------------------------------------------------------


def _bare_server(port: int) -> None:
    """Answers every path with a token-sized JSON body, through the same uvicorn settings as `authgate serve`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from authgate.http_protocol import protocol_class

    body = json.dumps({"token": "x" * 600, "expires_in": 300}).encode()

    async def answer(request: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST", "HEAD"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, http=protocol_class())


def _start_authgate(workdir: Path, name: str, **settings: str) -> tuple[Daemon, str]:
    port = free_port()
    # One process, like the bare endpoint: the ratio is per process, and the CPU column reads this pid
    # (`serve` defaults to a worker per core, whose CPU the parent's /proc figures do not hold).
    env = authgate_env(workdir / name, port=str(port), service=SERVICE, log_level="WARNING", token_ttl="3600",
                       workers="1", **settings)
    run_cli(env, "user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
    daemon = Daemon([sys.executable, "-m", "authgate", "serve"], workdir / f"{name}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: httpx.get(f"{url}/healthz").status_code == 200, name, 60, daemon.log)
    return daemon, url


def push_small_image(url: str, headers: dict[str, str], repository: str = REPOSITORY) -> None:
    """One small image (config, one layer, a manifest tagged v1), pushed as a client would."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        for blob in (CONFIG, LAYER):
            started = client.post(f"/v2/{repository}/blobs/uploads/")
            started.raise_for_status()
            location = started.headers["location"]
            separator = "&" if "?" in location else "?"
            client.put(f"{location}{separator}digest={digest(blob)}", content=blob,
                       headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        client.put(f"/v2/{repository}/manifests/v1", content=MANIFEST,
                   headers={"Content-Type": MANIFEST_TYPE}).raise_for_status()


def _credentials(url: str) -> tuple[dict[str, str], str, str]:
    """(Basic header, bearer token for the bench repository, refresh form body)."""
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    login = httpx.get(f"{url}/token", headers=basic, timeout=30,
                      params={"service": SERVICE, "scope": SCOPE, "offline_token": "true", "client_id": "bench"})
    login.raise_for_status()
    form = httpx.QueryParams({"grant_type": "refresh_token", "client_id": "bench", "service": SERVICE,
                              "refresh_token": login.json()["refresh_token"], "scope": SCOPE})
    return basic, login.json()["token"], str(form)


def _authgate_target(name: str, url: str, daemon: Daemon) -> Target:
    basic, bearer, form = _credentials(url)
    push_small_image(url, {"Authorization": f"Bearer {bearer}"})

    def headers(row: Row) -> dict[str, str]:
        if row.auth == "basic":
            return basic
        if row.auth == "refresh":
            return {"Content-Type": "application/x-www-form-urlencoded"}
        return {"Authorization": f"Bearer {bearer}", "Accept": MANIFEST_TYPE}

    return Target(name, url, lambda row: True, headers, lambda row: form if row.auth == "refresh" else "",
                  daemon.process.pid)


# -- wrk ------------------------------------------------------------------------------------------


def _lua(method: str, headers: dict[str, str], body: str) -> str:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    if body:
        lines.append(f'wrk.body = "{body}"')
    return "\n".join(lines) + "\n"


def wrk(url: str, method: str, headers: dict[str, str], body: str, duration: float, connections: int,
        workdir: Path) -> tuple[float, int]:
    """(requests per second, responses that were not 2xx/3xx) over `duration` seconds."""
    script = workdir / "request.lua"
    script.write_text(_lua(method, headers, body))
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result.stdout)
    if rate is None:
        raise RuntimeError(f"wrk said:\n{result.stdout}\n{result.stderr}")
    return float(rate.group(1)), int(errors.group(1)) if errors else 0


async def _head_loop(url: str, headers: dict[str, str], duration: float, connections: int) -> tuple[float, int]:
    parsed = httpx.URL(url)
    lines = [f"HEAD {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}",
             *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    done = errors = 0
    deadline = time.monotonic() + duration

    async def connection() -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while time.monotonic() < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                done += 1
                if not head[9:10] in (b"2", b"3"):
                    errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return done / (time.monotonic() - started), errors


def head_rate(url: str, headers: dict[str, str], duration: float, connections: int) -> tuple[float, int]:
    """(HEAD requests per second, non-2xx/3xx answers): wrk 4.1 waits for a HEAD response's body
    (Content-Length bytes that never come), so HEAD rows use this keep-alive loop on raw sockets, the
    same for every column (it reads only the status line and headers: a few microseconds each)."""
    return asyncio.run(_head_loop(url, headers, duration, connections))


def _peak_rss_mib(pid: int | None) -> float | None:
    """VmHWM of the process and its children (uvicorn runs in the process itself)."""
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) / 1024 if found else None


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _measure(targets: list[Target], args: argparse.Namespace, workdir: Path
             ) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], list[float]], list[float],
                        dict[tuple[str, str], list[float]]]:
    rates: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    ratios: dict[tuple[str, str], list[float]] = {}
    loads: list[float] = []
    for number in range(args.rounds):
        loads.append(os.getloadavg()[0])
        order = targets if number % 2 == 0 else targets[::-1]
        for row in ROWS:
            measured: dict[str, float] = {}
            for target in order:
                if not target.serves(row):
                    continue
                cpu_before = cpu_seconds(target.pid)
                if row.method == "HEAD":
                    rate, errors = head_rate(target.url + row.path, target.headers(row), args.duration,
                                             args.connections)
                else:
                    rate, errors = wrk(target.url + row.path, row.method, target.headers(row), target.body(row),
                                       args.duration, args.connections, workdir)
                if errors:
                    print(f"warning: {target.name} {row.name}: {errors} responses were not 2xx/3xx", file=sys.stderr)
                measured[target.name] = rate
                rates.setdefault((row.name, target.name), []).append(rate)
                cpu_after = cpu_seconds(target.pid)
                if cpu_before is not None and cpu_after is not None and rate:
                    cpu.setdefault((row.name, target.name), []).append(
                        (cpu_after - cpu_before) / (rate * args.duration) * 1e6)
            reference = measured.get(row.reference)
            for name, rate in measured.items():
                if reference and name not in ("bare", "direct"):
                    ratios.setdefault((row.name, name), []).append(rate / reference)
    loads.append(os.getloadavg()[0])
    return rates, ratios, loads, cpu


def _print(targets: list[Target], rates: dict[tuple[str, str], list[float]],
           ratios: dict[tuple[str, str], list[float]], loads: list[float], cpu: dict[tuple[str, str], list[float]],
           args: argparse.Namespace) -> None:
    names = [t.name for t in targets]
    authgates = [n for n in names if n not in ("bare", "direct")]
    print(f"\nrequests/s (median of {args.rounds} rounds of {args.duration:g} s, wrk -t1 -c{args.connections}); "
          f"load average {min(loads):.1f}-{max(loads):.1f} during the run")
    header = f"{'request':<26}" + "".join(f"{n:>10}" for n in names) + "".join(f"{n + '/ref':>14}" for n in authgates)
    print(header + f"{'  ref':<8}")
    for row in ROWS:
        line = f"{row.name:<26}"
        for name in names:
            values = rates.get((row.name, name))
            line += f"{_median(values):>10.0f}" if values else f"{'-':>10}"
        for name in authgates:
            values = ratios.get((row.name, name))
            line += f"{_median(values):>13.2f}x" if values else f"{'-':>14}"
        print(line + f"  {row.reference}")
    print("\nserver CPU per request, us (user + system time of the process / requests answered; on a loaded "
          "machine the least noisy figure)")
    print(f"{'request':<26}" + "".join(f"{n:>10}" for n in names))
    for row in ROWS:
        line = f"{row.name:<26}"
        for name in names:
            values = cpu.get((row.name, name))
            line += f"{_median(values):>10.0f}" if values else f"{'-':>10}"
        print(line)
    for target in targets:
        rss = _peak_rss_mib(target.pid)
        if rss is not None and target.name not in ("bare", "direct"):
            print(f"peak RSS of {target.name}: {rss:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-postgres", action="store_true", help="leave out the PostgreSQL column")
    parser.add_argument("--no-gateway", action="store_true", help="leave out the gateway column")
    parser.add_argument("--rows", default="", metavar="TEXT",
                        help="only the rows whose name contains TEXT (e.g. --rows /token)")
    args = parser.parse_args()
    ROWS[:] = [row for row in ROWS if args.rows in row.name]
    for command in ("wrk", "docker-registry"):
        if shutil.which(command) is None:
            print(f"{command} is not installed (Debian: apt-get install {command})", file=sys.stderr)
            return 2
    daemons: list[Daemon] = []
    postgres: Postgres | None = None
    with tempfile.TemporaryDirectory(prefix="authgate-bench-") as tmp:
        workdir = Path(tmp)
        bare_port = free_port()
        bare = Daemon([sys.executable, __file__, "--bare-server", str(bare_port)], workdir / "bare.log",
                      env={**os.environ, "PYTHONPATH": str(REPO)})
        daemons.append(bare)
        try:
            bare_url = f"http://127.0.0.1:{bare_port}"
            wait_for(lambda: httpx.get(f"{bare_url}/v2/").status_code == 200, "bare server", 30, bare.log)
            direct = Distribution(workdir / "distribution")
            daemons.append(direct.daemon)
            push_small_image(direct.url, {})
            targets = [
                Target("bare", bare_url, lambda row: True, lambda row: {}, lambda row: "x=1" if row.method == "POST"
                       else "", bare.process.pid),
                Target("direct", direct.url, lambda row: row.reference == "direct",
                       lambda row: {"Accept": MANIFEST_TYPE}, pid=direct.daemon.process.pid),
            ]
            embedded, url = _start_authgate(workdir, "embedded")
            daemons.append(embedded)
            targets.append(_authgate_target("embedded", url, embedded))
            if not args.no_gateway:
                gateway, url = _start_authgate(workdir, "gateway", upstream=direct.url, upstream_auth="none")
                daemons.append(gateway)
                targets.append(_authgate_target("gateway", url, gateway))
            if not args.no_postgres:
                if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
                    print("no PostgreSQL column: server binaries not installed", file=sys.stderr)
                else:
                    postgres = Postgres()
                    pg, url = _start_authgate(workdir, "pg", database_url=postgres.create_database())
                    daemons.append(pg)
                    targets.append(_authgate_target("pg", url, pg))
            rates, ratios, loads, cpu = _measure(targets, args, workdir)
            _print(targets, rates, ratios, loads, cpu, args)
        finally:
            for daemon in reversed(daemons):
                daemon.stop()
            if postgres is not None:
                postgres.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-server":
        _bare_server(int(sys.argv[2]))
    else:
        raise SystemExit(main())
