"""`/token` answers repeated from memory (authgate.auth.token_answers, token_fast): what a client and
an auditor see is what the full path gives, and nothing the full path would refuse gets through.

Each test checks that the answer it relies on really came from memory (`answers.hits`): the
full path alone would pass most of them. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from authgate.audit.verify import verify
from authgate.auth import token_answers, tokens
from authgate.auth.services import auth_of
from authgate.auth.token_answers import TokenAnswers
from authgate.resources import Resources
from tests.api.registry_support import AuditLog
from tests.api.token_support import SERVICE, add_user, basic, token_app

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, AuditLog]
#: The promise: a change made anywhere stops the next request within this many seconds.
PROMISE = 1.0
SCOPE = "repository:alice/app:pull,push"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def _app(tmp_path: Path, database_url: str, **settings: object) -> AsyncIterator[Ctx]:
    """The app with alice, whose client first brings the change counters' view up to date before
    each request. Without it, a test on a loaded machine saw the poller notice alice's creation
    while her first login was in flight: that answer is then rightly not stored, and the next
    request, meant to be repeated from memory, took the full path. The promise itself is tested
    without this help in test_account_cache.py."""
    async with token_app(tmp_path, database_url, **settings) as (client, resources, audit):
        await add_user(resources, "alice", "alice-pw")

        async def settle(request: httpx.Request) -> None:
            await auth_of(resources).shared.refresh()

        client.event_hooks["request"].append(settle)
        yield client, resources, audit


@pytest.fixture
async def ctx(tmp_path: Path, database_url: str) -> AsyncIterator[Ctx]:
    async with _app(tmp_path, database_url) as found:
        yield found


def _answers(resources: Resources) -> TokenAnswers:
    assert resources.answers is not None
    return resources.answers


async def _get(client: httpx.AsyncClient, password: str = "alice-pw", **headers: str) -> httpx.Response:
    return await client.get("/token", params={"service": SERVICE, "scope": SCOPE},
                            headers={**basic("alice", password), **headers})


async def _refresh_form(client: httpx.AsyncClient) -> dict[str, str]:
    login = await client.get("/token", headers=basic("alice", "alice-pw"),
                             params={"service": SERVICE, "offline_token": "true", "client_id": "docker"})
    return {"grant_type": "refresh_token", "client_id": "docker", "service": SERVICE,
            "refresh_token": login.json()["refresh_token"], "scope": SCOPE}


def _without_request_id(response: httpx.Response) -> list[tuple[str, str]]:
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    return [(k, v) for k, v in response.headers.multi_items() if k != "x-request-id"]


@pytest.mark.parametrize("grant", ["basic", "refresh"])
async def test_a_repeated_answer_is_what_the_full_path_answers_at_that_moment(
        ctx: Ctx, grant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, resources, _ = ctx
    answers = _answers(resources)
    form = await _refresh_form(client) if grant == "refresh" else {}

    async def ask() -> httpx.Response:
        response = await (client.post("/token", data=form) if form else _get(client))
        assert response.status_code == 200
        return response

    now = [time.time()]
    clock = SimpleNamespace(time=lambda: now[0])
    monkeypatch.setattr(token_answers, "time", clock)
    monkeypatch.setattr(tokens, "time", clock)
    first = await ask()  # the full path; stored
    now[0] += 10
    hits = answers.hits
    repeated = await ask()
    assert answers.hits == hits + 1, "the second answer came from memory"
    answers.clear()
    full = await ask()  # the full path at the same moment: the same token, reused by issue_recent
    assert answers.hits == hits + 1
    assert repeated.content == full.content
    assert _without_request_id(repeated) == _without_request_id(full)
    assert repeated.headers["x-request-id"] != full.headers["x-request-id"]
    assert repeated.json()["expires_in"] == first.json()["expires_in"] - 10, "the life the token has left"

    now[0] += 25  # past the token's reuse window: a new token, from the full path
    renewed = await ask()
    assert answers.hits == hits + 1
    assert renewed.json()["token"] != first.json()["token"]
    assert renewed.json()["expires_in"] == first.json()["expires_in"]


async def test_every_repeated_answer_is_audited_with_its_own_request_id_and_client(ctx: Ctx) -> None:
    client, resources, audit = ctx
    answers = _answers(resources)
    responses = [await _get(client, **{"User-Agent": f"docker/{i}"}) for i in range(4)]
    assert answers.hits == 3
    events = [e for e in await audit.events() if e["action"] == "token:issue"]
    assert [e["request_id"] for e in events] == [r.headers["x-request-id"] for r in responses]
    assert [e["user_agent"] for e in events] == [f"docker/{i}" for i in range(4)]
    assert len({e["time"] for e in events}) == 4
    same = [{k: v for k, v in e.items() if k not in ("seq", "time", "user_agent", "request_id", "hash",
                                                      "prev_hash")} for e in events]
    assert same == [same[0]] * 4, "who, from where, what was asked and granted: as the full path recorded"
    assert same[0]["actor_name"] == "alice" and same[0]["address"] == "192.0.2.7"
    assert same[0]["details"]["granted"] == SCOPE
    assert (await verify(resources.db)).ok, "the repeated rows are chained like any other"


async def test_a_wrong_password_is_never_answered_from_memory(ctx: Ctx) -> None:
    client, resources, audit = ctx
    audit.record_every_failure()
    answers = _answers(resources)
    assert (await _get(client)).status_code == 200
    assert (await _get(client)).status_code == 200
    assert answers.hits == 1, "the right password is answered from memory"
    for i in range(10):  # wrong ones beside it: every one refused and counted by the limiter
        assert (await _get(client, f"alice-pw{i}")).status_code == 401
    assert answers.hits == 1
    assert (await audit.actions()).count("auth:login:failure") == 10
    locked = await _get(client)
    assert locked.status_code == 429, "the pair is locked: the remembered answer is not used"
    assert answers.hits == 1


async def test_repeated_answers_are_counted_in_metrics(ctx: Ctx) -> None:
    client, resources, _ = ctx
    form = await _refresh_form(client)
    for _ in range(3):
        assert (await _get(client)).status_code == 200
        assert (await client.post("/token", data=form)).status_code == 200
    assert _answers(resources).hits == 4
    text = (await client.get("/metrics")).text
    assert 'authgate_http_requests_total{method="GET",route="token",status="200"} 4.0' in text
    assert 'authgate_http_requests_total{method="POST",route="token",status="200"} 3.0' in text
    assert 'authgate_http_request_duration_seconds_count{method="POST",route="token"} 3.0' in text
    assert f'authgate_http_received_bytes_total{{route="token"}} {3.0 * len(str(httpx.QueryParams(form)))}' in text
    assert 'authgate_identity_logins_total{outcome="success",source="local"} 4.0' in text
    assert "authgate_token_answers_repeated_total 4.0" in text


async def test_a_policy_edit_reaches_repeated_answers_within_a_second(tmp_path: Path, database_url: str) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    rule = "rules:\n  - name: app\n    subjects: ['user:alice']\n    repositories: ['alice/**']\n    allow: [{}]\n"
    (policies / "rules.yaml").write_text(rule.format("pull"))
    async with _app(tmp_path, database_url, policies=policies) as (client, resources, _):
        access = auth_of(resources).tokens.verify
        for _ in range(2):
            assert access((await _get(client)).json()["token"]).access[("repository", "alice/app")] == {"pull"}
        assert _answers(resources).hits == 1
        (policies / "rules.yaml").write_text(rule.format("pull, push"))
        await asyncio.sleep(PROMISE)
        granted = access((await _get(client)).json()["token"]).access[("repository", "alice/app")]
        assert granted == {"pull", "push"}


async def test_no_answer_is_repeated_while_the_change_counters_are_stale(ctx: Ctx) -> None:
    client, resources, _ = ctx
    answers, watch = _answers(resources), auth_of(resources).shared
    assert (await _get(client)).status_code == 200
    assert (await _get(client)).status_code == 200
    assert answers.hits == 1
    assert watch._task is not None
    watch._task.cancel()  # the poller dies (as if the database stopped answering it)
    client.event_hooks["request"].clear()  # and nothing polls for it
    await asyncio.sleep(PROMISE)
    assert not watch.fresh
    assert (await _get(client)).status_code == 200
    assert answers.hits == 1, "a stale view sends the request down the full path"


async def test_each_forwarded_client_has_its_own_answers(tmp_path: Path, database_url: str) -> None:
    async with _app(tmp_path, database_url, trusted_proxies=("192.0.2.0/24",)) as (client, resources, audit):
        answers = _answers(resources)
        one, two = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.8", "X-Request-ID": "lb-42"}
        for headers in (one, two, one, two):
            assert (await _get(client, **headers)).status_code == 200
        assert answers.hits == 2
        events = [e for e in await audit.events() if e["action"] == "token:issue"]
        assert [e["address"] for e in events] == ["203.0.113.5", "198.51.100.8"] * 2
        assert events[3]["request_id"] == "lb-42", "a trusted proxy's request id is kept"


async def test_what_must_be_worked_out_each_time_is_not_repeated(ctx: Ctx) -> None:
    client, resources, _ = ctx
    answers = _answers(resources)
    offline = {"service": SERVICE, "offline_token": "true", "client_id": "docker"}
    refresh_tokens = {(await client.get("/token", headers=basic("alice", "alice-pw"), params=offline)
                       ).json()["refresh_token"] for _ in range(2)}
    assert len(refresh_tokens) == 2, "each offline login issues its own refresh token"
    for _ in range(2):
        assert (await client.get("/token", params={"service": SERVICE, "scope": SCOPE})).status_code == 200
        assert (await _get(client, "wrong")).status_code == 401
        assert (await client.post("/token", data={"grant_type": "refresh_token", "client_id": "docker",
                                                  "refresh_token": "agrt_unknown"})).status_code == 401
    assert answers.hits == 0


async def test_a_lock_the_limiter_knows_of_stops_repeated_answers_before_the_counters_move(ctx: Ctx) -> None:
    # A lock made by this process is in the limiter's memory at once; the change counter that drops
    # the stored answers is read up to 0.25 s later. In between, the limiter's memory decides.
    client, resources, _ = ctx
    answers, limiter = _answers(resources), auth_of(resources).limiter
    assert (await _get(client)).status_code == 200
    assert (await _get(client)).status_code == 200
    assert answers.hits == 1
    locks = limiter.store._locks  # type: ignore[attr-defined]  # the memory view only, no counter moved
    locks[limiter._pair("alice", "192.0.2.7")] = time.time() + 300
    assert (await _get(client)).status_code == 200, "the database holds no lock: the full path lets alice in"
    assert answers.hits == 1, "the stored answer was not used while the limiter's memory knew a lock"
