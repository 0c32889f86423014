"""`authgate team …`: create, add, remove, list, delete."""

from __future__ import annotations

import argparse
import json
from typing import Any

from authgate.auth import accounts
from authgate.cli.common import print_table, run_account_command
from authgate.cli.datadir import location
from authgate.db.session import Database
from authgate.settings import Settings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("team", help="manage teams (groups policies grant to)")
    cmds = parser.add_subparsers(dest="team_command", metavar="COMMAND", required=True)
    create = cmds.add_parser("create", help="create a team")
    create.add_argument("team")
    create.set_defaults(handler=_create)
    add = cmds.add_parser("add", help="add users to a team")
    add.add_argument("team")
    add.add_argument("users", nargs="+", metavar="USER")
    add.set_defaults(handler=_add)
    remove = cmds.add_parser("remove", help="remove users from a team")
    remove.add_argument("team")
    remove.add_argument("users", nargs="+", metavar="USER")
    remove.set_defaults(handler=_remove)
    delete = cmds.add_parser("delete", help="delete a team")
    delete.add_argument("team")
    delete.set_defaults(handler=_delete)
    listing = cmds.add_parser("list", help="list teams and members")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)


def _create(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.create_team(db, args.team)
        print(f"created team {args.team} in {location(settings)}")

    return run_account_command(args, work)


def _add(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.add_members(db, args.team, args.users)
        print(f"added {', '.join(args.users)} to {args.team} in {location(settings)}")

    return run_account_command(args, work)


def _remove(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.remove_members(db, args.team, args.users)
        print(f"removed {', '.join(args.users)} from {args.team} in {location(settings)}")

    return run_account_command(args, work)


def _delete(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        await accounts.delete_team(db, args.team)
        print(f"deleted team {args.team} from {location(settings)}")

    return run_account_command(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(settings: Settings, db: Database) -> None:
        teams = await accounts.list_teams(db)
        if args.json:
            for name, members in teams.items():
                print(json.dumps({"name": name, "members": members}))
        else:
            print_table(["team", "members"], [(name, ", ".join(members)) for name, members in teams.items()])

    return run_account_command(args, work)
