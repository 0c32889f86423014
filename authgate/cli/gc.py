"""`authgate gc [--dry-run]`: free blobs of the embedded store that no manifest references."""

from __future__ import annotations

import argparse
from typing import Any

from authgate.cli.common import fail, settings_from
from authgate.durations import DurationError, parse_seconds
from authgate.storage.gc import DEFAULT_GRACE, collect
from authgate.storage.layout import Layout


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "gc", help="free blobs no manifest references (safe while pushes run)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be freed, change nothing")
    parser.add_argument("--grace", default=str(DEFAULT_GRACE), metavar="DURATION",
                        help="keep unreferenced blobs younger than this, e.g. 30m (default 1h): pushes in progress")
    parser.set_defaults(handler=_gc)


def _gc(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.gateway:
        return fail("gc works on the embedded store; in gateway mode run the upstream registry's own gc")
    try:
        grace = parse_seconds(args.grace)
    except DurationError as exc:
        return fail(f"--grace: {exc}", 2)
    if settings.storage == "s3":
        from authgate.storage.s3_gc import collect_s3

        try:
            report = collect_s3(settings, grace=grace, dry_run=args.dry_run)
        except Exception as exc:  # noqa: BLE001 - the store's answer, one line, not a traceback
            return fail(f"gc on s3_bucket {settings.s3_bucket!r}: {exc}")
    else:
        layout = Layout(settings.data / "registry")
        if not layout.blobs.is_dir():
            print(f"no embedded store in {settings.data}: nothing to do")
            return 0
        report = collect(layout, grace=grace, dry_run=args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    for digest, size in report.freed:
        print(f"{verb} {digest} ({size} bytes)")
    print(f"{verb} {len(report.freed)} blobs, {report.freed_bytes / 1024**2:.1f} MiB; kept {report.kept} referenced "
          f"and {report.young} younger than the grace period")
    return 0
