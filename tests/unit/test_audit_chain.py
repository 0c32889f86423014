"""The audit chain on SQLite and PostgreSQL: appends stay linear under concurrency, tampering is named."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from authgate.audit.chain import append_rows, ensure_head, to_row
from authgate.audit.events import AuditEvent
from authgate.audit.recorder import SPILL_NAME, AuditRecorder
from authgate.audit.verify import PruneRefused, prune, verify
from authgate.db.models import AuditEvent as AuditRow
from authgate.db.session import Database
from authgate.subject import Subject

ALICE = Subject("user", "alice")


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro_fn())


async def _db(url: str) -> Database:
    db = Database(url)
    await db.upgrade()
    await ensure_head(db)
    return db


def _event(i: int, **kw: Any) -> AuditEvent:
    return AuditEvent(action="manifest:push", actor=ALICE, repository=f"alice/app{i % 3}", reference=f"v{i}",
                      digest="sha256:" + f"{i:064x}", size=i, **kw)


async def _sql(db: Database, statement: str) -> None:
    async with db.session() as session:
        await session.execute(text(statement))


async def _seqs(db: Database) -> list[int]:
    async with db.session() as session:
        return list((await session.execute(select(AuditRow.seq).order_by(AuditRow.seq))).scalars())


def test_untouched_chain_verifies(database_url: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        await append_rows(db, [to_row(_event(i, details={"granted": ["pull", "push"]})) for i in range(5)])
        result = await verify(db)
        assert result.ok and result.checked == 5 and result.last_seq == 5
        await db.close()

    run(body)


@pytest.mark.parametrize(
    ("tamper", "first_broken", "problem"),
    [
        ("UPDATE audit_events SET repository = 'mallory/app' WHERE seq = 3", 3, "changed"),
        ("UPDATE audit_events SET size = 999 WHERE seq = 2", 2, "changed"),
        ("UPDATE audit_events SET actor_name = 'bob' WHERE seq = 5", 5, "changed"),
        ("DELETE FROM audit_events WHERE seq = 4", 4, "missing"),
        ("DELETE FROM audit_events WHERE seq = 6", 6, "missing"),
        ("INSERT INTO audit_events (seq, time, actor_type, actor_name, action, outcome, prev_hash, hash) "
         "SELECT 7, time, actor_type, actor_name, action, outcome, hash, hash FROM audit_events WHERE seq = 6",
         7, "not in the chain"),
        # Swap two events (content and all): the first of them no longer follows its predecessor.
        ("swap 3 and 4", 3, "follow"),
    ],
)
def test_tampering_names_the_first_broken_event(database_url: str, tamper: str, first_broken: int,
                                                problem: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        await append_rows(db, [to_row(_event(i)) for i in range(6)])
        assert (await verify(db)).ok
        if tamper.startswith("swap"):  # seq is unique: move one out of the way first
            await _sql(db, "UPDATE audit_events SET seq = -3 WHERE seq = 3")
            await _sql(db, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
            await _sql(db, "UPDATE audit_events SET seq = 4 WHERE seq = -3")
        else:
            await _sql(db, tamper)
        result = await verify(db)
        assert result.broken is not None
        assert result.broken.seq == first_broken
        assert problem in result.broken.problem
        assert f"event {first_broken}" in result.broken.describe()
        await db.close()

    run(body)


def test_prune_moves_the_anchor_and_the_rest_still_verifies(database_url: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        old = datetime(2026, 1, 1, tzinfo=timezone.utc)
        await append_rows(db, [to_row(_event(i, time=old + timedelta(days=i))) for i in range(10)])
        result = await prune(db, old + timedelta(days=4))
        assert (result.deleted, result.anchor_seq) == (4, 4)
        assert await _seqs(db) == list(range(5, 11))
        checked = await verify(db)
        assert checked.ok and checked.checked == 6 and checked.first_seq == 5
        await append_rows(db, [to_row(_event(99))])
        assert (await verify(db)).ok
        # Tampering after the anchor is still found; tampering in what would be pruned refuses the prune.
        await _sql(db, "UPDATE audit_events SET reference = 'evil' WHERE seq = 6")
        assert (await verify(db)).broken is not None
        with pytest.raises(PruneRefused, match="event 6"):
            await prune(db, old + timedelta(days=8))
        await db.close()

    run(body)


def test_concurrent_appends_from_two_processes_stay_linear(database_url: str) -> None:
    """Two Database handles stand for two authgate processes (replicas, or serve + CLI)."""

    async def body() -> None:
        first, second = await _db(database_url), await _db(database_url)

        async def writer(db: Database, n: int) -> None:
            for j in range(5):
                await append_rows(db, [to_row(_event(n * 100 + j * 10 + k)) for k in range(4)])

        await asyncio.gather(*(writer(first if n % 2 else second, n) for n in range(10)))
        assert await _seqs(first) == list(range(1, 201))
        result = await verify(first)
        assert result.ok and result.checked == 200
        await first.close()
        await second.close()

    run(body)


def test_recorder_records_concurrent_events_completely(database_url: str, tmp_path: Path) -> None:
    async def body() -> None:
        db = await _db(database_url)
        recorder = AuditRecorder(db, tmp_path, batch_size=50)
        await recorder.start()

        async def push(n: int) -> None:
            for j in range(20):
                await recorder.record(_event(n * 1000 + j))
                await asyncio.sleep(0)

        await asyncio.gather(*(push(n) for n in range(25)))
        await recorder.stop()
        assert await _seqs(db) == list(range(1, 501))
        assert (await verify(db)).ok
        assert not (tmp_path / SPILL_NAME).exists()
        await db.close()

    run(body)


def test_a_recorder_fed_faster_than_a_batch_per_interval_keeps_up(database_url: str, tmp_path: Path) -> None:
    # The writer pauses between batches to let the next one gather; with a full batch already
    # waiting it must not, or it writes at most batch_size rows per interval and a faster stream of
    # events (/token answered from memory: ~7,000 a second against 1,000 per 200 ms) piles up in
    # memory until it spills. Here the pause is an hour: only back-to-back batches finish in time.
    async def body() -> None:
        db = await _db(database_url)
        recorder = AuditRecorder(db, tmp_path, batch_size=50, write_interval=3600)
        await recorder.start()
        for i in range(500):
            await recorder.record(_event(i))
        await recorder.flush(timeout=30)
        assert await _seqs(db) == list(range(1, 501))
        await recorder.stop()
        await db.close()

    run(body)


def test_source_id_is_recorded_once(database_url: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        rows = [to_row(_event(1, source_id="evt-1")), to_row(_event(2, source_id="evt-1"))]
        assert len(await append_rows(db, rows)) == 1
        assert await append_rows(db, [to_row(_event(3, source_id="evt-1"))]) == []
        assert await _seqs(db) == [1]
        await db.close()

    run(body)


class _FailingDatabase:
    """Stands for a database that is down: every session fails."""

    is_sqlite = True

    def __init__(self, real: Database) -> None:
        self.real = real
        self.down = True

    def session(self) -> Any:
        if self.down:
            raise ConnectionError("database is down")
        return self.real.session()


def test_database_down_spills_and_replays_at_next_start(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"

    async def body() -> None:
        db = await _db(url)
        broken: Any = _FailingDatabase(db)
        recorder = AuditRecorder(broken, tmp_path, retry_delays=(0.01,))
        recorder._writer = asyncio.create_task(recorder._write_loop())  # started without ensure_head
        for i in range(7):
            await recorder.record(_event(i))  # returns at once although nothing can be written
        await recorder.stop(timeout=0.3)
        spill = tmp_path / SPILL_NAME
        assert len(spill.read_text().splitlines()) == 7
        assert spill.stat().st_mode & 0o777 == 0o600
        assert await _seqs(db) == []

        again = AuditRecorder(db, tmp_path)
        await again.start()
        await again.stop()
        assert await _seqs(db) == list(range(1, 8))
        assert (await verify(db)).ok
        assert not spill.exists()
        await db.close()

    run(body)


def test_oversized_and_nul_values_are_cut_not_lost(database_url: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        event = AuditEvent(action="auth:login:failure", actor=Subject("user", "x" * 400),
                           user_agent="agent\x00" + "a" * 10_000, request_id="r" * 100, address="1" * 80)
        written = await append_rows(db, [to_row(event)])
        assert len(written) == 1 and len(written[0]["actor_name"]) == 255 and "\x00" not in written[0]["user_agent"]
        assert (await verify(db)).ok
        await db.close()

    run(body)


@pytest.mark.parametrize("details", [
    {"grant_type": "basic", "client_id": "nul\x00, lone surrogate \ud800, é", "granted": ""},
    {"identity": {"job": "1"}, "requested": ["a", "b"], "n": 3},
])
def test_row_details_are_what_the_json_column_gives_back(details: dict[str, Any]) -> None:
    """The hash covers the details as the JSON column returns them; a flat text mapping takes a
    shortcut (a copy instead of a JSON round trip) that must give the same thing."""
    row = to_row(_event(1, details=details))
    assert row["details"] == json.loads(json.dumps(details))
    assert row["details"] is not details  # a copy: the caller's dict is not the row's


def test_verify_while_a_server_keeps_appending(database_url: str) -> None:
    async def body() -> None:
        db = await _db(database_url)
        await append_rows(db, [to_row(_event(i)) for i in range(50)])
        stop = asyncio.Event()

        async def appender() -> None:
            i = 0
            while not stop.is_set():
                await append_rows(db, [to_row(_event(i)) for _ in range(5)])
                i += 1

        task = asyncio.create_task(appender())
        try:
            for _ in range(5):
                result = await verify(db)
                assert result.ok, result.broken
        finally:
            stop.set()
            await task
        assert (await verify(db)).ok
        await db.close()

    run(body)


@pytest.mark.parametrize("value", ["", "alice", "ä漢字🙂", "a\"b\\c", "\x00\x01\x1f\x7f", "\u2028", "\ud800", "x" * 600])
def test_the_hashed_text_is_json_dumps_character_for_character(value: str) -> None:
    # Every hash already in a chain was taken over json.dumps' text: the encoder kept for speed
    # must give the same characters, or `authgate audit verify` would call an untouched log broken.
    from authgate.audit.chain import FIELDS, canonical_json

    body: dict[str, Any] = {name: value for name in FIELDS}
    body.update(prev_hash="0" * 64, seq=2**63 - 1, size=None)
    for details in (None, {}, {"z": value, value: "a"}, {"n": [1, 2.5, True, None, {"b": value, "a": float("nan")}]}):
        body["details"] = details
        assert canonical_json(body) == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                                                  default=str)
