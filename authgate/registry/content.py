"""What a registry holds, read without HTTP: repositories, tags, manifests and referrers.

Both modes answer it (the embedded store here, the upstream in `authgate.gateway.content`), so the
console's repository pages and the referrers API are built once. `referrers_response` is the one
place the referrers API's answer is made: an image index of descriptors, filtered by
`artifactType` with the `OCI-Filters-Applied` header saying so (OCI distribution spec, "Listing
Referrers").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from starlette.responses import Response

from authgate.errors import RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.registry.manifest_format import OCI_INDEX, Descriptor, parse_manifest
from authgate.storage.base import ManifestStore, StoredManifest


class RegistryContent(Protocol):
    """Read access to one mode's content; callers apply the policy before showing anything."""

    async def repositories(self) -> list[str]:
        """Every repository name, sorted (unfiltered: the caller filters by pull permission)."""
        ...

    async def tags(self, name: RepositoryName) -> list[str] | None:
        """Sorted tag names; None when the repository does not exist."""
        ...

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None: ...

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[Descriptor]:
        """The manifests of `name` whose `subject` is `subject`, as referrers descriptors, by digest."""
        ...


def referrer_descriptor(manifest: StoredManifest) -> Descriptor | None:
    """A stored manifest as the referrers API lists it (None if it no longer parses)."""
    try:
        parsed = parse_manifest(manifest.body, manifest.media_type)
    except RegistryError:
        return None
    return Descriptor(manifest.media_type, manifest.digest, len(manifest.body),
                      artifact_type=parsed.artifact_type, annotations=parsed.annotations)


def referrers_response(descriptors: Sequence[Descriptor], artifact_type: str | None) -> Response:
    """`GET /v2/<name>/referrers/<digest>`: an image index (empty for an unknown digest)."""
    if artifact_type is not None:
        descriptors = [d for d in descriptors if d.artifact_type == artifact_type]
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else {}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [d.as_json() for d in descriptors]}).encode()
    return Response(body, headers=headers, media_type=OCI_INDEX)


class StoreContent:
    """`RegistryContent` of the embedded store (filesystem or S3)."""

    def __init__(self, store: ManifestStore) -> None:
        self.store = store

    async def repositories(self) -> list[str]:
        return await self.store.repositories()

    async def tags(self, name: RepositoryName) -> list[str] | None:
        return await self.store.tags(name)

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None:
        return await self.store.get_manifest(name, reference)

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[Descriptor]:
        found = (referrer_descriptor(m) for m in await self.store.referrers(name, subject))
        return sorted((d for d in found if d is not None), key=lambda d: str(d.digest))
