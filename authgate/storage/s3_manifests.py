"""Manifests, tags, referrers and the repository list of the S3 store (layout in `s3_layout`).

The same write order as the filesystem store: manifest blob, then revision, then tag; deletes go
tags first, then the revision. Within one process tag moves are serialised; between replicas
the object store decides (last writer wins, as with distribution on S3), so the "previous tag"
an audit event reports is exact within a process and best effort across replicas.
"""

from __future__ import annotations

import anyio

from authgate.errors import RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.storage import s3_layout as keys
from authgate.storage.base import StoredManifest
from authgate.storage.manifests import subject_of
from authgate.storage.s3 import S3BlobStore


class S3ManifestStore:
    def __init__(self, blobs: S3BlobStore, max_manifest_size: int) -> None:
        self.blobs = blobs
        self.s3 = blobs.s3
        self.max_manifest_size = max_manifest_size
        self._write_lock = anyio.Lock()

    async def _text(self, key: str) -> str | None:
        raw = await self.s3.get(key, limit=64 * 1024)
        return None if raw is None else raw.decode(errors="replace")

    async def resolve(self, name: RepositoryName, reference: Tag | Digest) -> Digest | None:
        if isinstance(reference, Tag):
            raw = await self._text(keys.tag(name, reference))
            if raw is None:
                return None
            try:
                digest = Digest.parse(raw.strip())
            except RegistryError:
                return None
        else:
            digest = reference
        return digest if await self.s3.head(keys.revision(name, digest)) is not None else None

    async def _load(self, name: RepositoryName, digest: Digest) -> StoredManifest | None:
        media_type = await self._text(keys.revision(name, digest))
        if media_type is None:
            return None
        body = await self.blobs.read_blob_bytes(digest, self.max_manifest_size)
        return None if body is None else StoredManifest(digest, media_type, body)

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None:
        digest = await self.resolve(name, reference)
        return None if digest is None else await self._load(name, digest)

    async def put_manifest(self, name: RepositoryName, manifest: StoredManifest, tag: Tag | None,
                           subject: Digest | None) -> Digest | None:
        async with self._write_lock:
            await self.blobs.put_small(manifest.digest, manifest.body)
            await self.s3.put(keys.revision(name, manifest.digest), manifest.media_type.encode())
            await self.s3.put(keys.catalog(name), b"")
            if subject is not None:
                await self.s3.put(keys.referrer(name, subject, manifest.digest), b"")
            if tag is None:
                return None
            previous = await self.resolve(name, tag)
            if previous != manifest.digest:
                await self.s3.put(keys.tag(name, tag), str(manifest.digest).encode())
            return previous

    async def tags_pointing_at(self, name: RepositoryName, digest: Digest) -> list[Tag]:
        found = []
        async for info in self.s3.list_objects(keys.tags(name)):
            if ((await self._text(info.key)) or "").strip() == str(digest):
                found.append(Tag(info.key[len(keys.tags(name)):]))
        return found

    async def delete_manifest(self, name: RepositoryName, digest: Digest) -> list[Tag] | None:
        async with self._write_lock:
            manifest = await self._load(name, digest)
            if manifest is None:
                return None
            tags = await self.tags_pointing_at(name, digest)
            for tag in tags:
                await self.s3.delete(keys.tag(name, tag))
            subject = subject_of(manifest.body)
            if subject is not None:
                await self.s3.delete(keys.referrer(name, subject, digest))
            await self.s3.delete(keys.revision(name, digest))
            return tags

    async def delete_tag(self, name: RepositoryName, tag: Tag) -> bool:
        async with self._write_lock:
            if await self.s3.head(keys.tag(name, tag)) is None:
                return False
            await self.s3.delete(keys.tag(name, tag))
            return True

    async def tags(self, name: RepositoryName) -> list[str] | None:
        if await self.s3.head(keys.catalog(name)) is None:
            return None
        prefix = keys.tags(name)
        return sorted([info.key[len(prefix):] async for info in self.s3.list_objects(prefix)])

    async def repositories(self) -> list[str]:
        return sorted([info.key[len("_catalog/"):] async for info in self.s3.list_objects("_catalog/")])

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[StoredManifest]:
        prefix = keys.referrers(name, subject)
        found = []
        async for info in self.s3.list_objects(prefix):
            algorithm, _, hex_ = info.key[len(prefix):].partition("-")
            manifest = await self._load(name, Digest(algorithm, hex_))
            if manifest is not None:
                found.append(manifest)
        return sorted(found, key=lambda m: str(m.digest))
