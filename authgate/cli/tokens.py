"""`authgate token …`: refresh tokens (docker's stored identity tokens): list and revoke."""

from __future__ import annotations

import argparse
import json
from typing import Any

from authgate.auth.accounts import AccountError
from authgate.auth.refresh import list_refresh_tokens, revoke_refresh_tokens
from authgate.cli.common import fail, print_table, settings_from, with_database
from authgate.db.session import Database


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("token", help="refresh tokens held by docker clients")
    cmds = parser.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    listing = cmds.add_parser("list", help="list live refresh tokens")
    listing.add_argument("--user", help="only this user's tokens")
    listing.add_argument("--all", action="store_true", help="include revoked and expired tokens")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    revoke = cmds.add_parser("revoke", help="revoke a token by ID, or every token of --user")
    revoke.add_argument("id", nargs="?", type=int)
    revoke.add_argument("--user")
    revoke.set_defaults(handler=_revoke)


def _list(args: argparse.Namespace) -> int:
    async def work(db: Database) -> None:
        tokens = await list_refresh_tokens(db, args.user, include_revoked=args.all)
        if args.json:
            for t in tokens:
                print(json.dumps({"id": t.id, "user": t.user, "service": t.service, "client_id": t.client_id,
                                  "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
                                  "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                                  "revoked": t.revoked}))
            return
        print_table(
            ["id", "user", "client", "created", "last used", "expires", "state"],
            [(t.id, t.user, t.client_id, f"{t.created_at:%Y-%m-%d %H:%M}",
              f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "", f"{t.expires_at:%Y-%m-%d}",
              "revoked" if t.revoked else "live") for t in tokens],
        )

    with_database(settings_from(args), work)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if args.id is None and not args.user:
        return fail("name a token ID (see `authgate token list`) or --user NAME")

    async def work(db: Database) -> int:
        return await revoke_refresh_tokens(db, args.id, args.user)

    try:
        count = with_database(settings_from(args), work)
    except AccountError as exc:
        return fail(str(exc))
    if count == 0:
        return fail("nothing revoked: no live token matches")
    print(f"revoked {count} refresh token(s); those docker clients must log in again")
    return 0
