"""Immutable tags and tag moves in gateway mode: the upstream knows where a tag points, so authgate
asks it (HEAD) before a tagged manifest PUT or a manifest DELETE.

The upstream has no conditional PUT, so a push racing another push of the same tag between the
HEAD and the PUT can still move it; the audit log then shows both pushes.
"""

from __future__ import annotations

from collections.abc import Sequence

from authgate.gateway.client import Upstream
from authgate.policy import Authorizer, immutable_tag_rule
from authgate.scope import Scope

#: Every manifest type, so the upstream answers with the digest of what is stored (no conversion).
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
_TAG_PAGES = 10
_TAG_PAGE = 1000


async def current_digest(upstream: Upstream, repository: str, tag: str, scopes: Sequence[Scope]) -> str | None:
    """Where `tag` points upstream now, or None if it does not exist."""
    pull = [Scope("repository", repository, frozenset({"pull"}))]
    response = await upstream.send("HEAD", f"/v2/{repository}/manifests/{tag}", scopes=pull,
                                   headers={"Accept": MANIFEST_TYPES})
    await response.aclose()
    if response.status_code != 200:
        return None
    digest = response.headers.get("docker-content-digest")
    return str(digest) if digest else None


async def immutable_tags_on(upstream: Upstream, policy: Authorizer, repository: str, digest: str
                            ) -> tuple[str, str] | None:
    """An immutable tag pointing at `digest` (tag, rule), which forbids deleting the manifest."""
    pull = [Scope("repository", repository, frozenset({"pull"}))]
    last = ""
    for _ in range(_TAG_PAGES):
        params = {"n": str(_TAG_PAGE), **({"last": last} if last else {})}
        response = await upstream.send("GET", f"/v2/{repository}/tags/list", scopes=pull, params=params)
        if response.status_code != 200:
            await response.aclose()
            return None
        document = await upstream.read_json(response)
        tags = document.get("tags") if isinstance(document, dict) else None
        if not isinstance(tags, list) or not tags:
            return None
        for tag in tags:
            rule = immutable_tag_rule(policy, repository, str(tag)) if isinstance(tag, str) else None
            if rule and await current_digest(upstream, repository, tag, pull) == digest:
                return tag, rule
        if len(tags) < _TAG_PAGE:
            return None
        last = str(tags[-1])
    return None
