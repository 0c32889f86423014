"""`authgate tls init | renew | show`: a private CA and server certificate in the data dir, so docker on
other hosts can reach authgate over HTTPS by trusting one file."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from authgate.cli.common import fail, settings_from
from authgate.tls.certs import HostError, host_text
from authgate.tls.instructions import trust_steps
from authgate.tls.store import RENEW_WINDOW, TlsState, TlsStoreError, init_tls, load_tls, renew_tls


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser("tls", help="HTTPS certificates for other hosts")
    tls_sub = parser.add_subparsers(dest="tls_command", metavar="COMMAND", required=True)

    init = tls_sub.add_parser(
        "init", help="create a private CA and a server certificate; print how clients trust it",
        description="Creates <data>/tls/{ca,server}.{crt,key} (keys 0600). An existing CA is reused, so "
        "clients that already trust it keep working; `authgate serve` then serves HTTPS with them.",
    )
    init.add_argument("--host", action="append", required=True, metavar="NAME_OR_IP",
                      help="a DNS name or IP address clients use to reach authgate (repeat for each)")
    init.add_argument("--port", type=int, help="the port clients connect to, for the printed steps "
                      "(default: the serve port)")
    init.add_argument("--new-ca", action="store_true",
                      help="replace the CA too (every client must then trust the new ca.crt)")
    init.set_defaults(handler=_init)

    renew = tls_sub.add_parser(
        "renew", help="re-issue the server certificate from the same CA, for the same hosts",
        description=f"Re-issues when the certificate expires within {RENEW_WINDOW.days} days (or --days), "
        "so it is safe to run daily from cron. Restart `authgate serve` afterwards.",
    )
    renew.add_argument("--force", action="store_true", help="re-issue now, whatever the expiry date")
    renew.add_argument("--days", type=int, default=RENEW_WINDOW.days,
                       help=f"re-issue when fewer days than this are left (default {RENEW_WINDOW.days})")
    renew.set_defaults(handler=_renew)

    show = tls_sub.add_parser("show", help="print the hosts and expiry dates of the TLS files")
    show.set_defaults(handler=_show)


def _date(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _describe(state: TlsState) -> list[str]:
    server, ca = state.server.certificate, state.ca.certificate
    return [
        f"server certificate: {state.files.server_cert} (key {state.files.server_key})",
        f"  hosts: {', '.join(host_text(h) for h in state.hosts)}",
        f"  valid until {_date(server.not_valid_after_utc)}",
        f"CA: {state.files.ca_cert} valid until {_date(ca.not_valid_after_utc)}",
    ]


def _init(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        state, created = init_tls(settings.data, args.host, new_ca=args.new_ca)
    except (HostError, TlsStoreError) as exc:
        return fail(str(exc))
    print(("created a new CA" if created else f"reused the CA in {state.files.ca_cert}") + "; issued:")
    print("\n".join(_describe(state)))
    print()
    print(trust_steps(state.files.ca_cert, [host_text(h) for h in state.hosts], args.port or settings.port))
    print()
    print(f"Restart authgate listening where clients connect: `authgate serve --host 0.0.0.0 --port {settings.port}` "
          "(every address; or --host with one of the addresses above; the container image already listens on "
          "0.0.0.0). It then serves HTTPS with these files from the data dir: http:// URLs stop answering.")
    return 0


def _renew(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        result = renew_tls(settings.data, force=args.force, window=dt.timedelta(days=args.days))
    except (HostError, TlsStoreError) as exc:
        return fail(str(exc))
    cert = result.state.server.certificate
    if not result.renewed:
        due = cert.not_valid_after_utc - dt.timedelta(days=args.days)
        print(f"server certificate valid until {_date(cert.not_valid_after_utc)}: not due; "
              f"renew from {_date(due)} (or now with --force)")
        return 0
    print(f"renewed the server certificate (was valid until {_date(result.previous_not_after)})")
    print("\n".join(_describe(result.state)))
    print("Clients keep working (same CA). Restart `authgate serve` to use the new certificate.")
    return 0


def _show(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    try:
        state = load_tls(settings.data)
    except TlsStoreError as exc:
        return fail(str(exc))
    print("\n".join(_describe(state)))
    return 0
