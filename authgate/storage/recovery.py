"""Start-up recovery: whatever instant the last process died at, serve a consistent store.

Blobs and links only ever appear by rename, so the only debris a crash leaves is in `tmp/` (removed
here) and upload sessions (resumable; expired by age). A tag whose manifest is gone cannot arise from
authgate's own write order, but a hand-edited or partially restored data dir can hold one: it is
dropped and logged rather than served as a 404 forever.
"""

from __future__ import annotations

import logging
import os
import shutil

from authgate.reference import Digest, RepositoryName
from authgate.storage.layout import Layout, read_text, remove

log = logging.getLogger(__name__)


def recover(layout: Layout) -> list[str]:
    """Blocking; returns what it repaired, one line each."""
    layout.create()
    repaired: list[str] = []
    for entry in os.scandir(layout.tmp):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)
        repaired.append(f"removed half-written file tmp/{entry.name}")
    for directory, subdirs, _files in os.walk(layout.repositories):
        if "_manifests" not in subdirs:
            subdirs[:] = [d for d in subdirs if not d.startswith("_")]
            continue
        subdirs[:] = [d for d in subdirs if not d.startswith("_")]
        name = RepositoryName(os.path.relpath(directory, layout.repositories))
        tags_dir = layout.repository(name) / "_manifests" / "tags"
        if not tags_dir.is_dir():
            continue
        for tag in os.scandir(tags_dir):
            raw = (read_text(tags_dir / tag.name) or "").strip()
            try:
                digest = Digest.parse(raw)
                ok = layout.revision(name, digest).is_file() and layout.blob(digest).is_file()
            except Exception:  # noqa: BLE001 - an unreadable tag is as dangling as a missing target
                ok = False
            if not ok:
                remove(tags_dir / tag.name)
                repaired.append(f"dropped tag {name}:{tag.name} pointing at missing manifest {raw[:80]!r}")
    for line in repaired:
        log.warning("store recovery: %s", line)
    return repaired
