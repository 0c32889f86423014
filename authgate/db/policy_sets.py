"""The policy pushed into the database (`authgate policy push`), for servers with `policy_source: database`.

Why in the database: every replica must decide with the same policy, and "the same files on every
replica" (a shared volume, config management) is a promise authgate cannot check. A push is one row
with the files' text and the `policy` change counter bumped in the same transaction, so each server's
poller (`db/versions.VersionWatch`) sees it within its interval and reloads; the files are checked
before they are stored, so a push never carries a policy that does not load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from authgate.db.models import PolicySet
from authgate.db.session import Database
from authgate.db.versions import POLICY, bump


@dataclass(frozen=True)
class PushedPolicy:
    id: int
    digest: str
    files: tuple[tuple[str, str], ...]
    rules: int
    pushed_by: str
    pushed_at: datetime

    def describe(self) -> str:
        return f"push #{self.id} ({self.digest[:19]}…, by {self.pushed_by} at {self.pushed_at:%Y-%m-%d %H:%M:%S}Z)"


def files_digest(files: tuple[tuple[str, str], ...]) -> str:
    """Names and text, each length-prefixed so that no two different sets hash alike."""
    hasher = hashlib.sha256()
    for name, text in files:
        for part in (name.encode(), text.encode()):
            hasher.update(len(part).to_bytes(8, "big"))
            hasher.update(part)
    return "sha256:" + hasher.hexdigest()


def _pushed(row: PolicySet) -> PushedPolicy:
    return PushedPolicy(id=row.id, digest=row.digest, files=tuple((name, text) for name, text in row.files),
                        rules=row.rules, pushed_by=row.pushed_by, pushed_at=row.pushed_at)


async def latest_policy(db: Database) -> PushedPolicy | None:
    async with db.session() as session:
        row = await session.scalar(select(PolicySet).order_by(PolicySet.id.desc()).limit(1))
        return None if row is None else _pushed(row)


async def push_policy(db: Database, files: tuple[tuple[str, str], ...], rules: int, pushed_by: str
                      ) -> tuple[PushedPolicy, bool]:
    """Store `files` (already checked) as the live policy; `(pushed, False)` when they are the live
    ones already (nothing stored, no server reloads)."""
    digest = files_digest(files)
    async with db.session() as session:
        newest = await session.scalar(select(func.max(PolicySet.id)))
        current = None if newest is None else await session.get(PolicySet, newest)
        if current is not None and current.digest == digest:
            return _pushed(current), False
        row = PolicySet(digest=digest, files=[[name, text] for name, text in files], rules=rules,
                        pushed_by=pushed_by[:255])
        session.add(row)
        await session.flush()
        await bump(session, POLICY)
        pushed = _pushed(row)
    return pushed, True


async def policy_history(db: Database, limit: int = 20) -> list[PushedPolicy]:
    async with db.session() as session:
        rows = await session.scalars(select(PolicySet).order_by(PolicySet.id.desc()).limit(limit))
        return [_pushed(row) for row in rows]
