"""What the registry operations need from a store, so handlers do not depend on the filesystem."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from authgate.reference import Digest, RepositoryName, Tag


class BlobStore(Protocol):
    """Content-addressed blobs shared across repositories, linked into each repository that has them."""

    async def blob_size(self, name: RepositoryName, digest: Digest) -> int | None:
        """The size if the blob is complete and part of `name`, else None."""
        ...

    def read_blob(self, digest: Digest, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]: ...

    async def read_blob_bytes(self, digest: Digest, limit: int) -> bytes | None:
        """A small blob (a manifest) whole; None if missing or larger than `limit`."""
        ...

    async def redirect_url(self, digest: Digest) -> str | None:
        """Where a client may fetch the bytes itself (a presigned object-store URL), or None to stream them."""
        ...

    async def link(self, name: RepositoryName, digest: Digest) -> bool:
        """Link an existing blob into `name` (and refresh it for gc's grace period); False if it is gone."""
        ...

    async def unlink_blob(self, name: RepositoryName, digest: Digest) -> bool: ...

    async def start_upload(self, name: RepositoryName) -> str: ...

    async def upload_size(self, name: RepositoryName, upload_id: str) -> int:
        """Bytes received so far; raises BLOB_UPLOAD_UNKNOWN."""
        ...

    async def append(self, name: RepositoryName, upload_id: str, body: AsyncIterable[bytes],
                     start: int | None = None) -> int:
        """Stream `body` onto the session (at `start`, which must be its size: else 416); the new size."""
        ...

    async def commit(self, name: RepositoryName, upload_id: str, digest: Digest) -> int:
        """Verify `digest`, move the blob into the content-addressed namespace, link it; its size.
        A mismatch removes the session and raises DIGEST_INVALID."""
        ...

    async def cancel(self, name: RepositoryName, upload_id: str) -> None: ...

    async def put_blob(self, name: RepositoryName, digest: Digest, body: AsyncIterable[bytes]) -> int:
        """A monolithic upload: all or nothing."""
        ...


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    media_type: str
    body: bytes


class ManifestStore(Protocol):
    """Manifests (stored as blobs), tags, referrers and the list of repositories."""

    async def resolve(self, name: RepositoryName, reference: Tag | Digest) -> Digest | None: ...

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None: ...

    async def put_manifest(self, name: RepositoryName, manifest: StoredManifest, tag: Tag | None,
                           subject: Digest | None) -> Digest | None:
        """Store and link the manifest, then move `tag` to it; returns the digest the tag held before."""
        ...

    async def delete_manifest(self, name: RepositoryName, digest: Digest) -> list[Tag] | None:
        """Unlink the manifest and every tag pointing at it; the removed tags, or None if unknown."""
        ...

    async def delete_tag(self, name: RepositoryName, tag: Tag) -> bool: ...

    async def tags_pointing_at(self, name: RepositoryName, digest: Digest) -> list[Tag]: ...

    async def tags(self, name: RepositoryName) -> list[str] | None:
        """Sorted tag names; None when the repository has no manifests."""
        ...

    async def repositories(self) -> list[str]: ...

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[StoredManifest]: ...
