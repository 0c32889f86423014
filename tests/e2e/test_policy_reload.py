"""A running `authgate serve` picks up policy edits within 2 s and refuses broken ones."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.processes import AuthgateServer

pytestmark = pytest.mark.e2e

POLICY = """\
rules:
  - name: team-namespace
    subjects: ["team:*"]
    repositories: ["${team}/**"]
    allow: [%s]
"""


def within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until `check` held; fails if it did not within `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    assert check(), f"not within {seconds}s"
    return time.monotonic() - start


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthgateServer]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "teams.yaml").write_text(POLICY % "pull")
    server = AuthgateServer(tmp_path, policies=str(policies), bcrypt_rounds="4").start()
    server.cli("user", "add", "alice", "--password-stdin", input="alice-Pa55-word\n")
    server.cli("team", "create", "backend")
    server.cli("team", "add", "backend", "alice")
    yield server
    server.stop()


def granted(server: AuthgateServer, scope: str = "repository:backend/api:pull,push,delete") -> list[str]:
    """The actions alice's token from GET /token carries for `scope`."""
    response = httpx.get(f"{server.url}/token", params={"service": "authgate", "scope": scope},
                         auth=("alice", "alice-Pa55-word"), timeout=10)
    assert response.status_code == 200, response.text
    access = jwt.decode(response.json()["token"], options={"verify_signature": False})["access"]
    return sorted(access[0]["actions"]) if access else []


def audited(server: AuthgateServer) -> list[str]:
    with sqlite3.connect(f"file:{server.data / 'authgate.db'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT action FROM audit_events WHERE action LIKE 'policy:%' ORDER BY seq").fetchall()
    return [row[0] for row in rows]


def _reloads(server: AuthgateServer) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    return [e for e in lines if str(e.get("message", "")).startswith("policy reloaded")]


def test_edits_take_effect_within_two_seconds_and_broken_edits_are_refused(
    server: AuthgateServer, tmp_path: Path
) -> None:
    file = tmp_path / "policies" / "teams.yaml"
    ready = f"{server.url}/readyz"
    assert httpx.get(ready).status_code == 200
    assert granted(server) == ["pull"]

    file.write_text(POLICY % "pull, push")
    within(2.0, lambda: granted(server) == ["pull", "push"])
    assert len(_reloads(server)) == 1

    file.write_text((POLICY % "pull").replace("${team}", "${teem}"))
    health = f"{server.url}/healthz"
    within(2.0, lambda: "degraded" in httpx.get(health).json())
    assert httpx.get(ready).status_code == 200, "stale is reported, not unready (a balancer would drop every replica)"
    reason = httpx.get(health).json()["degraded"]["policy"]
    assert reason == f"stale: {file}:4: repository pattern '${{teem}}/**': unknown placeholder ${{teem}} " \
                     "(known: ${user}, ${team}, ${robot})"
    errors = [line for line in server.log_text().splitlines() if '"level": "error"' in line]
    assert any(f"{file}:4: repository pattern" in line for line in errors)
    assert granted(server) == ["pull", "push"]  # with the last good policy

    file.write_text(POLICY % "push")
    within(2.0, lambda: "degraded" not in httpx.get(health).json())
    assert granted(server) == ["push"]
    assert len(_reloads(server)) == 2
    # Every reload, good or refused, is in the audit log (written in batches: poll briefly).
    within(10.0, lambda: audited(server) == ["policy:reload"] * 2 + ["policy:reload:failure", "policy:reload"])
