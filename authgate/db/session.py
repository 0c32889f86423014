"""The database handle: one async engine per process, migrations run under a lock."""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from authgate.private_files import private_sqlite_file


def _migrations_dir() -> Path:
    """Installed from a wheel the scripts are `authgate/migrations`; in a checkout, top-level `migrations/`."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "migrations"
    return installed if (installed / "env.py").is_file() else package.parent / "migrations"


MIGRATIONS_DIR = _migrations_dir()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            # 0700 when created here: the database holds password hashes (an existing dir is left as is).
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            private_sqlite_file(Path(parsed.database))  # 0600 even in an existing 0755 directory
        kwargs: dict[str, Any] = {} if self.is_sqlite else {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": True}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed on success and rolled back on any error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def upgrade(self) -> None:
        await anyio.to_thread.run_sync(upgrade_schema, self.url)

    async def close(self) -> None:
        await self.engine.dispose()


def sync_url(url: str) -> str:
    """Alembic runs synchronously: the same database through a sync driver."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    return parsed.render_as_string(hide_password=False)


def upgrade_schema(url: str, revision: str = "head") -> None:
    """Run alembic migrations. Serialised by a file lock (SQLite) or an advisory lock (PostgreSQL, in env.py)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        lock_path = Path(parsed.database + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            command.upgrade(config, revision)
    else:
        command.upgrade(config, revision)
