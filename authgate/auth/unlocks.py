"""`authgate user unlock`: recorded in the database, applied by the login limiter of every process.

The CLI is another process than the servers. So an unlock is a row (`target`, time) that a limiter
reads only when it is about to slow or refuse that target, at most once a second (auth/limiter.py),
and applies, if it is newer than the last one applied, by clearing the target's counters in the
shared store: one process applying it lifts the lock for all.
"""

from __future__ import annotations

from sqlalchemy import select

from authgate.auth.limiter import UnlockSource
from authgate.db.base import utcnow
from authgate.db.models import LoginUnlock
from authgate.db.session import Database


def user_target(name: str) -> str:
    return f"user:{name}"


def address_target(address: str) -> str:
    return f"address:{address}"


async def record_unlock(db: Database, target: str) -> None:
    async with db.session() as session:
        row = await session.get(LoginUnlock, target)
        if row is None:
            session.add(LoginUnlock(target=target, unlocked_at=utcnow()))
        else:
            row.unlocked_at = utcnow()


def unlock_source(db: Database) -> UnlockSource:
    async def latest(target: str) -> float:
        async with db.session() as session:
            at = (await session.execute(select(LoginUnlock.unlocked_at).where(LoginUnlock.target == target))
                  ).scalar_one_or_none()
        return at.timestamp() if at is not None else 0.0

    return latest
