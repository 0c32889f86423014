"""Token-server mode with real parts: a stock distribution 2.8 registry (`auth: token`) trusts
authgate's exported certificate; a real dockerd logs in, pushes and pulls; skopeo and containerd's
`ctr` (the POST-first dialect) use the same tokens. One authgate and one registry per module."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import (
    AuthgateServer, Daemon, Distribution, Dockerd, free_port, require, token_auth_config, wait_for,
)

pytestmark = pytest.mark.e2e

SERVICE = "registry.e2e"
ISSUER = "authgate-e2e"
PASSWORDS = {"alice": "alice-Pa55-word", "bob": "bob-Pa55-word"}


def token_requests(server: AuthgateServer) -> list[tuple[str, str, str]]:
    """(actor, grant_type, client_id) of every `token:issue` in authgate's audit log so far."""
    with sqlite3.connect(f"file:{server.data / 'authgate.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT actor_name, details FROM audit_events WHERE action = 'token:issue'").fetchall()
    found = []
    for actor, details in rows:
        parsed = json.loads(details) if details else {}
        found.append((actor, str(parsed.get("grant_type")), str(parsed.get("client_id"))))
    return found


def eventually_logged(server: AuthgateServer, wanted: tuple[str, str, str]) -> bool:
    """The audit recorder writes in batches: poll briefly."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if wanted in token_requests(server):
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def registry_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def authgate(tmp_path_factory: pytest.TempPathFactory, registry_port: int) -> Iterator[AuthgateServer]:
    # Token-server mode proper: authgate knows the registry, serves no /v2/ and sends users there.
    server = AuthgateServer(tmp_path_factory.mktemp("authgate"), service=SERVICE, issuer=ISSUER, bcrypt_rounds="4",
                            registry_url=f"http://127.0.0.1:{registry_port}")
    server.start()
    first_start = server.log_text()
    assert "authgate user add alice" in first_start, "a fresh start says what to do next"
    assert f"docker login 127.0.0.1:{registry_port} -u alice" in first_start, "log in to the registry, not here"
    for name, password in PASSWORDS.items():
        added = server.cli("user", "add", name, "--password-stdin", input=password + "\n").stdout
        assert f"docker login 127.0.0.1:{registry_port} -u {name}" in added
    own = httpx.get(f"{server.url}/v2/", auth=("alice", PASSWORDS["alice"]))
    assert own.status_code == 404 and f"token server of the registry at http://127.0.0.1:{registry_port}" in own.text
    yield server
    server.stop()


@pytest.fixture(scope="module")
def registry(authgate: AuthgateServer, tmp_path_factory: pytest.TempPathFactory,
             registry_port: int) -> Iterator[Distribution]:
    workdir = tmp_path_factory.mktemp("distribution")
    bundle = workdir / "authgate.pem"
    authgate.cli("keys", "export-cert", "--output", str(bundle))
    registry = Distribution(workdir, extra_config=token_auth_config(f"{authgate.url}/token", SERVICE, ISSUER,
                                                                     bundle), port=registry_port)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def host(registry: Distribution) -> str:
    return f"127.0.0.1:{registry.port}"


@pytest.fixture(scope="module")
def pushed(dockerd: Dockerd, host: str) -> Iterator[str]:
    """alice/hello:1 pushed by alice through `docker login` (the identity-token path)."""
    image = f"{host}/alice/hello:1"
    dockerd.build_busybox(image, message="hello from alice")
    login = dockerd.run("login", host, "-u", "alice", "--password-stdin", input=PASSWORDS["alice"])
    assert "Login Succeeded" in login.stdout
    config = json.loads((dockerd.config_dir / "config.json").read_text())
    entry = config["auths"][host]
    assert entry.get("identitytoken", "").startswith("agrt_"), "docker must store the refresh token, not the password"
    assert "auth" not in entry or PASSWORDS["alice"] not in entry["auth"]
    dockerd.run("push", image)
    yield image
    dockerd.run("logout", host, check=False)


def test_docker_login_push_and_pull_through_the_refresh_grant(dockerd: Dockerd, pushed: str, host: str,
                                                             authgate: AuthgateServer) -> None:
    dockerd.run("rmi", pushed)
    pulled = dockerd.run("pull", pushed)
    assert "Downloaded newer image" in pulled.stdout or "Image is up to date" in pulled.stdout
    assert dockerd.run("image", "inspect", pushed).returncode == 0
    assert eventually_logged(authgate, ("alice", "refresh_token", "docker")), "docker traded its identity token"


def test_a_user_without_push_access_is_refused(dockerd: Dockerd, pushed: str, host: str) -> None:
    dockerd.run("logout", host)
    try:
        dockerd.run("login", host, "-u", "bob", "--password-stdin", input=PASSWORDS["bob"])
        intruder = f"{host}/alice/hello:from-bob"
        dockerd.run("tag", pushed, intruder)
        refused = dockerd.run("push", intruder, check=False)
        assert refused.returncode != 0
        assert "denied" in refused.stderr or "unauthorized" in refused.stderr or "insufficient_scope" in refused.stderr
        own = f"{host}/bob/hello:1"
        dockerd.run("tag", pushed, own)
        dockerd.run("push", own)
    finally:
        dockerd.run("logout", host, check=False)
        dockerd.run("login", host, "-u", "alice", "--password-stdin", input=PASSWORDS["alice"])


def test_pull_of_a_private_repository_after_logout_is_refused(dockerd: Dockerd, pushed: str, host: str) -> None:
    dockerd.run("logout", host)
    try:
        dockerd.run("rmi", pushed)
        refused = dockerd.run("pull", pushed, check=False)
        assert refused.returncode != 0
        assert "denied" in refused.stderr or "unauthorized" in refused.stderr or "not found" in refused.stderr
    finally:
        dockerd.run("login", host, "-u", "alice", "--password-stdin", input=PASSWORDS["alice"])
        dockerd.run("pull", pushed)


def test_skopeo_copy_with_dest_creds(pushed: str, host: str, tmp_path: Path) -> None:
    require("skopeo")
    creds = f"alice:{PASSWORDS['alice']}"
    copy = subprocess.run(
        ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
         "--dest-creds", creds, f"docker://{pushed}", f"docker://{host}/alice/copied:1"],
        capture_output=True, text=True, timeout=120,
    )
    assert copy.returncode == 0, copy.stderr
    inspect = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", creds, f"docker://{host}/alice/copied:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Name"].endswith("alice/copied")
    wrong = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", "alice:wrong", f"docker://{host}/alice/copied:1"],
        capture_output=True, text=True, timeout=60,
    )
    assert wrong.returncode != 0


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    require("containerd", "ctr")
    workdir = tmp_path_factory.mktemp("containerd")
    socket = workdir / "containerd.sock"
    config = workdir / "config.toml"
    config.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    daemon = Daemon(["containerd", "--config", str(config), "--root", str(workdir / "root"), "--state",
                     str(workdir / "state"), "--address", str(socket)], workdir / "containerd.log")
    wait_for(lambda: subprocess.run(["ctr", "--address", str(socket), "version"], capture_output=True).returncode == 0,
             "containerd", 30, daemon.log)
    yield socket
    daemon.stop()


def test_ctr_pulls_with_the_post_first_dialect(containerd: Path, pushed: str, authgate: AuthgateServer) -> None:
    pulled = subprocess.run(
        ["ctr", "--address", str(containerd), "images", "pull", "--plain-http", "--user",
         f"alice:{PASSWORDS['alice']}", pushed],
        capture_output=True, text=True, timeout=120,
    )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    listed = subprocess.run(["ctr", "--address", str(containerd), "images", "ls", "-q"], capture_output=True,
                            text=True, timeout=30)
    assert pushed in listed.stdout.split()
    assert eventually_logged(authgate, ("alice", "password", "containerd-client")), "containerd POSTs first"
    refused = subprocess.run(
        ["ctr", "--address", str(containerd), "images", "pull", "--plain-http", "--user", "bob:wrong-password",
         pushed],
        capture_output=True, text=True, timeout=120,
    )
    assert refused.returncode != 0
