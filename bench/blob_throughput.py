#!/usr/bin/env python3
"""Blob push/pull throughput: the same blob, in the same run, through each front door.

Columns (each a `Target` in TARGETS; add one by writing a class with `start`, `headers`, `stop`):
  direct   docker-registry (CNCF distribution) on loopback, no auth: the baseline
  gateway  authgate in gateway mode in front of that registry (bearer token from /token)
  embedded authgate serving blobs from its own embedded store (bearer token from /token)
  nginx    nginx with `auth_basic` (bcrypt htpasswd) proxying to that registry, configured as in
           distribution's nginx recipe: the usual hand-made front door

Push is what docker does per layer: POST (open), one PATCH streaming the whole blob, PUT ?digest=.
Pull is one GET of the blob. curl moves the bytes (so the client is not the bottleneck); figures
are the median of --repeat rounds (targets interleaved within each round), and ratios are against
`direct` measured in the same run.

    python bench/blob_throughput.py [--size 512M] [--repeat 3] [--only direct,gateway,embedded,nginx]
                                    [--rss-size 2G]

`--rss-size` also pushes one blob of that size through the embedded store and prints authgate's
peak RSS afterwards: memory must stay flat whatever the blob size.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import AuthgateServer, Daemon, Distribution, free_port, wait_for  # noqa: E402

USER, PASSWORD = "bench", "bench-password-1"


def parse_size(raw: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    raw = raw.strip().lower().removesuffix("b").removesuffix("i")
    return int(float(raw[:-1]) * units[raw[-1]]) if raw[-1] in units else int(raw)


def make_blob(path: Path, size: int) -> str:
    """Random bytes (nothing compresses), written in 8 MiB pieces; returns the sha256 digest."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            piece = os.urandom(min(left, 8 * 1024**2))
            digest.update(piece)
            out.write(piece)
            left -= len(piece)
    return "sha256:" + digest.hexdigest()


class Target:
    name = ""
    url = ""
    pid: int | None = None

    def start(self, registry: Distribution, workdir: Path) -> None: ...

    def headers(self, repository: str) -> dict[str, str]:
        return {}

    def stop(self) -> None: ...


class Direct(Target):
    name = "direct"

    def start(self, registry: Distribution, workdir: Path) -> None:
        self.url = registry.url


class AuthgateTarget(Target):
    """Any authgate column (here and in s3_throughput.py): one user, a bearer token per repository
    from /token; subclasses only say how the server is configured."""

    def launch(self, server: AuthgateServer) -> None:
        self.server = server
        add_user(server, USER, PASSWORD)
        server.start()
        self.url = server.url
        assert server.daemon is not None
        self.pid = server.daemon.process.pid

    def headers(self, repository: str) -> dict[str, str]:
        response = httpx.get(f"{self.url}/token", params={"service": "authgate",
                             "scope": f"repository:{repository}:pull,push"}, auth=(USER, PASSWORD))
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def stop(self) -> None:
        self.server.stop()


class Gateway(AuthgateTarget):
    """authgate in gateway mode in front of the registry."""

    name = "gateway"

    def start(self, registry: Distribution, workdir: Path) -> None:
        self.launch(AuthgateServer(workdir / "authgate", upstream=registry.url, log_level="WARNING"))


class Embedded(AuthgateTarget):
    """authgate with no upstream: the blobs land in its own data dir."""

    name = "embedded"

    def start(self, registry: Distribution, workdir: Path) -> None:
        self.launch(AuthgateServer(workdir / "authgate", log_level="WARNING", max_blob_size="64G"))


class Nginx(Target):
    name = "nginx"

    def start(self, registry: Distribution, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True)
        (workdir / "htpasswd").write_text(htpasswd.stdout)
        port = free_port()
        (workdir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=workdir, port=port, upstream=registry.port,
            # as root, workers would drop to `nobody` and could not read the private temp dir
            user="user root;" if os.geteuid() == 0 else ""))
        self.daemon = Daemon(["nginx", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)], workdir / "nginx.out")
        self.url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{self.url}/v2/").status_code == 401, "nginx", 20, workdir / "error.log")

    def headers(self, repository: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}

    def stop(self) -> None:
        self.daemon.stop()


# distribution's docs/recipes/nginx.md, on loopback without TLS.
NGINX_CONF = """
daemon off;
{user}
worker_processes auto;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream docker-registry {{ server 127.0.0.1:{upstream}; }}
  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {{
    '' 'registry/2.0';
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    chunked_transfer_encoding on;
    location /v2/ {{
      auth_basic "Registry realm";
      auth_basic_user_file {dir}/htpasswd;
      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;
      proxy_pass                          http://docker-registry;
      proxy_set_header  Host              $http_host;
      proxy_set_header  X-Real-IP         $remote_addr;
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;
    }}
  }}
}}
"""

TARGETS: dict[str, type[Target]] = {"direct": Direct, "gateway": Gateway, "embedded": Embedded, "nginx": Nginx}


def add_user(server: AuthgateServer, name: str, password: str) -> None:
    """`authgate user add NAME --password-stdin` (directly in the database on a checkout without it)."""
    result = server.cli("user", "add", name, "--password-stdin", input=password + "\n", check=False)
    if result.returncode == 0:
        return
    script = (
        "import asyncio, sys\n"
        "from authgate.auth import accounts\nfrom authgate.auth.passwords import make_context\n"
        "from authgate.db.session import Database\nfrom authgate.settings import load_settings\n"
        "async def main():\n"
        "    db = Database(load_settings().database); await db.upgrade()\n"
        "    await accounts.create_user(db, sys.argv[1], make_context(4).hash(sys.argv[2])); await db.close()\n"
        "asyncio.run(main())\n"
    )
    server.data.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", script, name, password], env=server.env, check=True, timeout=120)


def _curl(args: list[str]) -> tuple[int, str]:
    result = subprocess.run(["curl", "-sS", "--noproxy", "*", *args], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"curl failed: {result.stderr}")
    return result.returncode, result.stdout


def push(target: Target, repository: str, blob: Path, digest: str, workdir: Path) -> float:
    headers = target.headers(repository)
    started = time.perf_counter()
    with httpx.Client(headers=headers, timeout=900) as http:
        opened = http.post(f"{target.url}/v2/{repository}/blobs/uploads/")
        assert opened.status_code == 202, opened.text
        location = httpx.URL(target.url).join(opened.headers["location"])
        dump = workdir / "patch-headers"
        auth = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
        _, status = _curl(["-X", "PATCH", "-T", str(blob), "-H", "Content-Type: application/octet-stream",
                           "-H", "Expect:", *auth, "-D", str(dump), "-o", "/dev/null", "-w", "%{http_code}",
                           str(location)])
        assert status == "202", f"PATCH answered {status}"
        next_location = [line.split(":", 1)[1].strip() for line in dump.read_text().splitlines()
                         if line.lower().startswith("location:")][0]
        final = httpx.URL(target.url).join(next_location).copy_merge_params({"digest": digest})
        committed = http.put(final)
        assert committed.status_code == 201, committed.text
    return time.perf_counter() - started


def pull(target: Target, repository: str, digest: str, size: int) -> float:
    headers = target.headers(repository)
    auth = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    started = time.perf_counter()
    _, out = _curl([*auth, "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-L",
                    f"{target.url}/v2/{repository}/blobs/{digest}"])
    elapsed = time.perf_counter() - started
    status, downloaded = out.split()
    assert status == "200" and int(downloaded) == size, out
    return elapsed


def peak_rss_mib(pid: int | None) -> float | None:
    """VmHWM (peak resident set) of the process, MiB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU the process has used so far (/proc/PID/stat), seconds."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def big_blob_rss(registry: Distribution, workdir: Path, size: int) -> float | None:
    """Push one `size` blob into the embedded store; authgate's peak RSS (MiB) afterwards."""
    blob = workdir / "big-blob"
    print(f"making a {size / 1024**3:.1f} GiB random blob for the memory check …", flush=True)
    digest = make_blob(blob, size)
    target = Embedded()
    target.start(registry, workdir / "embedded-big")
    try:
        seconds = push(target, f"{USER}/big", blob, digest, workdir)
        peak = peak_rss_mib(target.pid)
        print(f"  embedded {size / 1024**3:.1f} GiB push {size / 1024**2 / seconds:.1f} MiB/s, authgate peak RSS "
              f"{peak:.0f} MiB", flush=True)
        return peak
    finally:
        target.stop()
        blob.unlink()
        shutil.rmtree(workdir / "embedded-big", ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512M", help="blob size (default 512M)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target and direction (median reported)")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets (direct is always run)")
    parser.add_argument("--rss-size", default="0", help="also push one blob this large into the embedded store and "
                        "print authgate's peak RSS (e.g. 2G; default 0: skip)")
    args = parser.parse_args()
    size = parse_size(args.size)
    names = ["direct"] + [n for n in args.only.split(",") if n and n != "direct"]
    for name in names:
        if name not in TARGETS:
            parser.error(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    for command in ("curl", "docker-registry", *(["nginx", "htpasswd"] if "nginx" in names else [])):
        if shutil.which(command) is None:
            parser.error(f"{command} is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="authgate-bench-"))
    registry = None
    results: dict[str, dict[str, float]] = {}
    rss: dict[str, float | None] = {}
    pull_cpu: dict[str, float | None] = {}
    try:
        blob = workdir / "blob"
        print(f"making a {size / 1024**2:.0f} MiB random blob …", flush=True)
        digest = make_blob(blob, size)
        registry = Distribution(workdir / "registry")
        # Rounds interleave the targets, and dirty pages are flushed before each push, so one
        # target's background writeback or a burst of load on the machine does not land on one column.
        targets: dict[str, Target] = {}
        try:
            for name in names:
                targets[name] = TARGETS[name]()
                targets[name].start(registry, workdir / name)
            times: dict[str, dict[str, list[float]]] = {n: {"push": [], "pull": []} for n in names}
            cpu: dict[str, list[float]] = {n: [] for n in names}
            for run in range(args.repeat):
                for name, target in targets.items():
                    repository = f"{USER}/{name}-{run}"
                    os.sync()
                    times[name]["push"].append(push(target, repository, blob, digest, workdir))
                    # CPU of the process serving the pull (the registry itself for `direct`): unlike
                    # MiB/s, barely moved by other load on the machine.
                    server = registry.daemon.process.pid if name == "direct" else target.pid
                    before = cpu_seconds(server)
                    times[name]["pull"].append(pull(target, repository, digest, size))
                    after = cpu_seconds(server)
                    if before is not None and after is not None:
                        cpu[name].append((after - before) * 1024**3 / size)
            for name, target in targets.items():
                results[name] = {op: size / statistics.median(times[name][op]) for op in ("push", "pull")}
                rss[name] = peak_rss_mib(target.pid)
                pull_cpu[name] = statistics.median(cpu[name]) if cpu[name] else None
                print(f"  {name:8} push {results[name]['push'] / 1024**2:8.1f} MiB/s   "
                      f"pull {results[name]['pull'] / 1024**2:8.1f} MiB/s", flush=True)
        finally:
            for target in targets.values():
                target.stop()
        if parse_size(args.rss_size):
            blob.unlink()
            big_blob_rss(registry, workdir, parse_size(args.rss_size))
    finally:
        if registry is not None:
            registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    base = results["direct"]
    print(f"\nblob {size / 1024**2:.0f} MiB, median of {args.repeat}; ratio = target / direct (same run); "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("pull CPU = CPU seconds per GiB pulled of the serving process (the registry for direct; the gateway's "
          "registry adds about direct's figure)")
    print(f"{'target':10}{'push MiB/s':>12}{'ratio':>8}{'pull MiB/s':>12}{'ratio':>8}{'pull CPU':>10}"
          f"{'peak RSS MiB':>14}")
    for name, figures in results.items():
        peak, used = rss.get(name), pull_cpu.get(name)
        print(f"{name:10}{figures['push'] / 1024**2:12.1f}{figures['push'] / base['push']:8.2f}"
              f"{figures['pull'] / 1024**2:12.1f}{figures['pull'] / base['pull']:8.2f}"
              f"{'' if used is None else f'{used:.2f}':>10}{'' if peak is None else f'{peak:.0f}':>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
