"""`authgate keys …`: the token signing keys (in the database, authgate.auth.key_store) and what a
registry needs to trust them."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from authgate.auth.key_store import KeyStore
from authgate.auth.keys import KeyRing, SigningKey, SigningKeyError, keys_dir
from authgate.cli.common import fail, print_table, settings_from, with_database
from authgate.db.session import Database
from authgate.settings import Settings


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("keys", help="token signing keys")
    cmds = parser.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    export = cmds.add_parser("export-cert", help="print the PEM bundle for the registry's auth.token.rootcertbundle")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.set_defaults(handler=_export)
    jwks = cmds.add_parser("jwks", help="print a JWKS file for distribution 3's auth.token.jwks")
    jwks.set_defaults(handler=_jwks)
    rotate = cmds.add_parser(
        "rotate", help="add a new signing key; every running authgate signs with it within a second (staged first "
                       "when a registry checks tokens against a certificate bundle); old keys keep verifying")
    when = rotate.add_mutually_exclusive_group()
    when.add_argument("--stage", action="store_true",
                      help="verify only until `authgate keys activate KID` (default in gateway and token-server modes)")
    when.add_argument("--now", action="store_true", help="sign with it at once (default with the embedded store)")
    rotate.set_defaults(handler=_rotate)
    activate = cmds.add_parser("activate", help="let a staged key sign (after the registry trusts the new bundle)")
    activate.add_argument("kid")
    activate.set_defaults(handler=_activate)
    listing = cmds.add_parser("list", help="list signing keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    remove = cmds.add_parser("remove", help="delete a signing key by kid (once tokens it signed have expired)")
    remove.add_argument("kid")
    remove.set_defaults(handler=_remove)


def _store(settings: Settings, db: Database) -> KeyStore:
    return KeyStore(db, keys_dir(settings.data))


def _ring(args: argparse.Namespace) -> KeyRing:
    settings = settings_from(args)
    ring = with_database(settings, lambda db: _store(settings, db).ring(settings.signing_algorithm))
    for key in ring.expiring():
        print(f"authgate: warning: signing certificate {key.kid} expires {key.not_after:%Y-%m-%d}; run "
              "`authgate keys rotate` (see docs/security.md, signing keys)", file=sys.stderr)
    return ring


def _export(args: argparse.Namespace) -> int:
    try:
        bundle = _ring(args).certificate_bundle()
    except SigningKeyError as exc:
        return fail(str(exc))
    if args.output:
        args.output.write_text(bundle)
    else:
        sys.stdout.write(bundle)
    return 0


def _jwks(args: argparse.Namespace) -> int:
    try:
        print(json.dumps(_ring(args).jwks(), indent=2))
    except SigningKeyError as exc:
        return fail(str(exc))
    return 0


def _rotate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    # Where a registry checks tokens against our certificate bundle, a key signing before it is trusted
    # there would make every new token fail: stage it.
    staged = args.stage or (not args.now and (settings.gateway or settings.token_server_only))
    try:
        key: SigningKey = with_database(
            settings, lambda db: _store(settings, db).add(settings.signing_algorithm, active=not staged))
    except SigningKeyError as exc:
        return fail(str(exc))
    print(f"added signing key {key.kid} ({key.algorithm}, certificate valid until {key.not_after:%Y-%m-%d}).")
    if staged:
        print("It verifies but does not sign yet. Next: give the registry the new bundle (`authgate keys export-cert`),\n"
              f"reload the registry, then `authgate keys activate {key.kid}`: every authgate process signs with it\n"
              "within a second.")
    else:
        print("Every running authgate process signs with it within a second; tokens signed by older keys verify\n"
              f"until they expire (token_ttl: {settings.token_ttl} s). Remove an old key later with "
              "`authgate keys remove KID`.")
    return 0


def _activate(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        key: SigningKey = with_database(settings, lambda db: _store(settings, db).activate(args.kid))
    except SigningKeyError as exc:
        return fail(str(exc))
    print(f"signing key {key.kid} is active: every running authgate process signs with it within a second")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        ring = _ring(args)
    except SigningKeyError as exc:
        return fail(str(exc))
    rows = []
    for key in ring.keys:
        role = "signing" if key is ring.signer else "staged" if key.kid in ring.staged else "verifying"
        if args.json:
            print(json.dumps({"kid": key.kid, "algorithm": key.algorithm, "role": role,
                              "not_after": key.not_after.isoformat()}))
        rows.append((key.kid, key.algorithm, role, f"{key.not_after:%Y-%m-%d}"))
    if not args.json:
        print_table(["kid", "algorithm", "role", "expires"], rows)
    return 0


def _remove(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        key: SigningKey = with_database(settings, lambda db: _store(settings, db).remove(args.kid))
    except SigningKeyError as exc:
        return fail(str(exc))
    print(f"removed signing key {key.kid}: every running authgate process stops accepting it within a second")
    return 0


def check_signing_keys(settings: Settings) -> None:
    """Before `serve` listens: the keys load (created on the very first start) and the seal key is
    there and private; raises `SigningKeyError` saying what to do."""

    async def load(db: Database) -> None:
        await KeyStore(db, keys_dir(settings.data)).ring(settings.signing_algorithm)

    async def run() -> None:
        db = Database(settings.database)
        try:
            await db.upgrade()
            await load(db)
        finally:
            await db.close()

    asyncio.run(run())
