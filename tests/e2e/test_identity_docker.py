"""LDAP users through a real dockerd against `authgate serve` with a real slapd as identity source:
a group member pushes, a nested member gets the outer group's rights, removal from the group is
refused within the cache time, and with slapd stopped local accounts still work while directory
users get "try again later", not "wrong password". One server for the module; tests run in order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.identity_setup import docker_login, docker_push, serve, write_policies
from tests.support.processes import AuthgateServer, Dockerd
from tests.support.slapd import Slapd

pytestmark = pytest.mark.e2e

CACHE_TTL = 2
POLICY = """
rules:
  - name: backend team
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull, push]
  - name: own namespace
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: ["*"]
"""


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, slapd: Slapd) -> Iterator[AuthgateServer]:
    workdir = tmp_path_factory.mktemp("identity-docker")
    identity = slapd.identity_file(workdir / "identity.yaml", cache_ttl=CACHE_TTL)
    server = serve(workdir, write_policies(workdir, POLICY), identity, bcrypt_rounds="4")
    server.cli("user", "add", "bob", "--password-stdin", input="bob-local-pw\n")
    yield server
    server.stop()


def test_a_directory_group_member_pushes_and_others_are_refused(dockerd: Dockerd, server: AuthgateServer) -> None:
    assert "identity sources, in order: local: users and robots in authgate's database; corp: LDAP" \
        in server.log_text(), "the start-up summary lists the sources"
    assert docker_login(dockerd, server, "alice", "alice-pw")[0]
    ok, output = docker_push(dockerd, f"{server.registry}/backend/api:alice")
    assert ok, output
    assert docker_login(dockerd, server, "carol", "carol-pw")[0]
    ok, output = docker_push(dockerd, f"{server.registry}/backend/api:carol")
    assert ok, "carol is in backend-oncall, itself a member of backend: " + output
    assert docker_login(dockerd, server, "dave", "dave-pw")[0]
    ok, output = docker_push(dockerd, f"{server.registry}/backend/api:dave")
    assert not ok and ("denied" in output or "unauthorized" in output), output
    ok, output = docker_login(dockerd, server, "erin", "erin-pw")
    assert not ok and "invalid username or password" in output, "erin is disabled in the directory"


def test_removed_from_the_group_is_refused_within_the_cache_time(dockerd: Dockerd, server: AuthgateServer,
                                                                 slapd: Slapd) -> None:
    assert docker_login(dockerd, server, "alice", "alice-pw")[0]
    slapd.remove_member("backend", "alice")
    time.sleep(CACHE_TTL + 0.5)
    ok, output = docker_push(dockerd, f"{server.registry}/backend/api:after-removal")
    assert not ok and ("denied" in output or "unauthorized" in output), output
    slapd.add_member("backend", "alice")


def test_with_the_directory_down_local_accounts_work_and_directory_users_hear_try_later(
        dockerd: Dockerd, server: AuthgateServer, slapd: Slapd, tmp_path: Path) -> None:
    slapd.stop()
    try:
        time.sleep(CACHE_TTL + 0.5)  # nothing left in the bind cache
        assert docker_login(dockerd, server, "bob", "bob-local-pw")[0]
        ok, output = docker_push(dockerd, f"{server.registry}/bob/app:1")
        assert ok, "a local account does not need the directory: " + output
        ok, output = docker_login(dockerd, server, "alice", "alice-pw")
        assert not ok
        assert "503 Service Unavailable" in output, output  # docker shows the status, not the body
        assert "invalid username or password" not in output
        assert "identity source corp is unavailable" in server.log_text()
    finally:
        slapd.start()
    assert docker_login(dockerd, server, "alice", "alice-pw")[0], "directory users are back with the directory"
