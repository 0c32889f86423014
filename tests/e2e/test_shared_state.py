"""Two `authgate serve` processes on one database (SQLite file and PostgreSQL) share the login
limiter's counters and the signing keys: guesses spread over both lock the pair on both, `authgate
user unlock` lifts it for both, `authgate keys rotate` is picked up by both without a restart,
old tokens still accepted until the old key is removed, and `authgate policy push` decides on both."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.support.pair import POLICY, SERVICE, new_name
from tests.support.processes import AuthgateServer

pytestmark = pytest.mark.e2e

#: Lock, unlock, key and policy changes reach every process within this many seconds (a poll every 0.25 s;
#: an unlock is read at most once a second by a process meeting the lock).
PROMISE = 1.0
PASSWORD = "alice-Pa55-word"


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _login(server: AuthgateServer, user: str, password: str) -> httpx.Response:
    return httpx.get(f"{server.url}/token", headers=_basic(user, password), params={"service": SERVICE}, timeout=30)


def _new_user(server: AuthgateServer) -> str:
    name = new_name("alice")
    server.cli("user", "add", name, "--password-stdin", input=PASSWORD + "\n")
    return name


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def _v2(server: AuthgateServer, token: str) -> int:
    return httpx.get(f"{server.url}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def test_guesses_spread_over_two_processes_lock_the_pair_on_both(pair: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, second = pair
    alice = _new_user(first)
    assert _login(second, alice, PASSWORD).status_code == 200  # the second now knows the password: no hash next time
    for i in range(10):  # five on each; each process alone would have checked all ten and more
        server = first if i % 2 else second
        assert _login(server, alice, f"guess-{i}").status_code == 401
    # The lock is made by the process that counted the tenth guess; the other, which has the password
    # cached (no hash, no database round trip), learns of it within the promise (docs/scale-out.md).
    time.sleep(PROMISE + 0.2)
    for server in (first, second):
        refused = _login(server, alice, PASSWORD)
        assert refused.status_code == 429, "the pair is locked on both processes"
        assert f"authgate user unlock {alice}" in refused.json()["errors"][0]["message"]
    assert _login(first, alice, "guess-10").status_code == 429, "no further guess is checked"

    assert f"unlocked {alice}" in first.cli("user", "unlock", alice).stdout
    time.sleep(PROMISE + 0.2)
    for server in (second, first):
        assert _login(server, alice, PASSWORD).status_code == 200, "the unlock lifts the lock for every process"


def test_a_key_rotation_reaches_both_processes_without_a_restart(pair: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, second = pair
    alice = _new_user(first)
    old_token = _login(first, alice, PASSWORD).json()["token"]
    old_kid = _kid(old_token)
    assert _kid(_login(second, alice, PASSWORD).json()["token"]) == old_kid

    assert "added signing key" in first.cli("keys", "rotate").stdout
    time.sleep(PROMISE)
    new_tokens = [_login(server, alice, PASSWORD).json()["token"] for server in (first, second)]
    new_kid = _kid(new_tokens[0])
    assert new_kid != old_kid and _kid(new_tokens[1]) == new_kid, "both sign with the new key"
    for server in (first, second):
        assert _v2(server, old_token) == 200, "a token signed by the old key stays valid until it expires"
        assert all(_v2(server, token) == 200 for token in new_tokens)

    first.cli("keys", "remove", old_kid)
    time.sleep(PROMISE)
    for server in (first, second):
        assert _v2(server, old_token) == 401, "a removed key verifies nothing on any process"
        assert _v2(server, new_tokens[1]) == 200

    seal = first.data / "keys" / "seal.key"
    assert stat.S_IMODE(seal.stat().st_mode) == 0o600
    secret = seal.read_bytes().strip().decode()
    for log in (first.log_text(), second.log_text()):
        assert "signing keys reloaded" in log
        assert "PRIVATE KEY" not in log and secret not in log


def _granted(server: AuthgateServer, user: str, scope: str) -> list[str]:
    answer = httpx.get(f"{server.url}/token", headers=_basic(user, PASSWORD),
                       params={"service": SERVICE, "scope": scope}, timeout=30)
    assert answer.status_code == 200, answer.text
    payload = answer.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return sorted(action for entry in claims["access"] for action in entry["actions"])


def test_a_policy_push_decides_on_both_processes(pair: tuple[AuthgateServer, AuthgateServer], tmp_path: Path) -> None:
    first, second = pair
    user = _new_user(first)
    scope = f"repository:shared-{user}/app:pull,push"
    for server in pair:  # the pair's policy (pushed when it started) gives this user nothing
        assert _granted(server, user, scope) == []

    policies = tmp_path / "policies"
    policies.mkdir()
    rule = f'  - name: shared\n    subjects: ["user:{user}"]\n    repositories: ["shared-{user}/**"]\n    allow: [%s]\n'
    (policies / "rules.yaml").write_text(POLICY + rule % "pull")
    try:
        assert "pushed policy #" in second.cli("policy", "push", str(policies)).stdout
        time.sleep(PROMISE)
        for server in pair:
            assert _granted(server, user, scope) == ["pull"], "the pushed policy decides on every process"

        (policies / "rules.yaml").write_text(POLICY + rule % "pull, push")
        (policies / "broken.yaml").write_text("rules: [\n")
        refused = first.cli("policy", "push", str(policies), check=False)
        assert refused.returncode == 1 and "broken.yaml:2" in refused.stdout
        (policies / "broken.yaml").unlink()
        time.sleep(PROMISE)
        assert _granted(first, user, scope) == ["pull"], "a push that does not load is never stored"

        assert "pushed policy #" in first.cli("policy", "push", str(policies)).stdout
        time.sleep(PROMISE)
        for server in pair:
            assert _granted(server, user, scope) == ["pull", "push"]
        listed = json.loads(first.cli("policy", "pushed", "--json").stdout)
        assert listed[0]["id"] == listed[1]["id"] + 1 and listed[0]["files"] == ["rules.yaml"]
        for log in (first.log_text(), second.log_text()):
            assert f"rules.yaml of push #{listed[0]['id']}" in log
    finally:  # the pair's own policy again, for the tests after this one
        (policies / "rules.yaml").write_text(POLICY)
        first.cli("policy", "push", str(policies))


def test_a_local_client_cannot_choose_its_address_with_x_forwarded_for(pair: tuple[AuthgateServer, AuthgateServer]
                                                                        ) -> None:
    """No trusted proxy is configured: the address in the audit log (and for the limiter and `from:`
    rules) is the peer's, whatever X-Forwarded-For says, also from loopback (uvicorn's own default
    believed that header from 127.0.0.1)."""
    first, _ = pair
    user = new_name("spoofer")
    refused = httpx.get(f"{first.url}/token", headers={**_basic(user, "wrong"), "X-Forwarded-For": "203.0.113.9"},
                        params={"service": SERVICE}, timeout=30)
    assert refused.status_code == 401
    events = [json.loads(line) for line in first.cli("audit", "list", "--all", "--json", "--actor", user,
                                                     "--action", "auth:login:failure").stdout.splitlines()]
    assert events and {event["address"] for event in events} == {"127.0.0.1"}
