"""The route table: which path and method parse into what, and which scopes each needs."""

from __future__ import annotations

import pytest

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.registry.routes import ROUTES, Backend, Kind, RouteEntry, match

D = "sha256:" + "a" * 64


class _Names:
    """Stands in for a backend: each method it is asked for is answered by its name."""

    def __getattr__(self, name: str) -> str:
        return name


def operation_name(route: RouteEntry) -> str:
    name: str = route.operation(_Names())  # type: ignore[arg-type,assignment]
    return name


@pytest.mark.parametrize(
    ("method", "path", "handler", "scopes"),
    [
        ("GET", "", "base", []),
        ("GET", "_catalog", "catalog", ["registry:catalog:*"]),
        ("GET", "a/b/c/tags/list", "tags_list", ["repository:a/b/c:pull"]),
        ("GET", "alice/app/manifests/latest", "manifest_get", ["repository:alice/app:pull"]),
        ("HEAD", f"alice/app/manifests/{D}", "manifest_get", ["repository:alice/app:pull"]),
        ("PUT", "alice/app/manifests/v1", "manifest_put", ["repository:alice/app:pull,push"]),
        ("DELETE", "alice/app/manifests/v1", "manifest_delete", ["repository:alice/app:delete"]),
        ("GET", f"alice/app/blobs/{D}", "blob_get", ["repository:alice/app:pull"]),
        ("DELETE", f"alice/app/blobs/{D}", "blob_delete", ["repository:alice/app:delete"]),
        ("POST", "alice/app/blobs/uploads/", "upload_start", ["repository:alice/app:pull,push"]),
        ("POST", "alice/app/blobs/uploads", "upload_start", ["repository:alice/app:pull,push"]),
        ("PATCH", "alice/app/blobs/uploads/abc-1", "upload_patch", ["repository:alice/app:pull,push"]),
        ("PUT", "alice/app/blobs/uploads/abc-1", "upload_put", ["repository:alice/app:pull,push"]),
        ("GET", "alice/app/blobs/uploads/abc-1", "upload_status", ["repository:alice/app:pull"]),
        ("DELETE", "alice/app/blobs/uploads/abc-1", "upload_cancel", ["repository:alice/app:delete"]),
        ("GET", f"alice/app/referrers/{D}", "referrers", ["repository:alice/app:pull"]),
        # names that contain the route words still parse: the fixed suffix anchors
        ("GET", "x/manifests/y/manifests/latest", "manifest_get", ["repository:x/manifests/y:pull"]),
        ("GET", f"x/blobs/y/blobs/{D}", "blob_get", ["repository:x/blobs/y:pull"]),
    ],
)
def test_table(method: str, path: str, handler: str, scopes: list[str]) -> None:
    target = match(method, path)
    assert operation_name(target.route) == handler
    assert [s.format() for s in target.needed_scopes()] == scopes


def test_values_are_parsed() -> None:
    target = match("GET", f"team/app/manifests/{D}")
    assert target.repository == RepositoryName("team/app")
    assert target.reference == Digest("sha256", "a" * 64)
    assert match("GET", "team/app/manifests/v1").reference == Tag("v1")


def test_mount_needs_pull_on_source() -> None:
    target = match("POST", "team-a/app/blobs/uploads/", {"mount": D, "from": "team-b/base"})
    assert [s.format() for s in target.needed_scopes()] == [
        "repository:team-a/app:pull,push", "repository:team-b/base:pull"]


@pytest.mark.parametrize("query", [{"mount": D}, {"from": "team-b/base"}, {"mount": "bad", "from": "team-b/base"},
                                   {"mount": D, "from": "Bad Name"}])
def test_incomplete_mount_falls_back_to_upload(query: dict[str, str]) -> None:
    target = match("POST", "team-a/app/blobs/uploads/", query)
    assert target.mount_from is None
    assert len(target.needed_scopes()) == 1


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "Alice/app/manifests/latest", ErrorCode.NAME_INVALID),
        ("GET", "a//b/tags/list", ErrorCode.NAME_INVALID),
        # A tag that cannot exist is unknown on read (as distribution answers), invalid on write.
        ("GET", "alice/app/manifests/-bad", ErrorCode.MANIFEST_UNKNOWN),
        ("HEAD", "alice/app/manifests/" + "t" * 129, ErrorCode.MANIFEST_UNKNOWN),
        ("PUT", "alice/app/manifests/-bad", ErrorCode.TAG_INVALID),
        ("GET", "alice/app/manifests/sha256:abc", ErrorCode.DIGEST_INVALID),
        ("GET", "alice/app/blobs/md5:" + "a" * 32, ErrorCode.DIGEST_INVALID),
        ("GET", "alice/app/blobs/latest", ErrorCode.DIGEST_INVALID),
        ("POST", "alice/app/manifests/latest", ErrorCode.UNSUPPORTED),
        ("PATCH", f"alice/app/blobs/{D}", ErrorCode.UNSUPPORTED),
        ("GET", "alice/app/nothing", ErrorCode.NAME_UNKNOWN),
        ("PATCH", "alice/app/blobs/uploads/bad%id", ErrorCode.BLOB_UPLOAD_UNKNOWN),
    ],
)
def test_bad_paths(method: str, path: str, code: ErrorCode) -> None:
    with pytest.raises(RegistryError) as info:
        match(method, path)
    assert info.value.code is code
    assert 400 <= info.value.status < 500


def test_every_handler_needs_something_but_base() -> None:
    for route in ROUTES:
        assert bool(route.needs) == (route.kind is not Kind.BASE), route


def test_every_backend_operation_has_a_route() -> None:
    """The reverse of what mypy proves: no `Backend` method is left without a path that reaches it."""
    operations = {name for name in vars(Backend) if not name.startswith("_")}
    assert {operation_name(route) for route in ROUTES} == operations
