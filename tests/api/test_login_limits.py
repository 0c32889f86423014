"""The login brakes through `/token`, as the hardening issue attacked them: parallel guesses, CPU
exhaustion with made-up names, and locking the owner out; and `authgate user unlock`."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from authgate.auth import accounts, endpoints
from authgate.auth.services import auth_of
from tests.api.test_accounts_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.api.token_support import add_user, basic, token_app

pytestmark = pytest.mark.anyio
PROXIED = {"trusted_proxies": ("192.0.2.0/24",)}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_parallel_guesses_cannot_slip_the_right_password_through(tmp_path: Path, database_url: str) -> None:
    # The measurement: 39 parallel wrong passwords and the right one last got 39 x 401 and a 200.
    async with token_app(tmp_path, database_url) as (client, resources, audit):
        await add_user(resources, "alice", "alice-pw")
        audit.record_every_failure()
        passwords = [f"guess-{i}" for i in range(39)] + ["alice-pw"]
        responses = await _gather(client, [basic("alice", p) for p in passwords])
        statuses = [r.status_code for r in responses]
        # Ten are checked (on a loaded machine one of them may instead be told the hash queue is full);
        # every other one is refused before its password is looked at. Which ten is the order in which
        # they reserved in the database: the right one gets in only if it was among them.
        checked = statuses.count(401) + statuses.count(200)
        assert 8 <= checked <= 10 and checked + statuses.count(429) == 40
        refused = next(r for r in responses if r.status_code == 429).json()["errors"][0]["message"]
        assert "try again in 5 minutes" in refused and "authgate user unlock alice" in refused
        assert (await audit.actions()).count("auth:login:failure") == statuses.count(401) + 1, \
            "the failures and one lockout, not thirty"


async def test_identical_logins_at_once_all_get_in(tmp_path: Path, database_url: str) -> None:
    # Forty CI jobs of one user starting at once: each reserved an attempt, the reservations counted as
    # possible failures, and 23 of the 40 right passwords were refused with 429.
    async with token_app(tmp_path, database_url) as (client, resources, _):
        await add_user(resources, "ci", "ci-pw-long")
        responses = await _gather(client, [basic("ci", "ci-pw-long")] * 40)
        assert [r.status_code for r in responses] == [200] * 40


async def test_hashes_in_flight_are_bounded(tmp_path: Path, database_url: str) -> None:
    # 60 parallel logins with made-up names cost 60 concurrent bcrypts before: a real login waited behind them.
    async with token_app(tmp_path, database_url, **PROXIED) as (client, resources, _):
        context = auth_of(resources).verifier.context
        lock, running, peak = threading.Lock(), [0], [0]
        real_dummy = context.dummy_verify

        def dummy() -> bool:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.25)  # a hash that takes a while, so parallel ones overlap even on a loaded machine
            result: bool = real_dummy()
            with lock:
                running[0] -= 1
            return result

        context.dummy_verify = dummy  # type: ignore[method-assign]
        one_address = [{**basic(f"ghost{i}", "x"), **_from("203.0.113.5")} for i in range(12)]
        statuses = [r.status_code for r in await _gather(client, one_address)]
        assert set(statuses) == {401, 429}, "some wait their turn, the rest are told to retry"
        slots = auth_of(resources).limiter.slots
        assert peak[0] <= slots.per_address < slots.total, "one address never holds every hash slot"
        peak[0] = 0
        many = [{**basic(f"ghost{i}", "x"), **_from(f"198.51.100.{i}")} for i in range(24)]
        assert {r.status_code for r in await _gather(client, many)} == {401}
        assert peak[0] <= auth_of(resources).limiter.slots.total


async def test_a_guesser_cannot_lock_the_owner_out(tmp_path: Path, database_url: str) -> None:
    async with token_app(tmp_path, database_url, **PROXIED) as (client, resources, _):
        await add_user(resources, "alice", "alice-pw")
        secret = await accounts.create_robot(resources.db, "ci", None)
        home, attacker = _from("198.51.100.8"), _from("203.0.113.5")
        assert (await client.get("/token", headers={**basic("alice", "alice-pw"), **home})).status_code == 200
        for i in range(40):
            response = await client.get("/token", headers={**basic("alice", f"guess-{i}"), **attacker})
            assert response.status_code in (401, 429)
            await client.get("/token", headers={**basic("robot+ci", f"agr_guess-{i}"), **attacker})
        locked = await client.get("/token", headers={**basic("alice", "alice-pw"), **attacker})
        assert locked.status_code == 429 and 0 < int(locked.headers["retry-after"]) <= 300
        for where in (home, _from("198.51.100.99")):  # where she logged in before, and somewhere new
            assert (await client.get("/token", headers={**basic("alice", "alice-pw"), **where})).status_code == 200
            assert (await client.get("/v2/", headers={**basic("alice", "alice-pw"), **where})).status_code == 200
        robot = await client.get("/token", headers={**basic("robot+ci", secret), **_from("198.51.100.20")})
        assert robot.status_code == 200, "robots are never locked by name"


def test_user_unlock_lifts_a_lock_in_the_running_server(tmp_path: Path, cli: Cli) -> None:  # noqa: F811
    cli("user", "add", "alice", "--password-stdin", input="alice-pw\n")
    database = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authgate.db'}"

    async def serve() -> None:
        async with token_app(tmp_path, database) as (client, _, _):
            for i in range(10):
                assert (await client.get("/token", headers=basic("alice", f"guess-{i}"))).status_code == 401
            assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 429
            out, _ = await anyio.to_thread.run_sync(lambda: cli("user", "unlock", "alice"))
            assert "unlocked alice" in out
            await anyio.sleep(1.1)  # a locked name asks the database at most once a second
            assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200

    anyio.run(serve)
    assert "no user named 'bob'" in cli("user", "unlock", "bob", code=1)[1]
    assert "--address" in cli("user", "unlock", code=1)[1]


async def _gather(client: httpx.AsyncClient, headers: list[dict[str, str]]) -> list[httpx.Response]:
    responses: list[httpx.Response | None] = [None] * len(headers)

    async def one(index: int) -> None:
        responses[index] = await client.get("/token", headers=headers[index])

    async with anyio.create_task_group() as group:
        for index in range(len(headers)):
            group.start_soon(one, index)
    return [r for r in responses if r is not None]


async def test_a_trickled_login_form_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One byte every 8 s of a declared 16,000 held a connection for ever; 220 of them took every descriptor.
    monkeypatch.setattr(endpoints, "FORM_BODY_SECONDS", 0.2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b"grant_type=password&"
        await anyio.sleep(30)
        yield b"client_id=x"

    async with token_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'a.db'}") as (client, _, _):
        with anyio.fail_after(20):
            response = await client.post("/token", content=trickle(),
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 408 and "took over" in response.json()["error_description"]
