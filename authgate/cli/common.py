"""Helpers every command shares: settings, the database, tables and JSON output."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from authgate.cli.datadir import DataDirError, announce_new_database, check_writable
from authgate.db.session import Database
from authgate.settings import Settings, load_settings

T = TypeVar("T")


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against a migrated database, then close it; say so first when the database is new."""
    check_writable(settings)
    announce_new_database(settings)

    async def run() -> T:
        db = Database(settings.database)
        try:
            await db.upgrade()
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def run_account_command(args: argparse.Namespace, work: Callable[[Settings, Database], Awaitable[object]]) -> int:
    """Run `work(settings, db)`; a refused change (`AccountError`, a bad value) is one line on stderr, exit 1."""
    from authgate.auth.accounts import AccountError

    settings = settings_from(args)
    try:
        with_database(settings, lambda db: work(settings, db))
    except (AccountError, ValueError, DataDirError) as exc:
        return fail(str(exc))
    return 0


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned table, like `docker images`."""
    cells = [[str(h).upper() for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for row in cells:
        print("   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def print_json_lines(items: Iterable[dict[str, Any]]) -> None:
    for item in items:
        print(json.dumps(item, default=str))


def fail(message: str, code: int = 1) -> int:
    print(f"authgate: {message}", file=sys.stderr)
    return code
