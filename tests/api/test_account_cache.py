"""Accounts come from memory, yet every revocation stops the next request within one second.

The changes are made through a second database handle (its own engine and pool, as the CLI or
another authgate replica would), so this process learns of them only by polling the change
counter: nothing here relies on the in-process shortcut. Each test first shows the cache is
serving (hits go up, the request succeeds), then changes the account, waits one second (the
promise) and shows the next request refused. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authgate.auth import accounts
from authgate.auth.account_cache import CachedAccounts
from authgate.auth.refresh import list_refresh_tokens, revoke_refresh_tokens
from authgate.auth.services import auth_of
from authgate.db.session import Database
from authgate.resources import Resources
from tests.api.token_support import SERVICE, add_user, basic, token_app

#: The promise: a change made anywhere stops the next request within this many seconds.
PROMISE = 1.0

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, Database]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ctx(tmp_path: Path, database_url: str) -> AsyncIterator[Ctx]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "rules.yaml").write_text(
        "rules:\n"
        "  - name: backend\n    subjects: ['team:backend']\n    repositories: ['backend/**']\n    allow: ['*']\n"
        "  - name: robots\n    subjects: ['robot:*']\n    repositories: ['ci/**']\n    allow: [pull]\n"
    )
    async with token_app(tmp_path, database_url, policies=policies) as (client, resources, _):
        await add_user(resources, "alice", "alice-pw")
        await accounts.create_team(resources.db, "backend")
        await accounts.add_members(resources.db, "backend", ["alice"])
        other = Database(database_url)  # another process's handle: no in-process notification
        try:
            yield client, resources, other
        finally:
            await other.close()


def _cache(resources: Resources) -> CachedAccounts:
    return auth_of(resources).accounts


async def _served_from_memory(resources: Resources, request: object, bearer: bool = True) -> None:
    """Run `request` twice and check the second one's `/token` answers were repeated from memory
    (authgate.auth.token_answers) and, with `bearer`, its `/v2/` requests found the account cache."""
    assert callable(request) and resources.answers is not None
    await auth_of(resources).shared.refresh()  # the setup's changes seen: the first answers are kept
    await request()
    hits, answered = _cache(resources).hits, resources.answers.hits
    await request()
    assert resources.answers.hits > answered, "no /token answer was repeated from memory"
    if bearer:
        assert _cache(resources).hits > hits, "the account cache did not answer"


async def _token(client: httpx.AsyncClient, user: str, password: str, scope: str = "") -> httpx.Response:
    params = {"service": SERVICE, **({"scope": scope} if scope else {})}
    return await client.get("/token", headers=basic(user, password), params=params)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_disabling_a_user_stops_basic_and_bearer(ctx: Ctx) -> None:
    client, resources, other = ctx
    token = (await _token(client, "alice", "alice-pw")).json()["token"]

    async def both() -> None:
        assert (await _token(client, "alice", "alice-pw")).status_code == 200
        assert (await client.get("/v2/", headers=_bearer(token))).status_code == 200

    await _served_from_memory(resources, both)
    await accounts.set_disabled(other, "alice", True)
    await asyncio.sleep(PROMISE)
    assert (await _token(client, "alice", "alice-pw")).status_code == 401
    assert (await client.get("/v2/", headers=_bearer(token))).status_code == 401


async def test_a_new_password_stops_the_old_one_and_its_refresh_tokens(ctx: Ctx) -> None:
    client, resources, other = ctx
    login = await client.get("/token", headers=basic("alice", "alice-pw"),
                             params={"service": SERVICE, "offline_token": "true", "client_id": "docker"})
    grant = {"grant_type": "refresh_token", "client_id": "docker", "service": SERVICE,
             "refresh_token": login.json()["refresh_token"]}

    async def both() -> None:
        assert (await _token(client, "alice", "alice-pw")).status_code == 200
        assert (await client.post("/token", data=grant)).status_code == 200

    await _served_from_memory(resources, both, bearer=False)
    await accounts.set_password(other, "alice", auth_of(resources).verifier.hash("new-pw"))
    await asyncio.sleep(PROMISE)
    assert (await _token(client, "alice", "alice-pw")).status_code == 401
    assert (await client.post("/token", data=grant)).status_code == 401
    assert (await _token(client, "alice", "new-pw")).status_code == 200


async def test_removing_a_team_member_stops_the_team_grant(ctx: Ctx) -> None:
    client, resources, other = ctx
    scope = "repository:backend/api:pull"
    token = (await _token(client, "alice", "alice-pw", scope)).json()["token"]

    async def both() -> None:
        response = await _token(client, "alice", "alice-pw", scope)
        assert auth_of(resources).tokens.verify(response.json()["token"]).access[("repository", "backend/api")]
        assert (await client.get("/v2/backend/api/tags/list", headers=_bearer(token))).status_code != 401

    await _served_from_memory(resources, both)
    await accounts.remove_members(other, "backend", ["alice"])
    await asyncio.sleep(PROMISE)
    response = await _token(client, "alice", "alice-pw", scope)
    assert not auth_of(resources).tokens.verify(response.json()["token"]).access[("repository", "backend/api")]
    refused = await client.get("/v2/backend/api/tags/list", headers=_bearer(token))
    assert refused.status_code == 401
    assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]


async def test_disabling_a_robot_stops_its_secret_and_its_tokens(ctx: Ctx) -> None:
    client, resources, other = ctx
    secret = await accounts.create_robot(resources.db, "builder", None)
    token = (await _token(client, "robot+builder", secret)).json()["token"]

    async def both() -> None:
        assert (await _token(client, "robot+builder", secret)).status_code == 200
        assert (await client.get("/v2/", headers=_bearer(token))).status_code == 200

    await _served_from_memory(resources, both)
    await accounts.set_robot_disabled(other, "builder", True)
    await asyncio.sleep(PROMISE)
    assert (await _token(client, "robot+builder", secret)).status_code == 401
    assert (await client.get("/v2/", headers=_bearer(token))).status_code == 401


async def test_revoking_a_refresh_token_stops_the_refresh_grant(ctx: Ctx) -> None:
    client, resources, other = ctx
    login = await client.get("/token", headers=basic("alice", "alice-pw"),
                             params={"service": SERVICE, "offline_token": "true", "client_id": "docker"})
    grant = {"grant_type": "refresh_token", "client_id": "docker", "service": SERVICE,
             "refresh_token": login.json()["refresh_token"]}

    async def refresh() -> None:
        assert (await client.post("/token", data=grant)).status_code == 200

    await _served_from_memory(resources, refresh, bearer=False)
    (token,) = await list_refresh_tokens(other)
    assert await revoke_refresh_tokens(other, token_id=token.id) == 1
    await asyncio.sleep(PROMISE)
    assert (await client.post("/token", data=grant)).status_code == 401
    assert (await _token(client, "alice", "alice-pw")).status_code == 200, "only the token was revoked"


async def test_a_stalled_poller_stops_trusting_its_cache(ctx: Ctx) -> None:
    """If the change counter cannot be read, lookups go to the database instead of the cache."""
    client, resources, other = ctx
    cache = _cache(resources)
    assert cache.watch._task is not None
    cache.watch._task.cancel()  # the poller dies (as if the database stopped answering it)
    assert (await _token(client, "alice", "alice-pw")).status_code == 200
    await accounts.set_disabled(other, "alice", True)
    await asyncio.sleep(PROMISE)
    assert not cache.trusted
    assert (await _token(client, "alice", "alice-pw")).status_code == 401


async def test_lookups_that_find_the_cache_untrusted_share_one_counter_read(ctx: Ctx,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A poller that fell behind (a saturated loop) made every lookup a database query, 16 at once
    for 16 concurrent requests of one user. Now they share one read of the change counter, and
    answer from memory when it did not move; when it moved, they see the change."""
    _, resources, other = ctx
    cache = _cache(resources)
    assert cache.watch._task is not None
    cache.watch._task.cancel()
    await cache.watch.poll_once()  # the counters as the setup's changes left them
    assert (await cache.user("alice")) is not None
    await asyncio.sleep(PROMISE)
    assert not cache.trusted
    loads: list[str] = []
    original = cache.source.user

    async def counted(name: str) -> object:
        loads.append(name)
        return await original(name)

    monkeypatch.setattr(cache.source, "user", counted)
    polls = 0
    poll_once = cache.watch.poll_once

    async def counted_poll() -> None:
        nonlocal polls
        polls += 1
        await poll_once()

    monkeypatch.setattr(cache.watch, "poll_once", counted_poll)
    found = await asyncio.gather(*(cache.user("alice") for _ in range(16)))
    assert all(user is not None and not user.disabled for user in found)
    assert (polls, loads) == (1, []), "one counter read, no user query"
    await accounts.set_disabled(other, "alice", True)
    await asyncio.sleep(PROMISE)
    found = await asyncio.gather(*(cache.user("alice") for _ in range(4)))
    assert all(user is not None and user.disabled for user in found)


async def test_a_row_read_before_a_change_is_not_kept_after_it(ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that read the row just before a change and finishes just after must not put the
    old row back into the cache the change emptied."""
    _, resources, _ = ctx
    cache = _cache(resources)
    read, release = asyncio.Event(), asyncio.Event()
    original = cache.source.user

    async def slow_user(name: str) -> object:
        row = await original(name)
        read.set()
        await release.wait()
        return row

    cache.invalidate()
    monkeypatch.setattr(cache.source, "user", slow_user)
    lookup = asyncio.create_task(cache.user("alice"))
    await read.wait()
    await accounts.set_disabled(resources.db, "alice", True)
    release.set()
    stale = await lookup
    assert stale is not None and not stale.disabled, "that lookup saw the row as it was"
    monkeypatch.setattr(cache.source, "user", original)
    fresh = await cache.user("alice")
    assert fresh is not None and fresh.disabled
