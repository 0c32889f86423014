"""The hash chain: how one event becomes one row, and how a batch of rows is appended atomically.

Each row's `hash` is sha256 over a canonical JSON of its fields, its `seq` and the previous row's
hash, so changing, removing or reordering a row breaks the chain from that row on. Appends take
the single `audit_chain_head` row's lock first (SELECT … FOR UPDATE on PostgreSQL; a write to it
on SQLite, which takes the database write lock like BEGIN IMMEDIATE), so concurrent writers, in
this process or another, line up one after the other and `seq` stays gap-free.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from dataclasses import dataclass
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.audit.events import AuditEvent, flat_text
from authgate.db.models import AuditChainHead
from authgate.db.models import AuditEvent as AuditRow
from authgate.db.session import Database

GENESIS = "0" * 64
HEAD_ID = 1

#: Fields covered by the hash, in the order they are exported.
FIELDS = (
    "seq", "time", "actor_type", "actor_name", "action", "repository", "reference", "digest", "size",
    "outcome", "reason", "address", "user_agent", "request_id", "details", "source_id",
)

#: Column limits: a value too long is cut rather than failing the write (and losing the event).
_LIMITS = {
    "actor_type": 32, "actor_name": 255, "action": 64, "repository": 255, "reference": 255, "digest": 160,
    "outcome": 16, "address": 64, "request_id": 64, "source_id": 128,
}
_MAX_TEXT = 8192

# Core tables: a batch insert through them skips the ORM's per-row bookkeeping.
_HEAD_TABLE = cast(Table, AuditChainHead.__table__)
_EVENTS_TABLE = cast(Table, AuditRow.__table__)

_sqlite_locks: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def format_time(value: datetime) -> str:
    """UTC with microseconds always: the same text whatever the database gives back."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    utc = value.astimezone(timezone.utc)
    if utc.year < 1000:  # strftime does not pad %Y to four digits everywhere; isoformat does
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as that strftime, for a fraction of its cost (hashed for every event written).
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _clean(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    # PostgreSQL refuses NUL in text; a client-chosen header must not be able to drop an event.
    return str(value).replace("\x00", "")[:limit]


def to_row(event: AuditEvent) -> dict[str, Any]:
    """Column values for `event`, cut to the schema's limits; `seq`, `prev_hash`, `hash` come at append."""
    values: dict[str, Any] = {
        "time": event.time if event.time.tzinfo else event.time.replace(tzinfo=timezone.utc),
        "actor_type": event.actor_type or event.actor.kind,
        "actor_name": event.actor.name,
        "action": event.action,
        "repository": event.repository,
        "reference": event.reference,
        "digest": event.digest,
        "size": event.size,
        "outcome": event.outcome,
        "reason": event.reason,
        "address": event.address,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "source_id": event.source_id,
    }
    for name, value in values.items():
        if isinstance(value, str):
            values[name] = _clean(value, _LIMITS.get(name, _MAX_TEXT))
    values["time"] = values["time"].astimezone(timezone.utc)
    if not isinstance(values["size"], int) or not -(2**63) <= values["size"] < 2**63:
        values["size"] = None  # BIGINT: a wild value must not make the batch fail
    # Round-trip through JSON so the hashed form is exactly what the JSON column gives back.
    # (A flat mapping of text to text comes back from JSON as an equal copy: no round trip needed.)
    details = event.details
    values["details"] = (None if not details else dict(details) if flat_text(details)
                         else json.loads(json.dumps(details, default=str)))
    return values


def event_hash(row: Mapping[str, Any], prev_hash: str) -> str:
    """sha256 over the canonical JSON of the row's fields, its seq and the previous hash."""
    body = {name: row.get(name) for name in FIELDS}
    body["time"] = format_time(row["time"])
    body["prev_hash"] = prev_hash
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


#: `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)`'s own C
#: encoder, made once rather than at every call (a tenth of a row's cost in the batch writer). No
#: circular-reference check: rows hold only what `to_row` made, plain values and JSON round trips.
_CANONICAL = (c_make_encoder(None, str, encode_basestring_ascii, None, ":", ",", True, False, True)
              if c_make_encoder is not None else None)


def canonical_json(body: Mapping[str, Any]) -> str:
    """The text the chain hashes: character for character what `json.dumps` gives with those options."""
    if _CANONICAL is None:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return "".join(_CANONICAL(body, 0))


async def ensure_head(db: Database) -> None:
    """Create the chain head row if this database has none yet (two starters may race: one wins)."""
    async with db.session() as session:
        if await session.get(AuditChainHead, HEAD_ID) is not None:
            return
    try:
        async with db.session() as session:
            session.add(AuditChainHead(id=HEAD_ID, seq=0, hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS))
    except IntegrityError:
        pass


def chain_lock(db: Database) -> asyncio.Lock:
    """In-process serialisation for SQLite, whose write lock is per connection and would make
    concurrent tasks of one process wait on `busy_timeout` instead of on each other."""
    lock = _sqlite_locks.get(db)
    if lock is None:
        lock = _sqlite_locks[db] = asyncio.Lock()
    return lock


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str
    anchor_seq: int
    anchor_hash: str


async def lock_head(session: AsyncSession, is_sqlite: bool) -> ChainHead:
    """Take the chain's write lock inside `session`'s transaction and return the head."""
    table = _HEAD_TABLE
    if is_sqlite:
        # A write first: pysqlite then opens the transaction and SQLite takes its RESERVED lock
        # as it reads the head (the effect of BEGIN IMMEDIATE), so no other process can append
        # between our read and our write. RETURNING makes it one round trip.
        query: Any = update(table).where(table.c.id == HEAD_ID).values(seq=table.c.seq).returning(*table.c)
    else:
        query = select(table).where(table.c.id == HEAD_ID).with_for_update()
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise RuntimeError("audit chain head is missing: run `authgate db upgrade` or start authgate once")
    return ChainHead(row.seq, row.hash, row.anchor_seq, row.anchor_hash)


async def _known_source_ids(session: AsyncSession, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        rows = await session.execute(select(AuditRow.source_id).where(AuditRow.source_id.in_(chunk)))
        found.update(r for (r,) in rows if r)
    return found


async def append_rows(db: Database, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append `rows` (from `to_row`) in one transaction; returns the rows written, with seq and hash.

    Rows whose `source_id` is already in the log (or repeated in the batch) are dropped: a registry
    that resends a notification must not record it twice.
    """
    if not rows:
        return []
    if db.is_sqlite:
        async with chain_lock(db):
            return await _append(db, rows)
    return await _append(db, rows)


async def _append(db: Database, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    async with db.session() as session:
        head = await lock_head(session, db.is_sqlite)
        source_ids = [r["source_id"] for r in rows if r.get("source_id")]
        seen = await _known_source_ids(session, source_ids) if source_ids else set()
        seq, prev = head.seq, head.hash
        written: list[dict[str, Any]] = []
        for row in rows:
            source_id = row.get("source_id")
            if source_id:
                if source_id in seen:
                    continue
                seen.add(source_id)
            seq += 1
            full = {**row, "seq": seq, "prev_hash": prev}
            full["hash"] = prev = event_hash(full, full["prev_hash"])
            written.append(full)
        if written:
            connection = await session.connection()
            statement, names, processors = _insert_for(connection.dialect)
            await connection.exec_driver_sql(statement, [
                tuple(row.get(name) if process is None else process(row.get(name))
                      for name, process in zip(names, processors)) for row in written])
            await session.execute(
                update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == HEAD_ID).values(seq=seq, hash=prev)
            )
        return written


_INSERTS: dict[str, tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]] = {}


def _insert_for(dialect: Dialect) -> tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...]]:
    """The batch insert as the driver's SQL, with each column's bind processor from its type: what
    `session.execute(insert(table), rows)` sends, without SQLAlchemy's per-row parameter machinery,
    which was ~10 us of every row (a quarter of a `/token` answered from memory went to its row).
    Positional parameters, on SQLite (qmark) and psycopg (format) alike."""
    found = _INSERTS.get(dialect.name)
    if found is None:
        names = tuple(c.name for c in _EVENTS_TABLE.columns if c.name != "id")
        statement = f"INSERT INTO {_EVENTS_TABLE.name} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
        if dialect.paramstyle == "qmark":
            statement = statement.replace("%s", "?")
        elif dialect.paramstyle not in ("format", "pyformat"):
            raise RuntimeError(f"audit insert: unexpected paramstyle {dialect.paramstyle}")
        processors = tuple(_EVENTS_TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        found = _INSERTS[dialect.name] = (statement, names, processors)
    return found


async def record_now(db: Database, event: AuditEvent) -> dict[str, Any] | None:
    """Append one event synchronously: for the CLI and tools that have no running recorder."""
    await ensure_head(db)
    written = await append_rows(db, [to_row(event)])
    return written[0] if written else None
