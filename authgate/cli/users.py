"""`authgate user …`: add, passwd, disable/enable, remove, unlock, list, import-htpasswd."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from authgate.auth import accounts, unlocks
from authgate.auth.passwords import make_context
from authgate.cli.common import fail, print_table, run_account_command
from authgate.cli.datadir import location, login_address
from authgate.cli.password_prompt import MIN_PASSWORD_LENGTH, read_password
from authgate.db.session import Database
from authgate.settings import Settings
from authgate.tls.serving import with_data_dir_tls

_ADMIN_HELP = ("make the user an administrator of authgate itself: the admin API (the audit log over HTTP) and "
               "the unfiltered catalog. It grants no repository rights: policies do (the shipped "
               "policies/registry.yaml gives team `admins` everything: `authgate team add admins NAME`)")
_PASSWORD_HELP = (f"read the password from stdin, one line (scripts); without it you are asked twice, hidden. "
                  f"At least {MIN_PASSWORD_LENGTH} characters")


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("user", help="manage users (docker login accounts)")
    cmds = parser.add_subparsers(dest="user_command", metavar="COMMAND", required=True)

    add = cmds.add_parser("add", help="create a user (asks for the password twice, hidden)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help=_PASSWORD_HELP)
    add.add_argument("--admin", action="store_true", help=_ADMIN_HELP)
    add.set_defaults(handler=_add)

    passwd = cmds.add_parser("passwd", help="change a password (logs the user out of every docker client)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help=_PASSWORD_HELP)
    passwd.set_defaults(handler=_passwd)

    for name, disabled, text in (("disable", True, "stop a user from logging in and end their docker sessions"),
                                 ("enable", False, "allow again")):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(handler=_disable, disabled=disabled)

    remove = cmds.add_parser("remove", help="delete a user, their memberships and refresh tokens")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove)

    listing = cmds.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)

    unlock = cmds.add_parser(
        "unlock", help="lift a login lockout (429 \"too many failed logins\") at once, in every running authgate",
        description="Forget the failed logins of a user (from every address) or of a client address, so the "
                    "next login is checked normally. Locks otherwise end by themselves after 5 minutes.")
    unlock.add_argument("name", nargs="?", help="the user (robots are never locked)")
    unlock.add_argument("--address", help="a client address locked for failing with many names")
    unlock.set_defaults(handler=_unlock)

    imp = cmds.add_parser("import-htpasswd", help="import bcrypt users from a registry htpasswd file")
    imp.add_argument("file", type=Path)
    imp.set_defaults(handler=_import)


def _hash(settings: Settings, password: str) -> str:
    hashed: str = make_context(settings.bcrypt_rounds).hash(password)
    return hashed


def _add(args: argparse.Namespace) -> int:
    try:
        password = read_password(args.password_stdin)
    except ValueError as exc:
        return fail(str(exc))

    async def work(settings: Settings, db: Database) -> None:
        await accounts.create_user(db, args.name, _hash(settings, password), admin=args.admin)
        address = login_address(settings, with_data_dir_tls(settings).url)
        print(f"created user {args.name} in {location(settings)}; log in with: docker login {address.host} "
              f"-u {args.name}")
        if address.caveat:
            print(f"({address.caveat})")
        if args.admin:
            print(f"{args.name} is an authgate administrator (admin API, full catalog); repository rights come "
                  "from policies, e.g. `authgate team add admins " + args.name + "` with the shipped policy")

    return run_account_command(args, work)


def _passwd(args: argparse.Namespace) -> int:
    try:
        password = read_password(args.password_stdin)
    except ValueError as exc:
        return fail(str(exc))

    async def work(settings: Settings, db: Database) -> None:
        await accounts.set_password(db, args.name, _hash(settings, password))
        print(f"password changed for {args.name} in {location(settings)}; their docker logins (refresh tokens) "
              "were revoked")

    return run_account_command(args, work)


def _disable(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.set_disabled(db, args.name, args.disabled)
        if not args.disabled:
            print(f"user {args.name} enabled in {location(settings)}")
            return
        print(f"user {args.name} disabled in {location(settings)}: their docker sessions (refresh tokens) were "
              "ended, and docker now tells them the account is disabled")
        if settings.token_server_only:
            print(f"note: the registry at {settings.registry_url} checks tokens itself and keeps honouring access "
                  f"tokens already issued until they expire (token_ttl: {settings.token_ttl} s)")

    return run_account_command(args, work)


def _remove(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.remove_user(db, args.name)
        print(f"removed user {args.name} from {location(settings)}")

    return run_account_command(args, work)


def _unlock(args: argparse.Namespace) -> int:
    if not args.name and not args.address:
        return fail("name a user to unlock, or give --address ADDR")

    async def work(settings: Settings, db: Database) -> None:
        if args.name:
            if await accounts.find_user(db, args.name) is None:
                raise accounts.AccountError(f"no user named {args.name!r} (see `authgate user list`)")
            await unlocks.record_unlock(db, unlocks.user_target(args.name))
            print(f"unlocked {args.name}: their next login is checked normally")
        if args.address:
            await unlocks.record_unlock(db, unlocks.address_target(args.address))
            print(f"unlocked address {args.address}: its next logins are checked normally")

    return run_account_command(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        users = await accounts.list_users(db)
        if args.json:
            for u in users:
                print(json.dumps({"name": u.name, "admin": u.admin, "disabled": u.disabled, "teams": list(u.teams),
                                  "created_at": u.created_at.isoformat()}))
            return
        print_table(["name", "admin", "disabled", "teams", "created"],
                    [(u.name, "yes" if u.admin else "", "yes" if u.disabled else "", ",".join(u.teams),
                      u.created_at.strftime("%Y-%m-%d %H:%M")) for u in users])

    return run_account_command(args, work)


def _import(args: argparse.Namespace) -> int:
    try:
        text = args.file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {args.file}: {exc}")
    entries, skipped = accounts.parse_htpasswd(text)

    async def work(settings: Settings, db: Database) -> None:
        imported = 0
        for name, hashed in entries:
            try:
                await accounts.create_user(db, name, hashed)
                imported += 1
            except accounts.AccountError as exc:
                skipped.append(str(exc))
        for reason in skipped:
            print(f"skipped: {reason}", file=sys.stderr)
        print(f"imported {imported} user(s) from {args.file} into {location(settings)}; their passwords work "
              "unchanged")

    return run_account_command(args, work)
