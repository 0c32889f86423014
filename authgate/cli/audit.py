"""`authgate audit list | export | verify | checkpoint | prune`: read and check the audit log from the shell.

Works on the same database as a running `authgate serve` (SQLite or PostgreSQL); events still in
the server's queue appear within a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from authgate.audit.export import write_export
from authgate.audit.query import AuditFilter, iter_events, list_events, parse_time
from authgate.audit.checkpoint import (
    CheckpointError,
    CheckpointResult,
    check_checkpoint,
    load_or_create_key,
    make_checkpoint,
    public_key,
    read_checkpoint,
)
from authgate.audit.verify import PruneRefused, VerifyResult, prune, verify
from authgate.cli.common import fail, print_json_lines, print_table, settings_from, with_database
from authgate.db.session import Database

_TABLE = ("seq", "time", "actor", "action", "repository", "reference", "digest", "outcome", "address")
#: What `audit list` shows without --action or --all: who pushed, moved and deleted what, and who was refused.
CHANGES = ("manifest:push", "manifest:push:failure", "manifest:delete", "manifest:delete:failure", "tag:move",
           "tag:delete", "blob:delete", "access:denied")


def _time(text: str) -> Any:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repository", metavar="R", help="only events on repository R (exact name)")
    parser.add_argument("--actor", metavar="A", help="only events by A (a name, or user:NAME / robot:NAME)")
    parser.add_argument("--action", metavar="X", help="only actions X (exact, or a prefix such as `manifest`)")
    parser.add_argument("--since", metavar="T", type=_time, help="from time T (ISO 8601, or an age: 24h, 7d)")
    parser.add_argument("--until", metavar="T", type=_time, help="before time T (ISO 8601, or an age)")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("audit", help="read, export and verify the audit log")
    audit_sub = parser.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    listing = audit_sub.add_parser(
        "list", help="recent pushes and deletes, newest first (--all for logins, tokens, reloads…)",
        description="Without --action or --all the table shows who pushed, moved and deleted what, and refused "
        "pushes. --json lists every event matching the filters (for scripts).")
    _filters(listing)
    listing.add_argument("--all", action="store_true", help="every kind of event: logins, tokens, policy reloads, "
                         "admin changes too")
    listing.add_argument("--limit", type=int, default=50, help="at most N events (default 50, max 1000)")
    listing.add_argument("--before", type=int, metavar="SEQ", help="only events older than event SEQ (next page)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    listing.set_defaults(handler=_list)

    export = audit_sub.add_parser("export", help="every matching event, oldest first, with its hashes")
    _filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    export.set_defaults(handler=_export)

    check = audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first broken event")
    check.add_argument("--checkpoint", type=Path, metavar="FILE", action="append", default=[],
                       help="also check a signed checkpoint (repeatable): catches a rewrite of the whole log")
    check.add_argument("--key", type=Path, metavar="KEY",
                       help="the checkpoint key: the private key, or its .pub (needed with --checkpoint)")
    check.set_defaults(handler=_verify)

    point = audit_sub.add_parser(
        "checkpoint", help="sign the chain's current head with a key kept outside the database",
        description="Print (or write) the chain head's seq and hash, signed with an Ed25519 key that is not in "
                    "the database; `audit verify --checkpoint FILE --key KEY` later proves the log was not "
                    "rewritten or rolled back since. KEY is created (with KEY.pub) if missing: keep it, or at "
                    "least the checkpoints, where the database's writers cannot reach.")
    point.add_argument("--key", type=Path, required=True, metavar="KEY", help="Ed25519 private key (PEM)")
    point.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    point.set_defaults(handler=_checkpoint)

    pruning = audit_sub.add_parser("prune", help="delete events older than a date; the rest stays verifiable")
    pruning.add_argument("--before", required=True, type=_time, metavar="DATE",
                         help="delete events recorded before DATE (ISO 8601, or an age such as 90d)")
    pruning.set_defaults(handler=_prune)


def _filter_of(args: argparse.Namespace) -> AuditFilter:
    return AuditFilter(repository=args.repository, actor=args.actor, action=args.action,
                       since=args.since, until=args.until)


def _repositories(event: dict[str, Any]) -> str:
    """The event's repository; for a token event, the repositories of the scopes it asked for."""
    if event["repository"]:
        return str(event["repository"])
    details = event.get("details") or {}
    scopes = str(details.get("requested") or "").split()
    return ",".join(dict.fromkeys(s.split(":")[1] for s in scopes if s.startswith("repository:") and s.count(":") >= 2))


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        return fail("--limit must be at least 1")
    people_view = not args.json and not args.all and not args.action
    flt = _filter_of(args)
    if people_view:
        flt = dataclasses.replace(flt, actions=CHANGES)

    async def work(db: Database) -> list[dict[str, Any]]:
        return await list_events(db, flt, args.limit + 1, args.before)  # one more: are there older ones?

    events = with_database(settings_from(args), work)
    more = len(events) > args.limit
    events = events[:args.limit]
    if args.json:
        print_json_lines(events)
        return 0
    if not events:
        print("no matching events" + (" (pushes and deletes; --all for every kind)" if people_view else ""),
              file=sys.stderr)
        return 0
    rows = []
    for event in events:
        digest = event["digest"] or ""
        reference = event["reference"] or ""
        outcome = event["outcome"] if not event["reason"] else f"{event['outcome']}: {event['reason']}"
        rows.append([event["seq"], event["time"][:19] + "Z", event["actor"], event["action"],
                     _repositories(event), reference, digest[:19], outcome, event["address"]])
    print_table(_TABLE, rows)
    if more:
        print(f"(more events: --before {events[-1]['seq']} for the next page, or --limit N)", file=sys.stderr)
    if people_view:
        print("(pushes and deletes only: --all for logins, tokens and policy reloads, --action X for one kind)",
              file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    async def work(db: Database) -> int:
        events = iter_events(db, _filter_of(args))
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                return await write_export(events, out, args.format)
        return await write_export(events, sys.stdout, args.format)

    count = with_database(settings_from(args), work)
    if args.output:
        print(f"exported {count} events to {args.output}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    if args.checkpoint and args.key is None:
        return fail("--checkpoint needs --key (the checkpoint key or its .pub)")
    try:
        checkpoints = [(path, read_checkpoint(path)) for path in args.checkpoint]
        key = public_key(args.key) if args.checkpoint else None
    except CheckpointError as exc:
        return fail(str(exc))

    async def work(db: Database) -> tuple[VerifyResult, list[tuple[Path, CheckpointResult]]]:
        assert key is not None or not checkpoints
        checked = [(path, await check_checkpoint(db, point, key)) for path, point in checkpoints if key]
        return await verify(db), checked

    result, checked = with_database(settings_from(args), work)
    broken = False
    if result.broken is not None:
        print(f"audit log is BROKEN at {result.broken.describe()}")
        print(f"({result.checked} events before it verified)")
        broken = True
    elif result.checked == 0:
        print("audit log verified: no events (chain intact)")
    else:
        print(f"audit log verified: {result.checked} events, {result.first_seq} to {result.last_seq}")
    for path, outcome in checked:
        if outcome.problem:
            print(f"checkpoint {path} FAILS: {outcome.problem}")
            broken = True
        else:
            print(f"checkpoint {path} holds: event {outcome.seq} is as signed on {outcome.time}")
    return 1 if broken else 0


def _checkpoint(args: argparse.Namespace) -> int:
    try:
        key, created = load_or_create_key(args.key)
    except CheckpointError as exc:
        return fail(str(exc))
    if created:
        print(f"created checkpoint key {args.key} (and {args.key}.pub): keep it away from the database's writers",
              file=sys.stderr)
    checkpoint = with_database(settings_from(args), lambda db: make_checkpoint(db, key))
    text = json.dumps(checkpoint, indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
        print(f"checkpoint of event {checkpoint['seq']} written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _prune(args: argparse.Namespace) -> int:
    async def work(db: Database) -> Any:
        return await prune(db, args.before)

    try:
        result = with_database(settings_from(args), work)
    except PruneRefused as exc:
        return fail(f"{exc}; nothing was pruned (export the log and investigate first)")
    if result.deleted == 0:
        print(f"nothing to prune: no events before {args.before.isoformat()}")
    else:
        print(f"pruned {result.deleted} events; the log now starts after event {result.anchor_seq}")
    return 0
