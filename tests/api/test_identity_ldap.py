"""LDAP as an identity source, against a real slapd on loopback: `/token` and `/v2/` in-process.

Covers search-then-bind over StartTLS, bind-as-user over LDAPS, nested groups, a disabled
account, group -> team mapping, the bind cache's revocation promise, and a directory that is down
(503 "try again later", never "wrong password"; local accounts keep working).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authgate.auth.services import auth_of
from authgate.resources import Resources
from tests.api.registry_support import AuditLog
from tests.api.token_support import add_user, basic, token_app
from tests.support.identity_setup import write_policies
from tests.support.slapd import Slapd

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, AuditLog]

POLICY = """
rules:
  - name: backend team
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull, push]
  - name: admins
    subjects: ["team:admins"]
    repositories: ["**"]
    allow: ["*"]
  - name: own namespace
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: ["*"]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path / "slapd")
    yield server
    server.stop()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return write_policies(tmp_path, POLICY)


async def _app(tmp_path: Path, slapd: Slapd, policies: Path, mode: str, **extra: object
               ) -> AsyncIterator[Ctx]:
    identity = slapd.identity_file(tmp_path / f"identity-{mode}.yaml", mode, **extra)
    async with token_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}", identity=identity,
                         policies=policies) as ctx:
        await add_user(ctx[1], "bob", "bob-pw")
        yield ctx


@pytest.fixture
async def search_ctx(tmp_path: Path, slapd: Slapd, policies: Path) -> AsyncIterator[Ctx]:
    async for ctx in _app(tmp_path, slapd, policies, "search"):
        yield ctx


async def _grants(client: httpx.AsyncClient, resources: Resources, user: str, password: str,
                  repository: str = "backend/api") -> set[str] | int:
    """The actions granted on `repository`, or the HTTP status when the login is refused."""
    response = await client.get("/token", headers=basic(user, password),
                                params={"service": "registry.test", "scope": f"repository:{repository}:pull,push"})
    if response.status_code != 200:
        return response.status_code
    access = auth_of(resources).tokens.verify(response.json()["token"]).access
    return set(access.get(("repository", repository), frozenset()))


async def test_search_then_bind_maps_groups_to_teams_including_nested(search_ctx: Ctx) -> None:
    client, resources, audit = search_ctx
    assert await _grants(client, resources, "alice", "alice-pw") == {"pull", "push"}, "alice is in backend"
    assert await _grants(client, resources, "carol", "carol-pw") == {"pull", "push"}, \
        "carol is in backend-oncall, a member of backend: nested membership counts"
    assert await _grants(client, resources, "dave", "dave-pw") == set(), "dave is in frontend only"
    assert await _grants(client, resources, "zed", "zed-pw", "any/thing") == {"pull", "push"}, \
        "the group 'Platform Admins' maps to team admins by the explicit mapping"
    assert await _grants(client, resources, "dave", "dave-pw", "dave/tools") == {"pull", "push"}, \
        "directory users own their namespace like local users"
    issued = [e for e in (await audit.events()) if e["action"] == "token:issue"]
    assert issued[0]["actor"] == "user:alice" and issued[0]["details"]["source"] == "corp", \
        "the audit event names the source that authenticated"
    assert await _grants(client, resources, "bob", "bob-pw", "bob/app") == {"pull", "push"}, "local users still work"
    assert [e for e in (await audit.events()) if e["action"] == "token:issue"][-1]["details"]["source"] == "local"


async def test_wrong_password_disabled_unknown_and_empty_password_are_refused(search_ctx: Ctx) -> None:
    client, resources, audit = search_ctx
    assert await _grants(client, resources, "alice", "wrong") == 401
    failure = [e for e in (await audit.events()) if e["action"] == "auth:login:failure"][-1]
    assert (failure["reason"], failure["details"]["source"]) == ("wrong password", "corp")
    assert await _grants(client, resources, "erin", "erin-pw") == 401, "erin is disabled (shadowExpire) in the directory"
    assert await _grants(client, resources, "nobody", "x") == 401
    assert await _grants(client, resources, "alice", "") == 401, "an empty password is never an anonymous bind"
    assert await _grants(client, resources, "Alice*", "alice-pw") == 401, "not a user name: no filter injection"


async def test_bind_as_user_over_ldaps(tmp_path: Path, slapd: Slapd, policies: Path) -> None:
    async for client, resources, _ in _app(tmp_path, slapd, policies, "bind"):
        assert await _grants(client, resources, "alice", "alice-pw") == {"pull", "push"}
        assert await _grants(client, resources, "carol", "carol-pw") == {"pull", "push"}
        assert await _grants(client, resources, "alice", "wrong") == 401
        assert await _grants(client, resources, "erin", "erin-pw") == 401, "the user filter still applies"


async def test_removed_from_the_group_loses_access_within_the_cache_time(search_ctx: Ctx, slapd: Slapd) -> None:
    client, resources, _ = search_ctx
    cache_ttl = 2  # Slapd.identity_file
    token = (await client.get("/token", headers=basic("alice", "alice-pw"),
                              params={"scope": "repository:backend/api:pull,push"})).json()["token"]
    chain = auth_of(resources).identity
    assert (await chain.resolve("alice")) is not None
    slapd.remove_member("backend", "alice")
    time.sleep(cache_ttl + 0.5)
    assert await _grants(client, resources, "alice", "alice-pw") == set(), \
        "after cache_ttl the next login sees the directory's change"
    subject = await chain.resolve("alice")
    assert subject is not None and "backend" not in subject.teams, "tokens already issued are re-checked too"
    response = await client.head("/v2/backend/api/blobs/sha256:" + "0" * 64,
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code in (401, 403), "the live policy no longer lets alice's old token pull"
    slapd.disable("carol")
    time.sleep(cache_ttl + 0.5)
    assert await chain.resolve("carol") is None, "a user disabled in the directory has no live subject"


async def test_a_directory_that_is_down_is_not_a_wrong_password(
        search_ctx: Ctx, slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    client, resources, audit = search_ctx
    slapd.stop()
    for _ in range(8):  # more than the limiter allows for wrong passwords: a down source is not a failure
        response = await client.get("/token", headers=basic("alice", "alice-pw"))
        assert response.status_code == 503, response.text
    body = response.json()
    assert body["errors"][0]["code"] == "UNAVAILABLE"
    assert "corp" in body["error_description"] and "try again later" in body["error_description"]
    assert "password" not in body["error_description"]
    assert response.headers["retry-after"]
    v2 = await client.get("/v2/", headers=basic("alice", "alice-pw"))
    assert v2.status_code == 503 and "try again later" in v2.text
    assert await _grants(client, resources, "bob", "bob-pw", "bob/app") == {"pull", "push"}, \
        "local accounts keep working while the directory is down"
    assert "identity source corp is unavailable" in caplog.text
    metrics = (await client.get("/metrics")).text
    assert 'authgate_identity_source_unavailable_total{source="corp"}' in metrics
    slapd.start()
    assert await _grants(client, resources, "alice", "alice-pw") == {"pull", "push"}, "back as soon as it is"


async def test_failed_directory_logins_log_neither_password_nor_bind_password(
        search_ctx: Ctx, slapd: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    from tests.support.slapd import SERVICE_PASSWORD

    client, resources, audit = search_ctx
    caplog.set_level(logging.DEBUG)
    password = "Very-Secret-Directory-Password-7"
    await client.get("/token", headers=basic("alice", password))
    await client.get("/v2/", headers=basic("carol", password))
    slapd.stop()
    await client.get("/token", headers=basic("dave", password))
    everything = caplog.text + repr(await audit.events())
    assert "login failed for 'alice'" in caplog.text
    assert password not in everything and SERVICE_PASSWORD not in everything
    slapd.start()
