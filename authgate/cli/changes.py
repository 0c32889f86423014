"""After each admin command, its change goes into the audit log (`audit.admin_changes` says what)."""

from __future__ import annotations

import argparse
import sys

from authgate.audit.admin_changes import cli_event
from authgate.audit.chain import record_now
from authgate.cli.common import settings_from, with_database
from authgate.cli.datadir import DataDirError, database_missing


def record_cli_change(args: argparse.Namespace, exit_code: int) -> None:
    """Record an admin command's change; warn (never fail) when the log cannot be written."""
    try:
        event = cli_event(args, exit_code)
        if event is None:
            return
        settings = settings_from(args)
        if exit_code != 0 and database_missing(settings):
            return  # a refused command in a directory without a database: creating one to log it would mislead
        try:
            with_database(settings, lambda db: record_now(db, event))
        except DataDirError:
            return  # the command failed on the same unusable data directory and said so already
    except Exception as exc:  # the change itself is done; say so rather than hide it
        print(f"authgate: warning: this change was not recorded in the audit log: {exc}", file=sys.stderr)
