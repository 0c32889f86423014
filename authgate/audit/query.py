"""Reading the log: one filter type shared by the CLI, the admin API and export.

Pages go by `seq` (newest first, `before=SEQ` for the next page): stable while events keep
arriving, and served by the `(repository|actor_name|action, seq)` indexes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Select, or_, select

from authgate.audit.chain import FIELDS, format_time
from authgate.db.models import AuditEvent as AuditRow
from authgate.db.session import Database
from authgate.durations import DurationError, parse_duration

MAX_LIMIT = 1000
_ACTOR_KINDS = ("user", "robot", "anonymous", "cli", "server")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (`2026-11-28`, `2026-11-28T10:00:00Z`; no zone means UTC) or an age such as `24h`, `7d`."""
    text = text.strip()
    try:
        try:  # an age needs its unit: a bare `20261128` is an ISO 8601 date
            age = parse_duration(text, unit_required=True)
        except DurationError:
            pass
        else:
            return (now or datetime.now(timezone.utc)) - age
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: `99999999999d`, or a zone pushing year 1 out of range
        raise ValueError(f"{text[:60]!r} is not a time: use ISO 8601 (2026-11-28T10:00:00Z) or an age (24h, 7d)"
                         ) from None


@dataclass(frozen=True)
class AuditFilter:
    repository: str | None = None
    #: `alice`, or `user:alice` / `robot:ci` to pin the kind.
    actor: str | None = None
    #: Exact (`manifest:push`) or a prefix of whole parts (`manifest`, `auth:login`).
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Exact actions, any of them (the CLI's default "who pushed and deleted what" view).
    actions: tuple[str, ...] = ()

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.actions:
            query = query.where(AuditRow.action.in_(self.actions))
        if self.repository:
            query = query.where(AuditRow.repository == self.repository)
        if self.actor:
            kind, _, name = self.actor.partition(":")
            if name and kind in _ACTOR_KINDS:
                query = query.where(AuditRow.actor_type == kind, AuditRow.actor_name == name)
            else:
                query = query.where(AuditRow.actor_name == self.actor)
        if self.action:
            prefix = self.action.rstrip(":*")
            # A range rather than LIKE: no escaping of `_`/`%`, and the index serves it.
            query = query.where(or_(
                AuditRow.action == prefix,
                (AuditRow.action >= prefix + ":") & (AuditRow.action < prefix + ";"),
            ))
        if self.since:
            query = query.where(AuditRow.time >= self.since)
        if self.until:
            query = query.where(AuditRow.time < self.until)
        return query


def public_form(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public form of an event: what `list --json`, export, the API and the webhook show."""
    values = {name: row.get(name) for name in FIELDS}
    values["time"] = format_time(row["time"])
    values["actor"] = f"{row['actor_type']}:{row['actor_name']}" if row["actor_type"] != "anonymous" else "anonymous"
    values["prev_hash"] = row.get("prev_hash")
    values["hash"] = row.get("hash")
    return values


def row_to_dict(row: AuditRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in FIELDS}
    values["prev_hash"], values["hash"] = row.prev_hash, row.hash
    return public_form(values)


async def list_events(db: Database, flt: AuditFilter, limit: int = 100, before: int | None = None
                      ) -> list[dict[str, Any]]:
    """Up to `limit` events matching `flt`, newest first, with seq below `before` when given."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = flt.apply(select(AuditRow))
    if before is not None:
        query = query.where(AuditRow.seq < before)
    query = query.order_by(AuditRow.seq.desc()).limit(limit)
    async with db.session() as session:
        return [row_to_dict(r) for r in (await session.execute(query)).scalars()]


async def iter_events(db: Database, flt: AuditFilter, page: int = 5000) -> AsyncIterator[dict[str, Any]]:
    """Every matching event, oldest first, a page at a time so memory stays flat (export)."""
    last = -1
    while True:
        query = flt.apply(select(AuditRow)).where(AuditRow.seq > last).order_by(AuditRow.seq).limit(page)
        async with db.session() as session:
            rows = [row_to_dict(r) for r in (await session.execute(query)).scalars()]
        if not rows:
            return
        for row in rows:
            yield row
        last = rows[-1]["seq"]
