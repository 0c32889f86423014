"""Garbage collection of the embedded store: free blobs that no manifest references.

Mark: every manifest any repository holds (tagged or not) and everything it references. Sweep:
every other blob older than the grace period. The grace period is what makes gc safe beside
running pushes: a layer uploaded for a manifest not pushed yet is young, and every commit, mount
or manifest reference of an existing blob refreshes its time; the age is checked again right
before each unlink.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from authgate.errors import RegistryError
from authgate.reference import Digest
from authgate.storage.layout import Layout, remove

DEFAULT_GRACE = 3600


@dataclass
class GcReport:
    freed: list[tuple[Digest, int]] = field(default_factory=list)
    kept: int = 0
    young: int = 0
    links_removed: int = 0

    @property
    def freed_bytes(self) -> int:
        return sum(size for _, size in self.freed)


def _references(body: bytes) -> list[Digest]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    descriptors = [document.get("config")] + list(document.get("layers") or []) + list(document.get("manifests") or [])
    found = []
    for descriptor in descriptors:
        if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
            try:
                found.append(Digest.parse(descriptor["digest"]))
            except RegistryError:  # validated at push; skip what cannot be a reference
                continue
    return found


def _revision_dirs(layout: Layout) -> list[Path]:
    found = []
    for directory, subdirs, _files in os.walk(layout.repositories):
        if "_manifests" in subdirs:
            found.append(Path(directory) / "_manifests" / "revisions")
        subdirs[:] = [d for d in subdirs if not d.startswith("_")]
    return found


def mark(layout: Layout) -> set[Digest]:
    marked: set[Digest] = set()
    for revisions in _revision_dirs(layout):
        for path in revisions.glob("*/*"):
            digest = Digest(path.parent.name, path.name)
            marked.add(digest)
            try:
                body = layout.blob(digest).read_bytes()
            except FileNotFoundError:
                continue
            marked.update(_references(body))
    return marked


def collect(layout: Layout, *, grace: float = DEFAULT_GRACE, dry_run: bool = False) -> GcReport:
    """Blocking. With `dry_run`, report what would be freed and change nothing."""
    report = GcReport()
    marked = mark(layout)
    cutoff = time.time() - grace
    for path in sorted(layout.blobs.glob("*/*/*")):
        digest = Digest(path.parent.parent.name, path.name)
        if digest in marked:
            report.kept += 1
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        if stat.st_mtime > cutoff:
            report.young += 1
            continue
        if not dry_run:
            if path.stat().st_mtime > cutoff:  # touched since: a push is using it
                report.young += 1
                continue
            remove(path)
        report.freed.append((digest, stat.st_size))
    if not dry_run:
        freed = {digest for digest, _ in report.freed}
        for link in layout.repositories.rglob("_layers/*/*"):
            if Digest(link.parent.name, link.name) in freed and remove(link):
                report.links_removed += 1
    return report
