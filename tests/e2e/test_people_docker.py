"""Device login through a real dockerd: `authgate login --oidc` prints a URL and code, the person signs
in at a real OpenID provider (npm oidc-provider), docker pushes with the stored identity token; once
the provider no longer vouches for the person, docker's next push is refused."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.identity_setup import oidc_people, serve, write_identity, write_policies
from tests.support.oidc_provider import OidcProvider, set_account, sign_in
from tests.support.processes import AuthgateServer, Dockerd

pytestmark = pytest.mark.e2e

POLICY = """
rules:
  - name: backend team
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull, push]
"""


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path_factory.mktemp("sso"), [], accounts={"alice": ["backend"]},
                          device_client="authgate")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider) -> Iterator[AuthgateServer]:
    workdir = tmp_path_factory.mktemp("people-docker")
    identity = write_identity(workdir / "identity.yaml", oidc_people(provider.issuer))
    server = serve(workdir, write_policies(workdir, POLICY), identity)
    yield server
    server.stop()


def test_device_login_then_docker_push_with_the_identity_token(dockerd: Dockerd, server: AuthgateServer,
                                                               provider: OidcProvider) -> None:
    login = subprocess.Popen(
        [sys.executable, "-m", "authgate", "login", "--oidc", server.url, "--docker-config", str(dockerd.config_dir)],
        env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert login.stdout is not None
        first = login.stdout.readline()
        assert first.startswith("Open http://127.0.0.1:"), first
        code_line = login.stdout.readline()
        assert "and confirm the code" in code_line
        sign_in(provider, first.split()[1], "alice")
        out, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, err
    assert "Signed in as alice (teams: backend)" in err
    stored = json.loads((dockerd.config_dir / "config.json").read_text())["auths"][server.registry]
    assert base64.b64decode(stored["auth"]).decode() == "alice:", "no password is stored"
    assert stored["identitytoken"].startswith("agrt_")

    image = f"{server.registry}/backend/api:device"
    dockerd.build_busybox(image, message="device login")
    result = dockerd.run("push", image, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    set_account(provider, "alice", None)  # the person leaves: removed at the provider
    dockerd.build_busybox(f"{server.registry}/backend/api:after", message="after")
    result = dockerd.run("push", f"{server.registry}/backend/api:after", check=False)
    assert result.returncode != 0, "the identity token dies with the person at the provider"
