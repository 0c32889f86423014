"""Two `authgate serve` processes share one database; the CLI changes an account; both stop
honouring it within one second, although each answers logins from its in-memory account cache.

Process B holds the cached login; the change comes from a third process (the CLI), so B can only
learn of it through the database's change counter. On SQLite (one file) and PostgreSQL.
"""

from __future__ import annotations

import base64
import re
import time

import httpx
import pytest

from tests.support.pair import SERVICE, new_name
from tests.support.processes import AuthgateServer

pytestmark = pytest.mark.e2e

#: The promise: a change made anywhere stops the next request within this many seconds.
PROMISE = 1.0


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _token(server: AuthgateServer, user: str, password: str, scope: str = "") -> httpx.Response:
    params = {"service": SERVICE, **({"scope": scope} if scope else {})}
    return httpx.get(f"{server.url}/token", headers=_basic(user, password), params=params, timeout=30)


def _v2(server: AuthgateServer, token: str, path: str = "/v2/") -> int:
    return httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code


def _refresh(server: AuthgateServer, refresh_token: str) -> int:
    form = {"grant_type": "refresh_token", "client_id": "docker", "service": SERVICE, "refresh_token": refresh_token}
    return httpx.post(f"{server.url}/token", data=form, timeout=30).status_code


def _repeated(server: AuthgateServer) -> float:
    """How many `/token` answers `server` sent again from memory (authgate.auth.token_answers)."""
    found = re.search(r"^authgate_token_answers_repeated_total (\S+)$", httpx.get(f"{server.url}/metrics").text, re.M)
    assert found, "no authgate_token_answers_repeated_total in /metrics"
    return float(found.group(1))


def test_user_disabled_by_the_cli_is_refused_by_both_processes(pair: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, second = pair
    alice = new_name("alice")
    first.cli("user", "add", alice, "--password-stdin", input="alice-Pa55-word\n")
    login = httpx.get(f"{first.url}/token", headers=_basic(alice, "alice-Pa55-word"), timeout=30,
                      params={"service": SERVICE, "offline_token": "true", "client_id": "docker"}).json()
    for _ in range(3):  # the second process now answers these from its cache
        assert _token(second, alice, "alice-Pa55-word").status_code == 200
        assert _v2(second, login["token"]) == 200
        assert _refresh(second, login["refresh_token"]) == 200
    assert _repeated(second) >= 1, "the second process answered /token from memory"

    first.cli("user", "disable", alice)
    time.sleep(PROMISE)
    for server in (second, first):
        assert _token(server, alice, "alice-Pa55-word").status_code == 401
        assert _v2(server, login["token"]) == 401
        assert _refresh(server, login["refresh_token"]) == 401


def test_team_robot_and_refresh_token_changes_reach_the_other_process(
        pair: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, second = pair
    alice, builder = new_name("alice"), new_name("builder")
    first.cli("user", "add", alice, "--password-stdin", input="alice-Pa55-word\n")
    first.cli("team", "create", "backend")
    first.cli("team", "add", "backend", alice)
    printed = re.search(r"agr_[A-Za-z0-9_-]+", first.cli("robot", "create", builder).stdout)
    assert printed, "robot create printed no secret"
    secret = printed.group(0)
    login = httpx.get(f"{first.url}/token", headers=_basic(alice, "alice-Pa55-word"), timeout=30,
                      params={"service": SERVICE, "offline_token": "true", "client_id": "docker",
                              "scope": "repository:backend/api:pull"}).json()
    robot = _token(first, f"robot+{builder}", secret).json()["token"]
    for _ in range(3):
        assert _v2(second, login["token"], "/v2/backend/api/tags/list") != 401
        assert _token(second, f"robot+{builder}", secret).status_code == 200
        assert _v2(second, robot) == 200
        assert _refresh(second, login["refresh_token"]) == 200
    assert _repeated(second) >= 1, "the second process answered /token from memory"

    first.cli("team", "remove", "backend", alice)
    first.cli("robot", "disable", builder)
    first.cli("token", "revoke", "--user", alice)
    time.sleep(PROMISE)
    assert _v2(second, login["token"], "/v2/backend/api/tags/list") == 401
    assert _token(second, f"robot+{builder}", secret).status_code == 401
    assert _v2(second, robot) == 401
    assert _refresh(second, login["refresh_token"]) == 401
    assert _token(second, alice, "alice-Pa55-word").status_code == 200, "alice herself is still enabled"
