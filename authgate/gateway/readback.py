"""The digest check of an upload whose bytes no single authgate process saw.

A session that moved between replicas (a chunk on A, the next on B) has no running hash anywhere:
Python cannot carry a sha256 state between processes, and the registry API cannot read an
unfinished upload back. So its final `PUT ?digest=` goes to the upstream, which checks the digest
itself (the distribution spec requires it; distribution re-reads the upload when its own hash
state is missing) and refuses a mismatch with `DIGEST_INVALID`, committing nothing. Then authgate
reads the committed blob back and hashes it before answering `201`: an upstream that committed
bytes whose digest does not match (one that skips the check) gets the blob deleted again and the
client a `DIGEST_INVALID`, and the log says which upstream did it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.client import Upstream
from authgate.reference import Digest
from authgate.scope import Scope

log = logging.getLogger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5


async def read_back(upstream: Upstream, repository: str, digest: Digest, scopes: Sequence[Scope]) -> tuple[str, int]:
    """`(algorithm:hex, size)` of the blob `digest` as the upstream serves it (redirects to object
    storage followed), hashed with the algorithm `digest` names."""
    pull = [scope.with_actions({"pull"}) for scope in scopes[:1]]
    path = f"/v2/{repository}/blobs/{digest}"
    response = await upstream.send("GET", path, scopes=pull)
    for _ in range(_MAX_REDIRECTS):
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or not location:
            break
        await response.aclose()
        response = await upstream.send("GET", "", url=str(response.request.url.join(location)), scopes=pull)
    try:
        if response.status_code != 200:
            log.error("upstream %s answered %s to reading back %s it had just committed", upstream.base,
                      response.status_code, path)
            raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry did not serve a blob it had just "
                                "committed; try again later", headers={"Retry-After": "5"})
        hasher = digest.hasher()
        size = 0
        async for chunk in response.aiter_bytes():
            hasher.update(chunk)
            size += len(chunk)
    except httpx.HTTPError as exc:
        raise upstream.failure("GET", path, exc) from None
    finally:
        await response.aclose()
    return f"{digest.algorithm}:{hasher.hexdigest()}", size


async def delete_blob(upstream: Upstream, repository: str, digest: Digest, scopes: Sequence[Scope]) -> None:
    """Remove a blob the upstream should never have committed; a failure is logged loudly."""
    delete = [scope.with_actions({"delete"}) for scope in scopes[:1]]
    try:
        response = await upstream.send("DELETE", f"/v2/{repository}/blobs/{digest}", scopes=delete)
        await response.aclose()
        status = response.status_code
    except RegistryError:
        status = 0
    if status != 202:
        log.error("upstream %s holds blob %s in %s whose content does not match its digest, and refused to delete "
                  "it (status %s): delete it there (enable storage.delete)", upstream.base, digest, repository,
                  status or "none")
