"""Garbage collection of the S3 store: the filesystem gc's mark and sweep, on keys.

Mark: every manifest revision of every repository and what it references. Sweep, each older than
the grace period: unreferenced `blobs/` records (their bytes and repository links go with them),
then `data/` objects no record points at (an upload whose process died between completing the
object and writing its record, or the loser of two identical uploads). The grace period guards
running pushes exactly as on the filesystem: every link, commit and manifest push rewrites the
record, which refreshes its time, and the time is checked again right before each delete.
"""

from __future__ import annotations

import asyncio
import time

from authgate.reference import Digest
from authgate.storage import s3_layout as keys
from authgate.storage.gc import GcReport, _references
from authgate.settings import Settings
from authgate.storage.s3_client import S3


async def mark(s3: S3) -> set[Digest]:
    marked: set[Digest] = set()
    async for info in s3.list_objects("repositories/"):
        head, found, rest = info.key.partition("/_manifests/revisions/")
        if not found:
            continue
        algorithm, _, hex_ = rest.partition("/")
        digest = Digest(algorithm, hex_)
        marked.add(digest)
        record = keys.parse_blob_record(await s3.get(keys.blob(digest), limit=4096))
        if record is not None:
            body = await s3.get(record[0], limit=64 * 1024 * 1024)
            marked.update(_references(body or b""))
    return marked


async def collect(s3: S3, *, grace: float, dry_run: bool = False) -> GcReport:
    report = GcReport()
    marked = await mark(s3)
    cutoff = time.time() - grace
    referenced_data: set[str] = set()
    freed: set[Digest] = set()
    async for info in s3.list_objects("blobs/"):
        _, algorithm, hex_ = info.key.split("/", 2)
        digest = Digest(algorithm, hex_)
        record = keys.parse_blob_record(await s3.get(info.key, limit=4096))
        if digest in marked:
            report.kept += 1
            if record:
                referenced_data.add(record[0])
            continue
        if info.modified > cutoff:
            report.young += 1
            if record:
                referenced_data.add(record[0])
            continue
        if not dry_run:
            current = await s3.head(info.key)
            if current is not None and current.modified > cutoff:  # touched since: a push is using it
                report.young += 1
                if record:
                    referenced_data.add(record[0])
                continue
            await s3.delete(info.key)
            if record:
                await s3.delete(record[0])
        report.freed.append((digest, record[1] if record else 0))
        freed.add(digest)
    async for info in s3.list_objects("data/"):
        if info.key in referenced_data or info.modified > cutoff:
            continue
        if not dry_run:
            await s3.delete(info.key)
    if not dry_run and freed:
        async for info in s3.list_objects("repositories/"):
            head, found, rest = info.key.partition("/_layers/")
            if found and Digest(*rest.split("/", 1)) in freed:
                await s3.delete(info.key)
                report.links_removed += 1
    return report


def collect_s3(settings: Settings, *, grace: float, dry_run: bool = False) -> GcReport:
    """`authgate gc` on `storage: s3` (blocking: runs its own event loop)."""

    async def run() -> GcReport:
        async with S3(settings) as s3:
            await s3.check()
            return await collect(s3, grace=grace, dry_run=dry_run)

    return asyncio.run(run())
