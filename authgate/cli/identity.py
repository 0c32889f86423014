"""`authgate identity test | sources`: ask the configured identity sources, as a login would."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from authgate.cli.common import fail, settings_from
from authgate.identity.base import IdentityConfigError


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "identity", help="test the identity sources (local database, LDAP): who a user is, which teams")
    commands = parser.add_subparsers(dest="identity_command", metavar="COMMAND", required=True)

    test = commands.add_parser(
        "test", help="which source knows USER, its directory groups and its teams (and where each came from)")
    test.add_argument("user")
    test.add_argument("--password-stdin", action="store_true",
                      help="check a password read from stdin, as a login would (needed for LDAP bind-as-user "
                      "mode, which cannot look users up without one)")
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test.set_defaults(handler=_test)

    sources = commands.add_parser("sources", help="list the sources in order and check each can work")
    sources.set_defaults(handler=_sources)


_RESULTS = {
    "yes": "known to {source}",
    "no": "refused by {source}: {reason}",
    "not_mine": "unknown to every source ({reason}): a login is denied",
    "unavailable": "{reason}",
}


def _test(args: argparse.Namespace) -> int:
    from authgate.identity.report import report_user

    settings = settings_from(args)
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    try:
        report = report_user(settings, args.user, password)
    except IdentityConfigError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = _RESULTS[report.verdict].format(source=report.source, reason=report.reason)
        checked = "password checked" if password is not None else "looked up without a password"
        print(f"{report.name}: {verb} ({checked})")
        if report.verdict == "yes":
            print(f"  groups: {', '.join(report.groups) if report.groups else '(none)'}")
            if not report.origins:
                print("  teams:  (none)")
            for origin in report.origins:
                print(f"  team {origin.team}: {origin.via}")
    return 0 if report.verdict == "yes" else 1


def _sources(args: argparse.Namespace) -> int:
    from authgate.identity.report import check_sources

    try:
        lines = check_sources(settings_from(args))
    except IdentityConfigError as exc:
        return fail(str(exc))
    for number, line in enumerate(lines, 1):
        print(f"{number}. {line}")
    return 0
