"""`authgate keys …`: the token signing keys and what a registry needs to trust them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from authgate.auth.keys import KeyRing, SigningKeyError, create_key, keys_dir, remove_key
from authgate.cli.common import fail, print_table, settings_from


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("keys", help="token signing keys")
    cmds = parser.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    export = cmds.add_parser("export-cert", help="print the PEM bundle for the registry's auth.token.rootcertbundle")
    export.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    export.set_defaults(handler=_export)
    jwks = cmds.add_parser("jwks", help="print a JWKS file for distribution 3's auth.token.jwks")
    jwks.set_defaults(handler=_jwks)
    rotate = cmds.add_parser("rotate", help="add a new signing key; old keys keep verifying until removed")
    rotate.set_defaults(handler=_rotate)
    listing = cmds.add_parser("list", help="list signing keys")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    remove = cmds.add_parser("remove", help="delete a signing key by kid (after the registry trusts the new one)")
    remove.add_argument("kid")
    remove.set_defaults(handler=_remove)


def _ring(args: argparse.Namespace) -> KeyRing:
    settings = settings_from(args)
    ring = KeyRing.load(keys_dir(settings.data), settings.signing_algorithm)
    for key in ring.expiring():
        print(f"authgate: warning: signing certificate {key.kid} expires {key.not_after:%Y-%m-%d}; run "
              "`authgate keys rotate`, update the registry's rootcertbundle, restart authgate", file=sys.stderr)
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
    try:
        _ring(args)
        key = create_key(keys_dir(settings.data), settings.signing_algorithm)
    except SigningKeyError as exc:
        return fail(str(exc))
    print(f"added signing key {key.kid} ({key.algorithm}, certificate valid until {key.not_after:%Y-%m-%d}).\n"
          "Next: give the registry the new bundle (`authgate keys export-cert`), reload it, then restart authgate\n"
          "so it signs with the new key. Remove the old key later with `authgate keys remove KID`.")
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        ring = _ring(args)
    except SigningKeyError as exc:
        return fail(str(exc))
    rows = []
    for key in ring.keys:
        role = "signing" if key is ring.signer else "verifying"
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
        key = remove_key(keys_dir(settings.data), args.kid)
    except SigningKeyError as exc:
        return fail(str(exc))
    print(f"removed signing key {key.kid}; restart authgate so it stops verifying it")
    return 0
