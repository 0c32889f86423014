"""Hot reload in-process: a good edit takes effect, a broken one keeps the last good policy and is reported
stale by /healthz and the metrics (not by /readyz: one typo must not take every replica out of a balancer)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from authgate.app import create_app
from authgate.audit.query import MAX_LIMIT, AuditFilter, list_events
from authgate.policy.store import PolicyStore
from authgate.settings import load_settings
from authgate.subject import Subject

ALICE = Subject("user", "alice", frozenset({"backend"}))
POLICY = """\
rules:
  - name: team
    subjects: ["team:*"]
    repositories: ["${team}/**"]
    allow: [%s]
"""


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """True as soon as `check` holds; the 2 s bound is the promise made to users."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def policy_events(client: TestClient) -> list[dict[str, Any]]:
    """The policy events in the audit log, newest first, as `authgate audit list --action policy` shows them."""
    db = client.app.state.resources.db  # type: ignore[attr-defined]
    events: list[dict[str, Any]] = client.portal.call(list_events, db, AuditFilter(action="policy"), MAX_LIMIT)  # type: ignore[union-attr]
    return events


def rewrite(path: Path, text: str) -> None:
    path.write_text(text)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    policies = tmp_path / "policies"
    policies.mkdir()
    rewrite(policies / "p.yaml", POLICY % "pull")
    settings = load_settings(environ={"AUTHGATE_DATA": str(tmp_path / "data"), "AUTHGATE_POLICIES": str(policies)})
    return TestClient(create_app(settings))


def test_edits_apply_and_broken_edits_keep_the_last_good_policy(client: TestClient, tmp_path: Path) -> None:
    file = tmp_path / "policies" / "p.yaml"
    with client:
        resources = client.app.state.resources  # type: ignore[attr-defined]
        policy = resources.policy
        assert isinstance(policy, PolicyStore)
        assert policy.allowed_actions(ALICE, "backend/api") == {"pull"}
        assert client.get("/readyz").status_code == 200

        rewrite(file, POLICY % "pull, push")
        assert eventually(lambda: policy.allowed_actions(ALICE, "backend/api") == {"pull", "push"})
        assert eventually(lambda: any(e["action"] == "policy:reload" for e in policy_events(client)))

        assert "authgate_policy_stale 0.0" in client.get("/metrics").text
        rewrite(file, (POLICY % "pull").replace("allow:", "alow:"))
        assert eventually(lambda: "degraded" in client.get("/healthz").json())
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["degraded"]["policy"].startswith(f"stale: {file}:5: unknown key 'alow'")
        assert client.get("/readyz").status_code == 200, "still serving correctly: stays in the balancer"
        assert "authgate_policy_stale 1.0" in client.get("/metrics").text
        # Still deciding with the last good policy, not with nothing.
        assert policy.allowed_actions(ALICE, "backend/api") == {"pull", "push"}
        assert eventually(lambda: any(e["action"] == "policy:reload:failure" and e["outcome"] == "failure"
                                      for e in policy_events(client)))
        assert {e["actor"].partition(":")[0] for e in policy_events(client)} == {"server"}, \
            "a reload is the server's doing, not anonymous's"

        rewrite(file, POLICY % "push")
        assert eventually(lambda: client.get("/healthz").json() == {"status": "ok"})
        assert policy.allowed_actions(ALICE, "backend/api") == {"push"}
        assert "authgate_policy_stale 0.0" in client.get("/metrics").text


def test_a_broken_policy_at_start_denies_everything_and_is_not_ready(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    rewrite(policies / "p.yaml", "rules: [")
    settings = load_settings(environ={"AUTHGATE_DATA": str(tmp_path / "data"), "AUTHGATE_POLICIES": str(policies)})
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reasons"]["policy"].startswith(f"invalid (denying everything): {policies / 'p.yaml'}:")
        assert client.app.state.resources.policy.allowed_actions(ALICE, "backend/api") == set()  # type: ignore[attr-defined]


def test_without_policies_setting_the_builtin_default_applies(tmp_path: Path) -> None:
    settings = load_settings(environ={"AUTHGATE_DATA": str(tmp_path / "data")})
    with TestClient(create_app(settings)) as client:
        policy = client.app.state.resources.policy  # type: ignore[attr-defined]
        assert policy.allowed_actions(ALICE, "alice/app") == {"pull", "push", "delete"}
        assert policy.allowed_actions(ALICE, "backend/api") == set()
        assert client.get("/readyz").status_code == 200


def test_a_pushed_policy_that_does_not_load_here_is_treated_like_a_broken_file() -> None:
    """`policy_source: database`: the CLI never stores files that do not load, but a newer authgate's
    push may use what this one does not know: at start that denies everything (not ready), later the
    last good policy keeps deciding (degraded)."""
    from authgate.readiness import Readiness

    async def scenario() -> None:
        readiness = Readiness()
        store = PolicyStore(None, None, readiness)
        broken = (("p.yaml", "rules:\n  - name: r\n    subjects: [\"team:*\"]\n    future_key: 1\n"),)
        assert await store.apply_pushed(broken, "push #1") is False
        assert store.allowed_actions(ALICE, "alice/app") == frozenset(), "nothing good to keep: deny"
        assert "policy" in readiness.not_ready
        assert await store.apply_pushed((("p.yaml", POLICY % "pull"),), "push #2") is True
        assert store.allowed_actions(ALICE, "backend/app") == frozenset({"pull"})
        assert not readiness.not_ready
        assert await store.apply_pushed(broken, "push #3") is False
        assert store.allowed_actions(ALICE, "backend/app") == frozenset({"pull"}), "the last good one decides"
        assert "stale" in readiness.degraded["policy"]

    asyncio.run(scenario())
