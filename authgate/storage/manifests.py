"""Manifests, tags, referrers and the repository list of the embedded store.

A manifest's bytes are a blob; a repository holds it through a revision link (which records the
media type), a tag is a file holding a digest. Writes go blob, then revision, then tag; deletes go
tags first, then the revision: so a tag never points at a manifest that is not there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import anyio.to_thread

from authgate.errors import RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.storage.base import StoredManifest
from authgate.storage.layout import FileTooLarge, Layout, commit_file, read_small, read_text, remove, write_atomic

_run = anyio.to_thread.run_sync

#: Manifests up to this size are read on the event loop (`get_manifest`); nearly all are a few KiB.
INLINE_READ = 64 * 1024
#: A tag directory up to this size (its `st_size`: 4 KiB holds ~100 names on ext4) is listed on the event loop.
INLINE_LISTING = 16 * 1024


class FilesystemManifestStore:
    def __init__(self, layout: Layout, max_manifest_size: int) -> None:
        self.layout = layout
        self.max_manifest_size = max_manifest_size
        #: One writer at a time for tag moves and deletes, so "old tag value" reads are exact.
        self._write_lock = anyio.Lock()

    def _resolve(self, name: RepositoryName, reference: Tag | Digest) -> Digest | None:
        digest = self._tag_digest(name, reference) if isinstance(reference, Tag) else reference
        if digest is None:
            return None
        return digest if self.layout.revision(name, digest).is_file() else None

    async def resolve(self, name: RepositoryName, reference: Tag | Digest) -> Digest | None:
        return await _run(self._resolve, name, reference)

    def _load(self, name: RepositoryName, digest: Digest) -> StoredManifest | None:
        media_type = read_text(self.layout.revision(name, digest))
        if media_type is None:
            return None
        body = self._read_body(digest)
        return None if body is None else StoredManifest(digest, media_type, body)

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None:
        """Read on the event loop, unlike the rest of this store: the tag and revision files hold a few
        dozen bytes and a manifest a few KiB, all in the page cache, so reading them costs a few
        microseconds, while the hop to a worker thread and back (`_run`) cost ~100 us and a GIL
        handoff per pull. Only a manifest larger than `INLINE_READ` is read in a thread."""
        digest = reference if isinstance(reference, Digest) else self._tag_digest(name, reference)
        if digest is None:
            return None
        try:
            media_type = read_small(self.layout.revision_file(name, digest), INLINE_READ)
        except FileTooLarge:
            return None  # not a revision link we wrote
        if media_type is None:
            return None
        try:
            body = read_small(self.layout.blob_file(digest), INLINE_READ)
        except FileTooLarge:
            body = await _run(self._read_body, digest)
        if body is None:
            return None
        return StoredManifest(digest, media_type.decode(), body)

    def _tag_digest(self, name: RepositoryName, tag: Tag) -> Digest | None:
        try:
            raw = read_small(self.layout.tag_file(name, tag), INLINE_READ)
            return None if raw is None else Digest.parse(raw.decode().strip())
        except (FileTooLarge, RegistryError, UnicodeDecodeError):
            return None  # a damaged tag file (recovery drops these at start): unknown

    def _read_body(self, digest: Digest) -> bytes | None:
        try:
            with open(self.layout.blob(digest), "rb") as file:
                return file.read(self.max_manifest_size + 1)
        except FileNotFoundError:
            return None

    async def put_manifest(self, name: RepositoryName, manifest: StoredManifest, tag: Tag | None,
                           subject: Digest | None) -> Digest | None:
        def put() -> Digest | None:
            blob = self.layout.blob(manifest.digest)
            if blob.exists():
                os.utime(blob)
            else:
                temp = self.layout.temp_path()
                with open(temp, "wb") as file:
                    file.write(manifest.body)
                    file.flush()
                    os.fsync(file.fileno())
                commit_file(temp, blob)
            write_atomic(self.layout, self.layout.revision(name, manifest.digest), manifest.media_type.encode())
            if subject is not None:
                write_atomic(self.layout, self.layout.referrer(name, subject, manifest.digest), b"")
            if tag is None:
                return None
            previous = self._resolve(name, tag)
            if previous != manifest.digest:
                write_atomic(self.layout, self.layout.tag(name, tag), str(manifest.digest).encode())
            return previous

        async with self._write_lock:
            return await _run(put)

    def _tags_pointing_at(self, name: RepositoryName, digest: Digest) -> list[Tag]:
        found = []
        for tag in self._tag_names(name) or []:
            if (read_text(self.layout.tags(name) / tag) or "").strip() == str(digest):
                found.append(Tag(tag))
        return found

    async def tags_pointing_at(self, name: RepositoryName, digest: Digest) -> list[Tag]:
        return await _run(self._tags_pointing_at, name, digest)

    async def delete_manifest(self, name: RepositoryName, digest: Digest) -> list[Tag] | None:
        def delete() -> list[Tag] | None:
            manifest = self._load(name, digest)
            if manifest is None:
                return None
            tags = self._tags_pointing_at(name, digest)
            for tag in tags:
                remove(self.layout.tag(name, tag))
            subject = subject_of(manifest.body)
            if subject is not None:
                remove(self.layout.referrer(name, subject, digest))
            remove(self.layout.revision(name, digest))
            return tags

        async with self._write_lock:
            return await _run(delete)

    async def delete_tag(self, name: RepositoryName, tag: Tag) -> bool:
        async with self._write_lock:
            return await _run(remove, self.layout.tag(name, tag))

    def _tag_names(self, name: RepositoryName) -> list[str] | None:
        directory = self.layout.tags(name)
        if not self.layout.revisions(name).is_dir():
            return None
        try:
            return sorted(entry.name for entry in os.scandir(directory) if entry.is_file())
        except FileNotFoundError:
            return []

    async def tags(self, name: RepositoryName) -> list[str] | None:
        """A small tag directory is listed on the event loop (see `get_manifest`); one whose size says
        it holds more than a few hundred entries, in a thread."""
        try:
            small = os.stat(self.layout.tags(name)).st_size <= INLINE_LISTING
        except (FileNotFoundError, NotADirectoryError):
            small = True  # no tags: `_tag_names` answers at once
        return self._tag_names(name) if small else await _run(self._tag_names, name)

    async def repositories(self) -> list[str]:
        def walk() -> list[str]:
            root = self.layout.repositories
            found = []
            for directory, subdirs, _files in os.walk(root):
                if "_manifests" in subdirs:
                    found.append(str(Path(directory).relative_to(root)))
                subdirs[:] = [d for d in subdirs if not d.startswith("_")]
            return sorted(found)

        return await _run(walk)

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[StoredManifest]:
        def collect() -> list[StoredManifest]:
            directory = self.layout.referrers(name, subject)
            try:
                entries = sorted(entry.name for entry in os.scandir(directory))
            except FileNotFoundError:
                return []
            found = []
            for entry in entries:
                algorithm, _, hex_ = entry.partition("-")
                manifest = self._load(name, Digest(algorithm, hex_))
                if manifest is not None:
                    found.append(manifest)
            return found

        return await _run(collect)


def subject_of(body: bytes) -> Digest | None:
    """The `subject` digest of a stored manifest (already validated when it was pushed)."""
    try:
        document = json.loads(body)
        return Digest.parse(document["subject"]["digest"])
    except Exception:  # noqa: BLE001 - no subject, or not one we stored
        return None
