"""Checking the chain, and pruning it without making the rest unverifiable.

`verify` walks from the anchor (the last pruned event's seq and hash, kept in `audit_chain_head`)
to the head, recomputing every hash: a changed row fails its own hash, a removed one leaves a gap
in `seq`, a reordered one fails its `prev_hash`, and a cut tail no longer reaches the head.
`prune` first verifies what it is about to delete (deleting would hide tampering), then moves the
anchor to the last deleted event under the chain lock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from authgate.audit.chain import FIELDS, HEAD_ID, chain_lock, ensure_head, event_hash, lock_head
from authgate.db.models import AuditChainHead
from authgate.db.models import AuditEvent as AuditRow
from authgate.db.session import Database

_PAGE = 5000


@dataclass(frozen=True)
class Broken:
    """The first event where the chain breaks, and why."""

    seq: int
    problem: str
    row: dict[str, Any] | None = None

    def describe(self) -> str:
        if self.row:
            what = f"{self.row['action']} by {self.row['actor_type']}:{self.row['actor_name']} at {self.row['time']}"
            return f"event {self.seq} ({what}): {self.problem}"
        return f"event {self.seq}: {self.problem}"


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_seq: int
    last_seq: int
    broken: Broken | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


_COLUMNS = [getattr(AuditRow, name) for name in (*FIELDS, "prev_hash", "hash")]


async def _rows(db: Database, after_seq: int, up_to: int | None) -> AsyncIterator[dict[str, Any]]:
    """All rows with seq > after_seq (and <= up_to), in seq order, a page at a time (memory flat)."""
    last = after_seq
    while True:
        # Plain rows, not ORM objects: verify walks the whole log.
        query = select(*_COLUMNS).where(AuditRow.seq > last).order_by(AuditRow.seq).limit(_PAGE)
        if up_to is not None:
            query = query.where(AuditRow.seq <= up_to)
        async with db.session() as session:
            page = [dict(r._mapping) for r in await session.execute(query)]
        if not page:
            return
        for row in page:
            yield row
        last = page[-1]["seq"]


async def verify(db: Database, up_to: int | None = None) -> VerifyResult:
    """Walk the chain from the anchor; stop at the first broken event."""
    await ensure_head(db)
    async with db.session() as session:
        head = await session.get(AuditChainHead, HEAD_ID)
        assert head is not None
        anchor_seq, prev, head_seq, head_hash = head.anchor_seq, head.anchor_hash, head.seq, head.hash
    expected = anchor_seq + 1
    checked = 0
    # Walk only to the head as it was when we started: a running server keeps appending.
    async for row in _rows(db, anchor_seq, head_seq if up_to is None else up_to):
        seq = row["seq"]
        if seq != expected:
            return VerifyResult(checked, anchor_seq + 1, seq, Broken(
                expected, f"missing: the log jumps from event {expected - 1} to event {seq} (removed events)"))
        if row["prev_hash"] != prev:
            return VerifyResult(checked, anchor_seq + 1, seq, Broken(
                seq, "does not follow the event before it (reordered, or an event before it was removed)", row))
        if event_hash(row, prev) != row["hash"]:
            return VerifyResult(checked, anchor_seq + 1, seq, Broken(seq, "changed after it was recorded", row))
        prev = row["hash"]
        expected += 1
        checked += 1
    last = expected - 1
    if up_to is None:
        if last < head_seq:
            return VerifyResult(checked, anchor_seq + 1, last, Broken(
                last + 1, f"missing: the log ends at event {last} but {head_seq} were recorded (removed events)"))
        if last > anchor_seq and prev != head_hash:
            return VerifyResult(checked, anchor_seq + 1, last, Broken(last, "does not match the chain head"))
        async with db.session() as session:
            # Highest seq first, then the head: a legitimate append in between raises the head too.
            highest = (await session.execute(select(func.max(AuditRow.seq)))).scalar_one_or_none() or 0
            current = await session.get(AuditChainHead, HEAD_ID, populate_existing=True)
            assert current is not None
        if highest > current.seq:
            return VerifyResult(checked, anchor_seq + 1, last, Broken(
                current.seq + 1, f"not in the chain: events after the recorded head {current.seq} (inserted events)"))
    return VerifyResult(checked, anchor_seq + 1, last)


@dataclass(frozen=True)
class PruneResult:
    deleted: int
    anchor_seq: int


class PruneRefused(Exception):
    """Pruning would delete a broken part of the chain, hiding the tampering."""


async def prune(db: Database, before: datetime) -> PruneResult:
    """Delete events older than `before` (a prefix of the chain) and move the anchor past them."""
    await ensure_head(db)
    async with db.session() as session:
        head = await session.get(AuditChainHead, HEAD_ID)
        assert head is not None
        anchor_seq = head.anchor_seq
        first_kept = (await session.execute(
            select(func.min(AuditRow.seq)).where(AuditRow.time >= before, AuditRow.seq > anchor_seq)
        )).scalar_one_or_none()
        cut = (first_kept - 1) if first_kept is not None else head.seq
    if cut <= anchor_seq:
        return PruneResult(0, anchor_seq)
    checked = await verify(db, up_to=cut)
    if checked.broken is not None:
        raise PruneRefused(f"the events to prune do not verify: {checked.broken.describe()}")
    if db.is_sqlite:
        async with chain_lock(db):
            return await _move_anchor(db, cut)
    return await _move_anchor(db, cut)


async def _move_anchor(db: Database, cut: int) -> PruneResult:
    async with db.session() as session:
        head = await lock_head(session, db.is_sqlite)
        anchor_hash = (await session.execute(select(AuditRow.hash).where(AuditRow.seq == cut))).scalar_one()
        result = await session.execute(delete(AuditRow).where(AuditRow.seq <= cut))
        await session.execute(
            update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(anchor_seq=cut, anchor_hash=anchor_hash)
        )
        del head
        return PruneResult(int(getattr(result, "rowcount", 0) or 0), cut)
