"""`RegistryContent` of gateway mode: what the console shows, read from the upstream registry.

Repositories come from the upstream's catalog (walked in pages, bounded like the `/v2/_catalog`
walk), tags from its tag lists, manifests from `GET /v2/<name>/manifests/<ref>` (bounded by
`max_manifest_size`), referrers from authgate's own index (`referrer_index`). authgate's upstream
credentials ask for exactly the scope each read needs. Nothing here applies the policy: the
console asks it before calling (a repository the user cannot pull is never read).
"""

from __future__ import annotations

import logging

import httpx

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.catalog import walk_catalog, walk_tags
from authgate.gateway.client import Upstream
from authgate.gateway.referrer_index import ReferrerIndex
from authgate.gateway.tags import MANIFEST_TYPES
from authgate.reference import Digest, RepositoryName, Tag
from authgate.registry.manifest_format import Descriptor, media_type_of
from authgate.scope import Scope
from authgate.storage.base import StoredManifest

log = logging.getLogger(__name__)


def _pull(name: RepositoryName) -> list[Scope]:
    return [Scope("repository", str(name), frozenset({"pull"}))]


class GatewayContent:
    def __init__(self, upstream: Upstream, index: ReferrerIndex, max_manifest_size: int) -> None:
        self.upstream = upstream
        self.index = index
        self.max_manifest_size = max_manifest_size

    async def repositories(self) -> list[str]:
        return await walk_catalog(self.upstream)

    async def tags(self, name: RepositoryName) -> list[str] | None:
        return await walk_tags(self.upstream, str(name), _pull(name))

    async def get_manifest(self, name: RepositoryName, reference: Tag | Digest) -> StoredManifest | None:
        response = await self.upstream.send("GET", f"/v2/{name}/manifests/{reference}", scopes=_pull(name),
                                            headers={"Accept": MANIFEST_TYPES})
        try:
            if response.status_code != 200:
                return None
            body = await _bounded(response, self.max_manifest_size)
        except httpx.HTTPError as exc:
            raise self.upstream.failure("GET", response.request.url.path, exc) from None
        finally:
            await response.aclose()
        if body is None:
            log.warning("upstream %s: manifest %s of %s is larger than max_manifest_size", self.upstream.base,
                        reference, name)
            return None
        digest = Digest.of(body, reference.algorithm if isinstance(reference, Digest) else "sha256")
        if isinstance(reference, Digest) and digest != reference:
            # authgate shows what it hashed itself; a mismatch is the upstream's fault, not the user's
            raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry answered garbage; try again later")
        return StoredManifest(digest, media_type_of(response.headers.get("content-type")), body)

    async def referrers(self, name: RepositoryName, subject: Digest) -> list[Descriptor]:
        return await self.index.referrers(str(name), subject)


async def _bounded(response: httpx.Response, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
