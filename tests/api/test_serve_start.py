"""`authgate serve` as a newcomer starts it: what it refuses before listening, what it warns about,
and what it keeps out of the log. Real processes (the CLI and the server), on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (AuthgateServer, Daemon, authgate_env, free_port, http_ok, missing_component,
                                     run_cli)


def _serve_refused(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`authgate serve` that must exit by itself (a refusal), not listen."""
    result = subprocess.run([sys.executable, "-m", "authgate", "serve"], env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode != 0, result.stderr
    return result


def test_tls_init_for_another_address_then_serve_on_loopback_is_refused(tmp_path: Path) -> None:
    env = authgate_env(tmp_path / "data", port=str(free_port()))
    printed = run_cli(env, "tls", "init", "--host", "10.250.77.1").stdout
    assert "authgate serve --host 0.0.0.0" in printed, "the printed steps say how to listen"
    refused = _serve_refused(env)
    assert "names 10.250.77.1, but authgate listens on 127.0.0.1 only" in refused.stderr
    assert "--host 0.0.0.0" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_realm_the_certificate_does_not_name_is_warned(tmp_path: Path) -> None:
    port = free_port()
    env = authgate_env(tmp_path / "data", port=str(port), public_url="https://elsewhere.example:5000")
    run_cli(env, "tls", "init", "--host", "127.0.0.1")
    server = Daemon([sys.executable, "-m", "authgate", "serve"], tmp_path / "authgate.log", env=env)
    try:
        server.wait_until(http_ok(f"https://127.0.0.1:{port}/healthz", verify=False), "authgate")
        log = server.output()
    finally:
        server.stop()
    assert "the token realm https://elsewhere.example:5000/token names elsewhere.example" in log


def test_policies_pointing_at_a_missing_directory_stop_the_start(tmp_path: Path) -> None:
    env = authgate_env(tmp_path / "data", port=str(free_port()), policies=str(tmp_path / "polices"))
    refused = _serve_refused(env)
    assert f"policies: {tmp_path / 'polices'} is not a directory" in refused.stderr


def test_docker_s_https_probe_on_plain_http_is_explained_once_not_warned(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path).start()
    try:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        for _ in range(3):  # what docker does before each command: try HTTPS, get an HTTP answer
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
                with pytest.raises(ssl.SSLError):
                    context.wrap_socket(raw, server_hostname="localhost")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"\x00\x01garbage\r\n\r\n")  # not a TLS probe: still worth a warning
            raw.recv(1024)
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        log = server.log_text()
    finally:
        server.stop()
    assert log.count("a client tried HTTPS on this plain-HTTP port") == 1
    assert log.count("Invalid HTTP request received") == 1, "only the garbage request is warned"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="authgate-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_a_data_directory_owned_by_another_user_is_one_line(shared_dir: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        missing_component("root and setpriv (util-linux) to run authgate as another user")
    data = shared_dir / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 10001, 10001)  # the README's `chown 10001` case, then run as someone else
    env = authgate_env(data, port=str(free_port()))
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-m", "authgate"]
    for argv, stdin in ((["serve"], ""), (["user", "add", "frank", "--password-stdin"], "frank-password\n")):
        result = subprocess.run(as_nobody + argv, env=env, input=stdin, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"permission denied on {data} ({data} is owned by uid 10001" in lines[0]
        assert "authgate runs as uid 65534 (nobody)" in lines[0] and f"sudo chown -R 65534 {data}" in lines[0]
