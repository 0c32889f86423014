"""Where the embedded store keeps things, and the one way it writes small files: atomically.

    registry/
      blobs/<alg>/<hex[:2]>/<hex>                  content, shared by every repository
      uploads/<id>/data, uploads/<id>/repository    upload sessions (resumable)
      tmp/                                          half-written files; emptied at start
      repositories/<name>/_layers/<alg>/<hex>       the blob is part of <name>
      repositories/<name>/_manifests/revisions/<alg>/<hex>   holds the manifest's media type
      repositories/<name>/_manifests/tags/<tag>     holds the tagged digest
      repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex> a manifest whose subject is <alg>:<hex>

Repository name components start with a letter or digit, so `_layers` and friends cannot collide
with a name. A file appears under its final name only complete (temp file, fsync, rename, fsync
the directory), so a crash at any instant leaves the old or the new content, never a torn one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from authgate.private_files import private_directory
from authgate.reference import Digest, RepositoryName, Tag


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.uploads = root / "uploads"
        self.tmp = root / "tmp"
        self.repositories = root / "repositories"
        self._blobs, self._repositories = str(self.blobs), str(self.repositories)

    def create(self) -> None:
        private_directory(self.root, "blob store")  # private images, even in an existing 0755 data dir
        for directory in (self.blobs, self.uploads, self.tmp, self.repositories):
            directory.mkdir(parents=True, exist_ok=True)

    def blob(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def upload(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def repository(self, name: RepositoryName) -> Path:
        return self.repositories / name.value

    def layer_link(self, name: RepositoryName, digest: Digest) -> Path:
        return self.repository(name) / "_layers" / digest.algorithm / digest.hex

    def revisions(self, name: RepositoryName) -> Path:
        return self.repository(name) / "_manifests" / "revisions"

    def revision(self, name: RepositoryName, digest: Digest) -> Path:
        return self.revisions(name) / digest.algorithm / digest.hex

    def tags(self, name: RepositoryName) -> Path:
        return self.repository(name) / "_manifests" / "tags"

    def tag(self, name: RepositoryName, tag: Tag) -> Path:
        return self.tags(name) / tag.value

    def referrers(self, name: RepositoryName, subject: Digest) -> Path:
        return self.repository(name) / "_referrers" / subject.algorithm / subject.hex

    def referrer(self, name: RepositoryName, subject: Digest, manifest: Digest) -> Path:
        return self.referrers(name, subject) / f"{manifest.algorithm}-{manifest.hex}"

    # -- the same paths as `str`, for the reads of every pull (`get_manifest`, `blob_size`): joining
    # a `Path` costs a few microseconds a segment, more than the read itself.

    def blob_file(self, digest: Digest) -> str:
        return f"{self._blobs}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"

    def layer_link_file(self, name: RepositoryName, digest: Digest) -> str:
        return f"{self._repositories}/{name.value}/_layers/{digest.algorithm}/{digest.hex}"

    def revision_file(self, name: RepositoryName, digest: Digest) -> str:
        return f"{self._repositories}/{name.value}/_manifests/revisions/{digest.algorithm}/{digest.hex}"

    def tag_file(self, name: RepositoryName, tag: Tag) -> str:
        return f"{self._repositories}/{name.value}/_manifests/tags/{tag.value}"

    def temp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(layout: Layout, path: Path, data: bytes) -> None:
    """Temp file, fsync, rename, fsync the directory (blocking: call from a worker thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = layout.temp_path()
    try:
        with open(temp, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def commit_file(source: Path, path: Path) -> None:
    """Move a complete, fsynced file into place under its content address (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, path)
    fsync_dir(path.parent)


class FileTooLarge(Exception):
    """Raised by `read_small` for a file over its limit (the caller reads it in a thread)."""


def read_small(path: str | Path, limit: int) -> bytes | None:
    """The bytes of a file of at most `limit` bytes, None if it is missing: one open, fstat, read and
    close, cheap enough to run on the event loop for a page-cached file. Larger: `FileTooLarge`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if os.fstat(fd).st_size > limit:
            raise FileTooLarge(path)
        return os.read(fd, limit + 1)
    finally:
        os.close(fd)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def remove(path: Path) -> bool:
    """Unlink a file and fsync its directory; False if it was not there (blocking)."""
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    fsync_dir(path.parent)
    return True
