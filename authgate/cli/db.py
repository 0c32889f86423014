"""`authgate db upgrade`: apply migrations (also done at `authgate serve`)."""

from __future__ import annotations

import argparse
from typing import Any

from authgate.cli.common import settings_from
from authgate.db.session import upgrade_schema


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("db", help="database maintenance")
    db_sub = parser.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply database migrations (safe to run while replicas serve)")
    upgrade.set_defaults(handler=_upgrade)


def _upgrade(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    upgrade_schema(settings.database)
    print("database is up to date")
    return 0
