"""Admin changes made with the CLI (`authgate user add`, `team add`, `robot create`, `keys rotate`, …)
go into the audit log too: `cli/main.py` records `cli_event` after each command (`authgate.cli.changes`).

The actor is the operator, as `cli:<OS user>`: the CLI acts on the database directly, without an
authgate login. The command's arguments are kept, except anything that looks like a secret (the
CLI reads passwords from stdin, so none should be there). Recording never changes the command's
outcome: if it fails, a warning goes to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import socket
from pathlib import Path
from typing import Any

from authgate.audit.events import AuditEvent
from authgate.subject import Subject

#: Command groups whose subcommands change authgate's state, and the subcommands that only read.
_GROUPS = ("user", "team", "robot", "keys", "token", "tls")
_READ_ONLY = frozenset({"list", "show", "export-cert", "jwks"})
_TARGET_ARGS = ("name", "team", "kid", "id", "user")
_SKIPPED = frozenset({"handler", "config", "command", "password_stdin", "json"})


def admin_action(args: argparse.Namespace) -> str | None:
    """`user:add`, `team:remove`, `audit:prune`, …; None for commands that change nothing."""
    group = getattr(args, "command", None)
    sub = getattr(args, f"{group}_command", None)
    if group == "audit" and sub == "prune":
        return "audit:prune"
    if group == "policy" and sub == "push":
        return "policy:push"
    if group in _GROUPS and isinstance(sub, str) and sub not in _READ_ONLY:
        return f"{group}:{sub}"
    return None


def _details(args: argparse.Namespace) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for key, value in vars(args).items():
        lowered = key.lower()
        if key in _SKIPPED or key.endswith("_command") or "password" in lowered or "secret" in lowered:
            continue
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, list):
            value = [str(v) for v in value]
        if value is None or isinstance(value, (str, int, bool, list)):
            details[key] = value
        else:
            details[key] = str(value)
    return details


def operator_name() -> str:
    """`user@host` of whoever runs the CLI: the actor of its changes."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still says who
        import os

        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def cli_event(args: argparse.Namespace, exit_code: int) -> AuditEvent | None:
    action = admin_action(args)
    if action is None:
        return None
    target = next((str(getattr(args, a)) for a in _TARGET_ARGS if getattr(args, a, None) is not None), None)
    return AuditEvent(
        action=action if exit_code == 0 else f"{action}:failure",
        actor=Subject("user", operator_name()),
        actor_type="cli",
        reference=target,
        outcome="success" if exit_code == 0 else "failure",
        reason=None if exit_code == 0 else f"exit status {exit_code}",
        details=_details(args),
    )
