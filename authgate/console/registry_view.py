"""What the console shows of the registry's content: repositories, tags, sizes, platforms, referrers.

Read from the embedded store the `/v2/` routes serve (the same `ManifestStore`). In gateway mode
the content lives in the upstream registry and this module has nothing to read: the pages say so.
The policy filter is applied by the callers, before anything here is shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from authgate.audit.query import AuditFilter, list_events
from authgate.console.repository_list import repository_names
from authgate.db.session import Database
from authgate.errors import RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.registry.embedded import EmbeddedBackend
from authgate.registry.manifest_format import INDEX_TYPES
from authgate.resources import Resources
from authgate.storage.base import ManifestStore


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


def manifest_store(resources: Resources) -> ManifestStore | None:
    """The embedded store's manifests, or None in gateway mode."""
    backend = resources.backend
    return backend.stores.manifests if isinstance(backend, EmbeddedBackend) else None


async def repositories(store: ManifestStore) -> list[str]:
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


async def tags(resources: Resources, store: ManifestStore, name: RepositoryName) -> list[TagView] | None:
    """The repository's tags with what each points at; None when the repository does not exist."""
    names = await store.tags(name)
    if names is None:
        return None
    pushes = await _pushes(resources.db, str(name))
    views = []
    for tag_name in names[:500]:
        manifest = await store.get_manifest(name, Tag(tag_name))
        if manifest is None:
            continue
        size, platforms = _size_and_platforms(manifest.body, manifest.media_type)
        who, when = pushes.get(tag_name, (None, None))
        views.append(TagView(tag_name, str(manifest.digest), manifest.media_type, size, platforms, who, when))
    return views


async def referrers(store: ManifestStore, name: RepositoryName, digest: str) -> list[ReferrerView]:
    """Signatures, SBOMs and other artifacts whose `subject` is `digest`."""
    try:
        parsed = Digest.parse(digest)
    except RegistryError:
        return []
    views = []
    for manifest in await store.referrers(name, parsed):
        try:
            document = json.loads(manifest.body)
        except ValueError:
            continue
        artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType") or ""
        views.append(ReferrerView(str(manifest.digest), str(artifact_type), manifest.media_type, len(manifest.body)))
    return views
