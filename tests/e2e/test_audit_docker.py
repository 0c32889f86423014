"""Who pushed what, through authgate with a real dockerd: pushes by two users with the digests docker
printed, a failed `docker login`, a refused push with its reason, and tampering named by `verify`."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.processes import AuthgateServer, Dockerd

pytestmark = pytest.mark.e2e

PASSWORDS = {"alice": "alice-Pa55-audit", "bob": "bob-Pa55-audit"}


@pytest.fixture(scope="module")
def authgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("authgate-audit"), bcrypt_rounds="4").start()
    for name, password in PASSWORDS.items():
        server.cli("user", "add", name, "--password-stdin", input=password + "\n")
    yield server
    server.stop()


def _audit(server: AuthgateServer, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.cli("audit", "list", "--json", *args).stdout.splitlines()]


def _eventually(server: AuthgateServer, *args: str, count: int = 1) -> list[dict[str, Any]]:
    """The recorder writes in the background: poll, bounded."""
    deadline = time.monotonic() + 20
    events = _audit(server, *args)
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.3)
        events = _audit(server, *args)
    return events


def _push_as(dockerd: Dockerd, server: AuthgateServer, user: str, image: str) -> str:
    """docker login + push; returns the digest docker printed."""
    dockerd.run("login", server.registry, "-u", user, "--password-stdin", input=PASSWORDS[user])
    try:
        output = dockerd.run("push", image).stdout
    finally:
        dockerd.run("logout", server.registry, check=False)
    match = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    assert match, output
    return match.group(1)


def test_pushes_logins_and_refusals_are_in_the_audit_log(dockerd: Dockerd, authgate: AuthgateServer) -> None:
    host = authgate.registry
    dockerd.build_busybox(f"{host}/alice/app:1", message="alice's app")
    dockerd.build_busybox(f"{host}/bob/tool:2", message="bob's tool")
    alice_digest = _push_as(dockerd, authgate, "alice", f"{host}/alice/app:1")
    bob_digest = _push_as(dockerd, authgate, "bob", f"{host}/bob/tool:2")

    failed = dockerd.run("login", host, "-u", "alice", "--password-stdin", input="not-her-password", check=False)
    assert failed.returncode != 0

    dockerd.run("tag", f"{host}/bob/tool:2", f"{host}/alice/app:from-bob")
    dockerd.run("login", host, "-u", "bob", "--password-stdin", input=PASSWORDS["bob"])
    try:
        refused = dockerd.run("push", f"{host}/alice/app:from-bob", check=False)
    finally:
        dockerd.run("logout", host, check=False)
    assert refused.returncode != 0

    pushes = _eventually(authgate, "--action", "manifest:push", count=2)
    assert sorted((e["actor"], e["repository"], e["reference"], e["digest"]) for e in pushes
                  if e["outcome"] == "success") == [
        ("user:alice", "alice/app", "1", alice_digest),
        ("user:bob", "bob/tool", "2", bob_digest),
    ]
    assert all(e["address"] == "127.0.0.1" and "docker" in (e["user_agent"] or "") for e in pushes)

    logins = _eventually(authgate, "--action", "auth:login:failure", "--actor", "alice")
    assert logins and logins[0]["outcome"] == "failure" and logins[0]["reason"]

    # bob's token for alice/app grants nothing; what docker tried and why it was refused is recorded.
    refusals = [e for e in _eventually(authgate, "--actor", "bob", "--repository", "alice/app")
                if e["outcome"] == "failure"]
    assert refusals, _audit(authgate, "--actor", "bob")
    assert {e["action"] for e in refusals} == {"access:denied"}
    assert all("repository:alice/app:pull,push" in e["reason"] for e in refusals)
    issued = [e for e in _audit(authgate, "--action", "token:issue", "--actor", "bob")
              if "repository:alice/app" in (e["details"] or {}).get("requested", "")]
    assert issued and "push" not in issued[0]["details"]["granted"]

    assert authgate.cli("audit", "verify").stdout.startswith("audit log verified")
    seq = next(e["seq"] for e in pushes if e["actor"] == "user:alice")
    with sqlite3.connect(authgate.data / "authgate.db") as db:
        db.execute("UPDATE audit_events SET actor_name = 'bob' WHERE seq = ?", (seq,))
    broken = authgate.cli("audit", "verify", check=False)
    assert broken.returncode == 1
    assert f"BROKEN at event {seq} (manifest:push by user:bob" in broken.stdout
