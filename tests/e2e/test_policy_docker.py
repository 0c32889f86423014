"""Policies through a real dockerd against `authgate serve` (embedded registry) with the shipped
example policy: team namespaces, public pulls (also anonymous), immutable release tags, and a policy
edit taking effect on a running server within 2 s. One server for the module; tests run in order."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.processes import REPO_ROOT, AuthgateServer, Dockerd, free_port

pytestmark = pytest.mark.e2e

PASSWORDS = {"alice": "alice-Pa55-word", "bob": "bob-Pa55-word", "root": "root-Pa55-word"}
TEAMS = {"backend": ["alice"], "frontend": ["bob"], "admins": ["root"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    workdir = tmp_path_factory.mktemp("policy-docker")
    policies = workdir / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    port = free_port()
    server = AuthgateServer(workdir, port=port, public_url=f"http://127.0.0.1:{port}", policies=str(policies),
                            bcrypt_rounds="4").start()
    for name, password in PASSWORDS.items():
        server.cli("user", "add", name, "--password-stdin", input=password + "\n")
    for team, members in TEAMS.items():
        server.cli("team", "create", team)
        server.cli("team", "add", team, *members)
    yield server
    server.stop()


def login(dockerd: Dockerd, server: AuthgateServer, user: str | None) -> None:
    """Switch docker's identity for this registry (None: anonymous)."""
    dockerd.run("logout", server.registry, check=False)
    if user is not None:
        dockerd.run("login", server.registry, "-u", user, "--password-stdin", input=PASSWORDS[user])


def token(server: AuthgateServer, user: str, scope: str) -> tuple[str, list[str]]:
    """A bearer token from GET /token and the actions it grants on the (single) scope."""
    response = httpx.get(f"{server.url}/token", params={"service": "authgate", "scope": scope},
                         auth=(user, PASSWORDS[user]), timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    access = claims.get("access") or [{"actions": []}]
    return body["token"], sorted(access[0]["actions"])


def catalog(server: AuthgateServer, user: str) -> list[str]:
    bearer, _ = token(server, user, "registry:catalog:*")
    response = httpx.get(f"{server.url}/v2/_catalog", headers={"Authorization": f"Bearer {bearer}"}, timeout=10)
    assert response.status_code == 200, response.text
    repositories: list[str] = response.json()["repositories"]
    return repositories


def push(dockerd: Dockerd, image: str, message: str) -> tuple[bool, str]:
    dockerd.build_busybox(image, message=message)
    result = dockerd.run("push", image, check=False)
    return result.returncode == 0, result.stdout + result.stderr


def test_team_member_pushes_and_another_team_can_neither_push_nor_see(dockerd: Dockerd,
                                                                       server: AuthgateServer) -> None:
    image = f"{server.registry}/backend/api:1"
    login(dockerd, server, "alice")
    ok, output = push(dockerd, image, "backend api")
    assert ok, output
    assert "backend/api" in catalog(server, "alice")

    login(dockerd, server, "bob")
    ok, output = push(dockerd, image, "bob was here")
    assert not ok
    # Which action was missing, and who said no: docker shows the challenge's error_description.
    assert "denied: user:bob may not pull or push backend/api (the policy allows: nothing)" in output, output
    assert "backend/api" not in catalog(server, "bob")


def test_everyone_pulls_public_images_even_without_login(dockerd: Dockerd, server: AuthgateServer) -> None:
    image = f"{server.registry}/public/hello:1"
    login(dockerd, server, "root")
    ok, output = push(dockerd, image, "hello, world")
    assert ok, output

    login(dockerd, server, "bob")
    dockerd.run("rmi", image)
    dockerd.run("pull", image)

    login(dockerd, server, None)
    dockerd.run("rmi", image)
    pulled = dockerd.run("pull", image, check=False)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert dockerd.run("image", "inspect", image, check=False).returncode == 0


def test_a_release_tag_cannot_be_overwritten(dockerd: Dockerd, server: AuthgateServer) -> None:
    login(dockerd, server, "root")
    release = f"{server.registry}/releases/app:v1"
    ok, output = push(dockerd, release, "release 1")
    assert ok, output
    ok, output = push(dockerd, release, "release 1, rewritten")
    assert not ok
    assert "immutable" in output, output
    ok, output = push(dockerd, f"{server.registry}/releases/app:v2", "release 2")
    assert ok, output


def test_editing_the_policy_changes_the_outcome_within_two_seconds(dockerd: Dockerd, server: AuthgateServer) -> None:
    scope = "repository:backend/api:pull,push"
    assert token(server, "bob", scope)[1] == []
    policy = Path(server.env["AUTHGATE_POLICIES"]) / "registry.yaml"
    with policy.open("a") as f:
        f.write("\n  - name: frontend-helps-backend\n    subjects: [\"team:frontend\"]\n"
                "    repositories: [\"backend/**\"]\n    allow: [pull, push]\n")
    start = time.monotonic()
    while token(server, "bob", scope)[1] != ["pull", "push"]:
        assert time.monotonic() - start < 2.0, "the policy edit did not take effect within 2 s"
        time.sleep(0.1)

    login(dockerd, server, "bob")
    ok, output = push(dockerd, f"{server.registry}/backend/api:from-bob", "bob helps")
    assert ok, output
    assert "backend/api" in catalog(server, "bob")
