"""The login limiter's decisions (on a fake clock) and the bound on hashes in flight."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from authgate.auth.hash_slots import HashesBusy, HashSlots
from authgate.auth.limiter import LoginLimiter, TooManyAttempts
from authgate.auth.limiter_store import MemoryLimiterStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _limiter(clock: Clock, **kwargs: object) -> LoginLimiter:
    rules: dict[str, object] = dict(slow_after=2, block_after=4, user_slow_after=4, address_slow_after=6,
                                    address_block_after=8, window=100, lockout=50, delay=1.0, max_delay=3.0)
    rules.update(kwargs)
    return LoginLimiter(clock=clock, **rules)  # type: ignore[arg-type]


async def _fail(limiter: LoginLimiter, name: str, address: str, secret: str, robot: bool = False) -> float:
    async with limiter.attempt(name, address, secret, robot=robot) as attempt:
        return attempt.delay


async def _succeed(limiter: LoginLimiter, name: str, address: str, robot: bool = False) -> float:
    async with limiter.attempt(name, address, "right", robot=robot) as attempt:
        attempt.succeeded()
        return attempt.delay


async def test_the_guessing_pair_is_locked_and_the_owner_elsewhere_is_only_slowed() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    for i in range(4):
        clock.now += 1
        await _fail(limiter, "alice", "10.0.0.66", f"guess{i}")
    with pytest.raises(TooManyAttempts) as info:
        await _succeed(limiter, "alice", "10.0.0.66")
    assert info.value.retry_after == 50 and info.value.first
    assert "try again in 50 s" in info.value.message
    assert "`authgate user unlock alice`" in info.value.message, "says how an administrator lifts it"
    with pytest.raises(TooManyAttempts) as again:
        await _succeed(limiter, "alice", "10.0.0.66")
    assert not again.value.first, "one audit event per lockout"
    assert await _succeed(limiter, "alice", "10.0.0.1") == 1.0, "the owner elsewhere gets in, slowed"
    clock.now += 51
    assert await _succeed(limiter, "alice", "10.0.0.66") == 1.0, "the lock ends by itself"


async def test_attempts_are_counted_while_they_run() -> None:
    # The hardening issue's attack: parallel guesses all passed the check before any failure was recorded.
    clock = Clock()
    limiter = _limiter(clock)
    async with AsyncExitStack() as stack:
        for i in range(4):
            await stack.enter_async_context(limiter.attempt("alice", "10.0.0.66", f"guess{i}"))
        with pytest.raises(TooManyAttempts):
            await stack.enter_async_context(limiter.attempt("alice", "10.0.0.66", "right"))
    with pytest.raises(TooManyAttempts):
        await _succeed(limiter, "alice", "10.0.0.66")


async def test_a_success_gives_its_reservation_back_and_trusts_the_pair() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    for _ in range(10):
        assert await _succeed(limiter, "alice", "10.0.0.1") == 0
    for i in range(8):  # the address sprays names: slowed, then locked for new pairs
        await _fail(limiter, f"user{i}", "10.0.0.1", "guess")
    with pytest.raises(TooManyAttempts) as info:
        await _succeed(limiter, "bob", "10.0.0.1")
    assert "`authgate user unlock --address 10.0.0.1`" in info.value.message
    assert await _succeed(limiter, "alice", "10.0.0.1") == 0, "alice logged in from here before"
    for i in range(20):  # guesses for alice from many places slow alice from new places only
        await _fail(limiter, "alice", f"10.1.0.{i}", f"guess{i}")
    assert await _succeed(limiter, "alice", "10.2.0.1") == 3.0
    assert await _succeed(limiter, "alice", "10.0.0.1") == 0


async def test_robots_are_never_locked_by_name() -> None:
    clock = Clock()
    limiter = _limiter(clock)
    await _succeed(limiter, "robot+ci", "10.0.0.5", robot=True)
    for i in range(40):
        clock.now += 0.1
        try:
            await _fail(limiter, "robot+ci", f"10.0.{i % 4}.9", f"guess{i}", robot=True)
        except TooManyAttempts:
            pass  # the guessing addresses lock themselves
    assert await _succeed(limiter, "robot+ci", "10.0.0.5", robot=True) == 0
    assert await _succeed(limiter, "robot+ci", "10.9.0.1", robot=True) == 0


async def test_a_repeated_identical_failure_counts_once() -> None:
    # containerd POSTs, gets 401, then GETs with the same credentials.
    clock = Clock()
    limiter = _limiter(clock)
    for _ in range(6):
        clock.now += 0.1
        await _fail(limiter, "alice", "10.0.0.1", "same-guess")
    assert await _succeed(limiter, "alice", "10.0.0.1") == 0


async def test_an_administrator_unlock_applies_at_once() -> None:
    clock = Clock()
    unlocked = {"user:alice": 0.0}

    async def unlocks(target: str) -> float:
        return unlocked.get(target, 0.0)

    limiter = _limiter(clock, unlocks=unlocks)
    for i in range(4):
        await _fail(limiter, "alice", "10.0.0.66", f"guess{i}")
    with pytest.raises(TooManyAttempts):
        await _succeed(limiter, "alice", "10.0.0.66")
    unlocked["user:alice"] = clock.now
    assert limiter.unlocks is not None
    limiter.unlocks.cache.clear()  # read at most once a second; the test does not wait
    assert await _succeed(limiter, "alice", "10.0.0.66") == 0


async def test_limiter_state_stays_bounded() -> None:
    clock = Clock()
    store = MemoryLimiterStore(max_keys=50)
    limiter = _limiter(clock, store=store)
    for i in range(300):
        clock.now += 1
        await _fail(limiter, f"user{i}", f"10.0.{i // 250}.{i % 250}", "x")
    assert len(store) <= 100


async def test_hash_slots_bound_total_per_user_and_per_address() -> None:
    slots = HashSlots(total=3, per_user=1, per_address=2, max_waiting=64, wait=5)
    running: list[str] = []
    peak = {"total": 0}

    async def login(user: str, address: str) -> None:
        async with slots.take(user, address, trusted=False):
            running.append(user)
            peak["total"] = max(peak["total"], len(running))
            assert running.count(user) <= 1
            await anyio.sleep(0.01)
            running.remove(user)

    async with anyio.create_task_group() as group:
        for i in range(6):
            group.start_soon(login, "alice", f"10.0.0.{i}")
            group.start_soon(login, f"user{i}", f"10.0.1.{i % 2}")
    assert 1 < peak["total"] <= 3
    slots = HashSlots(total=3, per_user=1, per_address=2, max_waiting=1, wait=0.05)
    holders = [slots.take("x1", "10.0.0.1", False), slots.take("x2", "10.0.0.1", False),
               slots.take("x3", "10.0.0.2", False)]
    for holder in holders:
        await holder.__aenter__()
    for _ in range(2):  # no slot comes within the wait: "busy", and the queue is left empty
        with pytest.raises(HashesBusy):
            async with slots.take("y", "10.0.0.3", False):
                pass
    for holder in holders:
        await holder.__aexit__(None, None, None)
    assert slots.in_flight == 0


async def test_a_trusted_login_goes_before_queued_guesses() -> None:
    slots = HashSlots(total=1, per_user=1, per_address=1, max_waiting=10, wait=5)
    order: list[str] = []

    async def login(name: str, trusted: bool) -> None:
        async with slots.take("alice", name, trusted):
            order.append(name)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as group:
        for i in range(4):
            group.start_soon(login, f"guess{i}", False)
        await anyio.sleep(0.001)
        group.start_soon(login, "owner", True)
    assert order.index("owner") <= 1


async def test_one_address_cannot_fill_the_queue_and_the_owner_always_queues() -> None:
    slots = HashSlots(total=1, per_user=1, per_address=1, max_waiting=16, wait=5)
    busy = 0
    release = anyio.Event()  # the hash in progress lasts until every login has queued or been refused

    async def login(name: str, address: str, trusted: bool = False) -> None:
        nonlocal busy
        try:
            async with slots.take(name, address, trusted):
                await release.wait()
        except HashesBusy:
            busy += 1

    async with anyio.create_task_group() as group:
        for i in range(10):  # one address: two may wait, the rest are told "busy" at once
            group.start_soon(login, f"ghost{i}", "203.0.113.5")
        await anyio.sleep(0.001)
        assert busy == 7
        for i in range(20):  # many addresses fill the queue
            group.start_soon(login, f"ghost-{i}", f"198.51.100.{i}")
        await anyio.sleep(0.001)
        group.start_soon(login, "alice", "192.0.2.1", True)
        await anyio.sleep(0.01)
        refused = busy
        release.set()
    assert refused == 7 + 20 - (16 - 2), "the owner got a place in a full queue"
    assert busy == refused, "nobody who queued was refused later"
