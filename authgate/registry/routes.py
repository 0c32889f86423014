"""The whole `/v2/` surface as one table: method, path pattern, the `Backend` method that answers and
the actions it needs. Both backends (embedded, gateway) implement `Backend`, so mypy proves every
route has an answer in every mode.

The actions follow distribution's `appendAccessRecords` (docs/client-compat.md §6): GET/HEAD need
`pull`; POST/PUT/PATCH need `pull` and `push`; DELETE needs `delete`; a cross-repository mount
(`POST …/blobs/uploads/?mount=<digest>&from=<repo>`) also needs `pull` on `<repo>`; `/v2/_catalog`
needs `registry:catalog:*`. Paths are parsed here into value types, so handlers never see raw strings.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName, Tag, parse_reference
from authgate.registry.content import RegistryContent
from authgate.scope import Scope
from authgate.subject import Identity

PULL = frozenset({"pull"})
PUSH = frozenset({"pull", "push"})
DELETE = frozenset({"delete"})
NOTHING: frozenset[str] = frozenset()

#: Upload session ids: ours are UUIDs; an upstream's may be any opaque token of these characters.
_UPLOAD_ID_RE = re.compile(r"[A-Za-z0-9._=~-]{1,256}")


class Kind(enum.Enum):
    """What a path addresses; the table pairs each with methods."""

    BASE = "base"
    CATALOG = "catalog"
    TAGS = "tags"
    MANIFEST = "manifest"
    BLOB = "blob"
    UPLOADS = "uploads"
    UPLOAD = "upload"
    REFERRERS = "referrers"


#: Path patterns below `/v2/`, tried in order. Names may hold slashes, so each pattern anchors on
#: the fixed suffix that follows the name (the last occurrence wins, as in distribution's router).
_PATTERNS: list[tuple[Kind, re.Pattern[str]]] = [
    (Kind.BASE, re.compile(r"")),
    (Kind.CATALOG, re.compile(r"_catalog")),
    (Kind.TAGS, re.compile(r"(?P<name>.+)/tags/list")),
    (Kind.MANIFEST, re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)")),
    (Kind.UPLOADS, re.compile(r"(?P<name>.+)/blobs/uploads/?")),
    (Kind.UPLOAD, re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)")),
    (Kind.BLOB, re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)")),
    (Kind.REFERRERS, re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)")),
]


class Backend(Protocol):
    """One method per registry operation; each answers a request the guard already allowed.

    The registry's rules (audit events, immutable tags, pagination, bounded reads) are applied
    around or inside these; a backend's own business is where the bytes go.
    """

    #: What the mode holds, read without HTTP (the console's repository pages).
    content: RegistryContent

    async def base(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def catalog(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def tags_list(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def referrers(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def manifest_get(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def manifest_put(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def manifest_delete(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def blob_get(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def blob_delete(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def upload_start(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def upload_status(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def upload_patch(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def upload_put(self, request: Request, target: Target, identity: Identity) -> Response: ...
    async def upload_cancel(self, request: Request, target: Target, identity: Identity) -> Response: ...


#: A backend's bound method for one route.
Operation = Callable[[Request, "Target", Identity], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteEntry:
    method: str
    kind: Kind
    #: The `Backend` method that answers (a function of the backend, so mypy checks the name).
    operation: Callable[[Backend], Operation]
    #: Actions needed on the repository in the path (`registry:catalog:*` for the catalog).
    needs: frozenset[str]


#: THE table. A method missing for a kind answers 405 UNSUPPORTED.
ROUTES: tuple[RouteEntry, ...] = (
    RouteEntry("GET", Kind.BASE, lambda b: b.base, NOTHING),
    RouteEntry("HEAD", Kind.BASE, lambda b: b.base, NOTHING),
    RouteEntry("GET", Kind.CATALOG, lambda b: b.catalog, frozenset({"*"})),
    RouteEntry("GET", Kind.TAGS, lambda b: b.tags_list, PULL),
    RouteEntry("GET", Kind.MANIFEST, lambda b: b.manifest_get, PULL),
    RouteEntry("HEAD", Kind.MANIFEST, lambda b: b.manifest_get, PULL),
    RouteEntry("PUT", Kind.MANIFEST, lambda b: b.manifest_put, PUSH),
    RouteEntry("DELETE", Kind.MANIFEST, lambda b: b.manifest_delete, DELETE),
    RouteEntry("GET", Kind.BLOB, lambda b: b.blob_get, PULL),
    RouteEntry("HEAD", Kind.BLOB, lambda b: b.blob_get, PULL),
    RouteEntry("DELETE", Kind.BLOB, lambda b: b.blob_delete, DELETE),
    RouteEntry("POST", Kind.UPLOADS, lambda b: b.upload_start, PUSH),
    RouteEntry("GET", Kind.UPLOAD, lambda b: b.upload_status, PULL),
    RouteEntry("PATCH", Kind.UPLOAD, lambda b: b.upload_patch, PUSH),
    RouteEntry("PUT", Kind.UPLOAD, lambda b: b.upload_put, PUSH),
    RouteEntry("DELETE", Kind.UPLOAD, lambda b: b.upload_cancel, DELETE),
    RouteEntry("GET", Kind.REFERRERS, lambda b: b.referrers, PULL),
)

_BY_KEY: dict[tuple[str, Kind], RouteEntry] = {(r.method, r.kind): r for r in ROUTES}


@dataclass(frozen=True, slots=True)
class Target:
    """What one `/v2/` request addresses, parsed into value types."""

    route: RouteEntry
    repository: RepositoryName | None = None
    reference: Tag | Digest | None = None
    digest: Digest | None = None
    upload_id: str | None = None
    #: Source of a cross-repository mount, when `?mount=&from=` are both present and valid.
    mount_from: RepositoryName | None = None
    mount_digest: Digest | None = None

    @property
    def tag(self) -> Tag | None:
        return self.reference if isinstance(self.reference, Tag) else None

    def needed_scopes(self) -> list[Scope]:
        """The scopes a token must grant (and the policy allow) for this request."""
        if self.route.kind is Kind.BASE:
            return []
        if self.route.kind is Kind.CATALOG:
            return [Scope("registry", "catalog", self.route.needs)]
        assert self.repository is not None
        scopes = [Scope("repository", str(self.repository), self.route.needs)]
        if self.mount_from is not None and self.mount_from != self.repository:
            scopes.append(Scope("repository", str(self.mount_from), PULL))
        return scopes


def path_kind(path: str) -> Kind | None:
    """What `path` (below `/v2/`) addresses, whatever the method: the metrics' route label."""
    for kind, pattern in _PATTERNS:
        if pattern.fullmatch(path):
            return kind
    return None


def match(method: str, path: str, query: Mapping[str, str] | None = None) -> Target:
    """Parse `path` (below `/v2/`, without the leading slash) into a `Target`, or raise a 4xx."""
    for kind, pattern in _PATTERNS:
        found = pattern.fullmatch(path)
        if found is None:
            continue
        entry = _BY_KEY.get((method, kind))
        if entry is None:
            allowed = sorted(m for (m, k) in _BY_KEY if k is kind)
            raise RegistryError(
                ErrorCode.UNSUPPORTED,
                f"{method} is not supported here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        return _target(entry, found.groupdict(), query or {}, method)
    raise RegistryError(ErrorCode.NAME_UNKNOWN, f"no registry endpoint at /v2/{path[:200]}", status=404)


def _reference(raw: str, method: str) -> Tag | Digest:
    """A tag that cannot exist is unknown to a read (404 MANIFEST_UNKNOWN, as distribution answers;
    OCI defines no TAG_INVALID); only a PUT that would create it is told it is invalid (400)."""
    try:
        return parse_reference(raw)
    except RegistryError as exc:
        if method in ("GET", "HEAD") and exc.code is ErrorCode.TAG_INVALID:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, f"no manifest tagged {raw[:200]!r}: not a valid tag") from None
        raise


def _target(entry: RouteEntry, groups: dict[str, str], query: Mapping[str, str], method: str) -> Target:
    repository = RepositoryName.parse(groups["name"]) if "name" in groups else None
    reference = _reference(groups["reference"], method) if "reference" in groups else None
    digest = Digest.parse(groups["digest"]) if "digest" in groups else None
    upload_id = groups.get("upload")
    if upload_id is not None and not _UPLOAD_ID_RE.fullmatch(upload_id):
        raise RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, "malformed upload id")
    mount_from = mount_digest = None
    if entry.kind is Kind.UPLOADS and query.get("mount") and query.get("from"):
        # An unparseable mount source is not an error: the spec lets the registry fall back to
        # an ordinary upload session, which is what clients then use.
        try:
            mount_digest = Digest.parse(query["mount"])
            mount_from = RepositoryName.parse(query["from"])
        except RegistryError:
            mount_from = mount_digest = None
    return Target(entry, repository, reference, digest, upload_id, mount_from, mount_digest)
