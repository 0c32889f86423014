"""`authgate robot …`: CI accounts with a random secret shown once; they log in as `robot+NAME`."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from authgate.auth import accounts
from authgate.cli.common import fail, print_table, run_account_command
from authgate.cli.datadir import location, login_address
from authgate.db.session import Database
from authgate.durations import DurationError, parse_duration
from authgate.settings import Settings
from authgate.tls.serving import with_data_dir_tls

#: Shorter would be a typo (`--expires 90s` for 90d) more often than a wish; a unit is required for the
#: same reason (is a bare 90 seconds or days?).
MIN_LIFETIME = timedelta(hours=1)


def parse_expiry(text: str) -> timedelta | None:
    """`90d`, `12h`, `2w`, or `never`."""
    if text == "never":
        return None
    try:
        lifetime = parse_duration(text, unit_required=True)
    except DurationError as exc:
        raise ValueError(f"--expires: {exc}, or never") from None
    if lifetime < MIN_LIFETIME:
        raise ValueError(f"--expires {text!r} is too short: a robot's lifetime is at least 1h, or never")
    return lifetime


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("robot", help="manage robot accounts for CI")
    cmds = parser.add_subparsers(dest="robot_command", metavar="COMMAND", required=True)
    create = cmds.add_parser("create", help="create a robot and print its secret (once)")
    create.add_argument("name")
    create.add_argument("--expires", default="90d", help="lifetime such as 90d, 12h, 2w or never (default 90d)")
    create.add_argument("--description", default="")
    create.set_defaults(handler=_create)
    expire = cmds.add_parser(
        "expire", help="give a robot a new lifetime, counted from now",
        description="Set when a robot stops working: a lifetime counted from now, or never. Its secret is "
                    "unchanged. A robot that had already expired starts afresh: tokens from before stay dead.")
    expire.add_argument("name")
    expire.add_argument("--expires", required=True, help="lifetime from now such as 30d, 12h, 2w, or never")
    expire.set_defaults(handler=_expire)
    for name, text in (("disable", "stop a robot from logging in"), ("enable", "allow a robot again"),
                       ("remove", "delete a robot")):
        cmd = cmds.add_parser(name, help=text)
        cmd.add_argument("name")
        cmd.set_defaults(handler=_change, action=name)
    listing = cmds.add_parser("list", help="list robots")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)


def _create(args: argparse.Namespace) -> int:
    try:
        expires = parse_expiry(args.expires)
    except ValueError as exc:
        return fail(str(exc))

    async def work(settings: Settings, db: Database) -> None:
        secret = await accounts.create_robot(db, args.name, expires, args.description)
        address = login_address(settings, with_data_dir_tls(settings).url)
        host = address.host
        login = accounts.ROBOT_LOGIN_PREFIX + args.name
        print(f"created robot {args.name} in {location(settings)} (login name {login}); its secret is shown only "
              "now:\n")
        print(f"    {secret}\n")
        print(f"log in with: echo \"$SECRET\" | docker login {host} -u {login} --password-stdin")
        if address.caveat:
            print(f"({address.caveat})")
        elif _this_machine_only(host):
            print(f"({host} reaches this machine only; CI elsewhere logs in to this machine's name or address: "
                  "set public_url to have it printed here)")

    return run_account_command(args, work)


def _expire(args: argparse.Namespace) -> int:
    try:
        expires = parse_expiry(args.expires)
    except ValueError as exc:
        return fail(str(exc))

    async def work(settings: Settings, db: Database) -> None:
        at = await accounts.set_robot_expiry(db, args.name, expires)
        when = at.strftime("%Y-%m-%d %H:%M UTC") if at else "never"
        print(f"robot {args.name}: expires {when} (in {location(settings)})")

    return run_account_command(args, work)


def _this_machine_only(host: str) -> bool:
    """localhost (a server on loopback only): right for `docker login` on this machine, wrong for the
    CI runners a robot is made for."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "127.0.0.1", "[::1]")


def _change(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        if args.action == "remove":
            await accounts.remove_robot(db, args.name)
        else:
            await accounts.set_robot_disabled(db, args.name, args.action == "disable")
        print(f"robot {args.name}: {args.action}d in {location(settings)}")

    return run_account_command(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        robots = await accounts.list_robots(db)
        rows = []
        for r in robots:
            state = "disabled" if r.disabled else ("active" if accounts.robot_usable(r) else "expired")
            expires = r.expires_at.strftime("%Y-%m-%d %H:%M") if r.expires_at else "never"
            if args.json:
                print(json.dumps({"name": r.name, "login": accounts.ROBOT_LOGIN_PREFIX + r.name, "state": state,
                                  "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                                  "description": r.description}))
            rows.append((r.name, accounts.ROBOT_LOGIN_PREFIX + r.name, state, expires, r.description))
        if not args.json:
            print_table(["name", "login", "state", "expires", "description"], rows)

    return run_account_command(args, work)
