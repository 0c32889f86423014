"""What the console shows of the registry's content: repositories, tags, sizes, platforms, referrers.

Read through `RegistryContent`: in embedded mode the store the `/v2/` routes serve, in gateway mode
the upstream registry (its catalog, tag lists and manifests) and authgate's referrers index. The
policy filter is applied by the callers, before anything here is read or shown.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from authgate.audit.query import AuditFilter, list_events
from authgate.console.repository_list import repository_names
from authgate.db.session import Database
from authgate.errors import RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.registry.content import RegistryContent
from authgate.registry.manifest_format import INDEX_TYPES
from authgate.resources import Resources
from authgate.storage.base import StoredManifest

#: Tags shown on a repository page; their manifests are read this many at a time (in gateway
#: mode each is a request to the upstream).
MAX_TAGS = 500
_READ_AT_ONCE = 8


@dataclass
class TagView:
    name: str
    digest: str
    media_type: str
    size: int | None
    platforms: list[str] = field(default_factory=list)
    pushed_by: str | None = None
    pushed_at: str | None = None


@dataclass
class ReferrerView:
    digest: str
    artifact_type: str
    media_type: str
    size: int


async def repositories(store: RegistryContent) -> list[str]:
    """Every repository name, sorted, as a background walk last found them (repository_list.py):
    a page of 10,000 names should not walk the disk on every keystroke of a search, nor ever wait
    for a walk while the console is in use."""
    return await repository_names(store)


def parse_name(raw: str) -> RepositoryName | None:
    try:
        return RepositoryName.parse(raw)
    except RegistryError:
        return None


def parse_tag(raw: str) -> Tag | None:
    try:
        return Tag.parse(raw)
    except RegistryError:
        return None


def _size_and_platforms(body: bytes, media_type: str) -> tuple[int | None, list[str]]:
    """Image: manifest + config + layers. Index: the platforms of its children (size left to them)."""
    try:
        document: Any = json.loads(body)
    except ValueError:
        return None, []
    if not isinstance(document, dict):
        return None, []
    if media_type in INDEX_TYPES:
        platforms = []
        for child in document.get("manifests") or []:
            platform = child.get("platform") if isinstance(child, dict) else None
            if isinstance(platform, dict) and isinstance(platform.get("os"), str):
                text = "/".join(str(platform[k]) for k in ("os", "architecture", "variant") if platform.get(k))
                if text != "unknown/unknown":  # buildkit's attestation manifests
                    platforms.append(text)
        return None, platforms
    total = len(body)
    for part in [document.get("config"), *(document.get("layers") or [])]:
        if isinstance(part, dict) and isinstance(part.get("size"), int):
            total += part["size"]
    return total, []


async def _pushes(db: Database, repository: str) -> dict[str, tuple[str, str]]:
    """tag -> (who, when) of its latest push, from the audit log (newest 1000 pushes)."""
    events = await list_events(db, AuditFilter(repository=repository, action="manifest:push"), limit=1000)
    found: dict[str, tuple[str, str]] = {}
    for event in events:
        key = event.get("reference") or event.get("digest")
        if key and key not in found:
            found[key] = (event["actor"], event["time"])
    return found


def _view(tag_name: str, manifest: StoredManifest, pushes: dict[str, tuple[str, str]]) -> TagView:
    size, platforms = _size_and_platforms(manifest.body, manifest.media_type)
    who, when = pushes.get(tag_name, (None, None))
    return TagView(tag_name, str(manifest.digest), manifest.media_type, size, platforms, who, when)


async def tags(resources: Resources, store: RegistryContent, name: RepositoryName) -> list[TagView] | None:
    """The repository's tags with what each points at; None when the repository does not exist."""
    names = await store.tags(name)
    if names is None:
        return None
    pushes = await _pushes(resources.db, str(name))
    gate = asyncio.Semaphore(_READ_AT_ONCE)

    async def read(tag_name: str) -> StoredManifest | None:
        async with gate:
            return await store.get_manifest(name, Tag(tag_name))

    manifests = await asyncio.gather(*(read(tag_name) for tag_name in names[:MAX_TAGS]))
    return [_view(tag_name, manifest, pushes) for tag_name, manifest in zip(names, manifests) if manifest is not None]


async def tag(resources: Resources, store: RegistryContent, name: RepositoryName, tag_name: str) -> TagView | None:
    """One tag (the tag page reads only its manifest); None when it or the repository does not exist."""
    parsed = parse_tag(tag_name)
    manifest = await store.get_manifest(name, parsed) if parsed is not None else None
    if manifest is None:
        return None
    return _view(tag_name, manifest, await _pushes(resources.db, str(name)))


async def referrers(store: RegistryContent, name: RepositoryName, digest: str) -> list[ReferrerView]:
    """Signatures, SBOMs and other artifacts whose `subject` is `digest`."""
    try:
        parsed = Digest.parse(digest)
    except RegistryError:
        return []
    return [ReferrerView(str(d.digest), d.artifact_type or "", d.media_type, d.size)
            for d in await store.referrers(name, parsed)]
