"""Start and stop the real daemons the tests drive: authgate itself, dockerd, distribution, PostgreSQL.

Everything listens on loopback (or in namespaces a test creates). A component that is missing makes
the test skip with the reason; `.ci/run` installs all of them so CI skips nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def missing_component(reason: str) -> None:
    """Skip with the reason; under CI (`CI=true`, set by `.ci/run`'s caller) a missing part is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run must install it", pytrace=False)
    pytest.skip(f"{reason} (.ci/run installs it)")


def require(*commands: str) -> None:
    """Skip the calling test when a command it needs is not installed."""
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:
        missing_component(f"not installed: {', '.join(missing)}")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout}s\n{tail}")


def http_ok(url: str, verify: bool | str = True) -> Callable[[], bool]:
    def check() -> bool:
        return httpx.get(url, timeout=2, verify=verify).status_code < 500

    return check


class Daemon:
    """A background process with its log in a file; stopped with SIGTERM, then SIGKILL.

    Every daemon still running when the pytest session ends is stopped by `stop_all` (conftest), so
    a fixture that fails between start and yield cannot leave servers behind.
    """

    running: set[Daemon] = set()

    def __init__(self, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self._log_file = log.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=self._log_file, stderr=subprocess.STDOUT, env=dict(env) if env else None,
            cwd=cwd, start_new_session=True,
        )
        Daemon.running.add(self)

    @classmethod
    def stop_all(cls) -> None:
        for daemon in list(cls.running):
            daemon.stop()

    def stop(self, timeout: float = 15) -> None:
        Daemon.running.discard(self)
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait for the daemon to be ready; if it never is, stop it so no test run leaks it."""
        try:
            wait_for(check, what, timeout, self.log)
        except BaseException:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL at once: a crash, for recovery tests."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")


def authgate_env(data: Path, **settings: str) -> dict[str, str]:
    """Environment for running authgate from this checkout (no install needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["AUTHGATE_DATA"] = str(data)
    env["AUTHGATE_LOG_FORMAT"] = "json"
    for key, value in settings.items():
        env[f"AUTHGATE_{key.upper()}"] = value
    return env


def run_cli(env: Mapping[str, str], *args: str, input: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    """Run `authgate ARGS…` as a user would, from this checkout."""
    result = subprocess.run(
        [sys.executable, "-m", "authgate", *args], env=dict(env), input=input, capture_output=True, text=True,
        timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"authgate {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


class AuthgateServer:
    """`authgate serve` in a subprocess on a free loopback port."""

    def __init__(self, workdir: Path, port: int | None = None, **settings: str) -> None:
        self.port = port or free_port()
        self.data = workdir / "data"
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", str(self.port))
        self.env = authgate_env(self.data, **settings)
        self.registry = f"{settings['host']}:{self.port}"
        self._public_url = settings.get("public_url")
        self._configured_tls = "tls_cert" in settings
        self.daemon: Daemon | None = None
        self.workdir = workdir

    @property
    def scheme(self) -> str:
        """https when a certificate is configured or `authgate tls init` left one in the data dir."""
        return "https" if self._configured_tls or (self.data / "tls" / "server.crt").exists() else "http"

    @property
    def url(self) -> str:
        return self._public_url or f"{self.scheme}://{self.registry}"

    def start(self, timeout: float = 30) -> AuthgateServer:
        # One process, as the suite was written for; tests/e2e/test_serve_workers.py covers the default (one per core).
        self.daemon = Daemon([sys.executable, "-m", "authgate", "serve", "--workers", "1"], self.workdir / "authgate.log",
                             env=self.env)
        self.daemon.wait_until(http_ok(f"{self.url}/healthz", verify=False), "authgate", timeout)
        return self

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(self.env, *args, input=input, check=check)

    def log_text(self) -> str:
        return self.daemon.output() if self.daemon else ""


class Dockerd:
    """A private dockerd (vfs, no bridge, no iptables) with its own socket and client config dir."""

    def __init__(self, workdir: Path, netns: str | None = None, etc_docker: Path | None = None,
                 storage_driver: str = "vfs") -> None:
        """`netns`: run in that network namespace (a second host). `etc_docker`: a directory this
        daemon alone sees as /etc/docker (its `certs.d`), bind-mounted in a private mount namespace."""
        require("dockerd", "docker")
        self.workdir = workdir
        self.socket = workdir / "docker.sock"
        self.config_dir = workdir / "client-config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "dockerd", "--iptables=false", "--ip6tables=false", "--bridge=none", f"--storage-driver={storage_driver}",
            "--data-root", str(workdir / "root"), "--exec-root", str(workdir / "exec"),
            "--pidfile", str(workdir / "dockerd.pid"), "--host", f"unix://{self.socket}",
        ]
        if etc_docker:
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    'mount --bind "$0" /etc/docker && exec "$@"', str(etc_docker), *argv]
        if netns:
            argv = ["nsenter", f"--net=/var/run/netns/{netns}", *argv]
        self.daemon = Daemon(argv, workdir / "dockerd.log")
        self.daemon.wait_until(lambda: self.run("version", check=False).returncode == 0, "dockerd", 60)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = f"unix://{self.socket}"
        env["DOCKER_CONFIG"] = str(self.config_dir)
        env.pop("DOCKER_BUILDKIT", None)
        return env

    def run(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, input=input, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def build_busybox(self, tag: str, message: str = "hello from busybox", extra_layers: int = 0) -> None:
        """A `FROM scratch` image holding /bin/busybox that prints `message`."""
        require("busybox")
        context = self.workdir / f"ctx-{abs(hash((tag, message, extra_layers)))}"
        context.mkdir(exist_ok=True)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
        lines = ["FROM scratch", "COPY busybox /bin/busybox"]
        for i in range(extra_layers):
            (context / f"layer{i}.txt").write_text(f"{tag} layer {i}\n")
            lines.append(f"COPY layer{i}.txt /layer{i}.txt")
        lines.append(f'CMD ["/bin/busybox", "echo", "{message}"]')
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        self.run("build", "-q", "-t", tag, str(context))

    def stop(self) -> None:
        self.daemon.stop(timeout=20)
        # dockerd leaves its host-network namespace bind-mounted (exec/netns/default); unmounted here,
        # or pytest cannot delete the old temp dir later and warns (an error under our filterwarnings).
        _unmount_under(self.workdir)


def _unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        targets = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for target in reversed(targets):
        subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)


def token_auth_config(realm: str, service: str, issuer: str, bundle: Path) -> str:
    """The `auth: token` block of a distribution config that trusts authgate's certificate bundle."""
    return (
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n"
        f"    rootcertbundle: {bundle}\n"
    )


class Distribution:
    """CNCF distribution (`docker-registry serve`) on a loopback port with a config we write."""

    def __init__(self, workdir: Path, extra_config: str = "", port: int | None = None) -> None:
        require("docker-registry")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
            + extra_config
        )
        self.daemon = Daemon(["docker-registry", "serve", str(config)], workdir / "registry.log")
        self.daemon.wait_until(http_ok(f"{self.url}/v2/"), "docker-registry", 30)

    def stop(self) -> None:
        self.daemon.stop()


class Postgres:
    """A throwaway PostgreSQL cluster on a loopback port, run as the `postgres` user (it refuses root)."""

    def __init__(self) -> None:
        bindir = _postgres_bindir()
        if bindir is None:
            missing_component("PostgreSQL server binaries not installed")
        self.port = free_port()
        # Not under pytest's tmp dir: that is 0700 root and the server runs as `postgres`.
        workdir = Path(tempfile.mkdtemp(prefix="authgate-pg-"))
        self.workdir = workdir
        self.dir = workdir / "pgdata"
        self.dir.mkdir()
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(workdir, "postgres")
            shutil.chown(self.dir, "postgres")
        subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(self.dir), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        self.daemon = Daemon([*as_postgres, str(bindir / "postgres"), "-D", str(self.dir), "-p", str(self.port),
                              "-h", "127.0.0.1", "-k", str(workdir), "-c", "fsync=off"], workdir / "postgres.log")
        self.daemon.wait_until(lambda: subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p",
                                                       str(self.port)], capture_output=True).returncode == 0,
                               "postgres", 60)
        self._counter = 0
        self._bindir = bindir

    def create_database(self) -> str:
        """A fresh database; returns its SQLAlchemy URL."""
        self._counter += 1
        name = f"authgate_{os.getpid()}_{self._counter}"
        subprocess.run([str(self._bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        name], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.daemon.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _postgres_bindir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), reverse=True)
    return candidates[0].parent if candidates else None
