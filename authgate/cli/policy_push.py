"""`authgate policy push | pushed`: the policy in the database, the same on every replica.

Servers with `policy_source: database` decide with the newest push and follow each new one within a
second; the files stay where people write, review and test them (`policy check`, `policy test`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from authgate.audit.admin_changes import operator_name
from authgate.cli.common import print_table, settings_from, with_database
from authgate.db.policy_sets import PushedPolicy, latest_policy, policy_history, push_policy
from authgate.policy.load import PolicyLoadError, builtin_policy, parse_policies, read_policy_texts
from authgate.policy.model import Policy
from authgate.settings import Settings


PolicyPath = Callable[[argparse.Namespace, Settings], Path]
PrintProblems = Callable[[PolicyLoadError], int]


def register(commands: Any, policy_path: PolicyPath, print_problems: PrintProblems) -> None:
    push = commands.add_parser(
        "push", help="check policy files and make them the live policy of every server with policy_source: database")
    push.add_argument("path", nargs="?", type=Path, help="file or directory (default: $AUTHGATE_POLICIES or ./policies)")
    push.add_argument("--json", action="store_true", help="machine-readable output")
    push.set_defaults(handler=lambda args: _push(args, policy_path, print_problems))

    pushed = commands.add_parser("pushed", help="the policies pushed into the database, newest (live) first")
    pushed.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    pushed.add_argument("--json", action="store_true", help="machine-readable output")
    pushed.set_defaults(handler=_pushed)


def _push(args: argparse.Namespace, policy_path: PolicyPath, print_problems: PrintProblems) -> int:
    settings = settings_from(args)
    path = policy_path(args, settings)
    try:
        files = tuple(read_policy_texts(path, names=lambda file: file.name))
        policy = parse_policies(list(files))
    except PolicyLoadError as exc:
        print("authgate: nothing pushed", file=sys.stderr)
        return print_problems(exc)
    pushed, changed = with_database(settings, lambda db: push_policy(db, files, len(policy.rules), operator_name()))
    if args.json:
        print(json.dumps({**_as_dict(pushed), "changed": changed}, indent=2))
    elif changed:
        print(f"pushed policy #{pushed.id} {pushed.digest}: {_summary(policy)}; servers with "
              "policy_source: database apply it within a second")
    else:
        print(f"unchanged: policy #{pushed.id} is these files already")
    if settings.policy_source != "database":
        print("authgate: note: policy_source is files in this configuration: its servers read "
              f"{settings.policies or 'the built-in policy'}, not the database", file=sys.stderr)
    return 0


def _summary(policy: Policy) -> str:
    return f"{len(policy.rules)} rules, {len(policy.teams)} teams from {', '.join(policy.files)}"


def _as_dict(pushed: PushedPolicy) -> dict[str, object]:
    return {"id": pushed.id, "digest": pushed.digest, "rules": pushed.rules,
            "files": [name for name, _ in pushed.files], "pushed_by": pushed.pushed_by,
            "pushed_at": pushed.pushed_at.isoformat()}


def _pushed(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    history = with_database(settings, lambda db: policy_history(db, max(1, args.limit)))
    if args.json:
        print(json.dumps([_as_dict(p) for p in history], indent=2))
        return 0
    if not history:
        print("no policy pushed yet: `authgate policy push DIR` stores one (servers with policy_source: database "
              "use the built-in policy until then)")
        return 0
    print_table(["ID", "DIGEST", "RULES", "FILES", "PUSHED BY", "PUSHED AT (UTC)", ""],
                [(p.id, p.digest[:19], p.rules, ", ".join(name for name, _ in p.files), p.pushed_by,
                  f"{p.pushed_at:%Y-%m-%d %H:%M:%S}", "live" if i == 0 else "") for i, p in enumerate(history)])
    return 0


def pushed_policy(settings: Settings) -> tuple[Policy, str]:
    """The live policy of a `policy_source: database` server, for `policy explain`; and what it is."""
    pushed = with_database(settings, latest_policy)
    if pushed is None:
        return builtin_policy(), "the built-in policy (nothing pushed yet)"
    return parse_policies(list(pushed.files)), f"policy {pushed.describe()}"
