"""Listings: `/v2/_catalog` filtered by permission, `tags/list`, and the referrers API.

Pagination follows the spec ("Listing Tags"): `n` results after `last`, and a `Link` header with
`rel="next"` when more remain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.errors import ErrorCode, RegistryError
from authgate.policy import filter_pullable
from authgate.registry.context import Stores
from authgate.registry.content import StoreContent, referrers_response
from authgate.registry.numbers import page_size
from authgate.registry.routes import Target
from authgate.subject import Identity


def paginate(items: Sequence[str], query: Mapping[str, str], path: str) -> tuple[list[str], dict[str, str]]:
    """The page after `last` of at most `n` sorted `items`, and the `Link` header to the next page
    if any (gateway mode pages what its upstream listed the same way)."""
    limit = page_size(query)
    last = query.get("last")
    remaining = [item for item in items if last is None or item > last]
    page = remaining[:limit]
    headers = {}
    if page and len(remaining) > limit:
        headers["Link"] = f'<{path}?{urlencode({"n": limit, "last": page[-1]})}>; rel="next"'
    return page, headers


async def catalog(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    address = stores.audit.address(request)
    visible = filter_pullable(stores.policy, identity.subject, await stores.manifests.repositories(), address)
    page, headers = paginate(visible, request.query_params, "/v2/_catalog")
    return JSONResponse({"repositories": page}, headers=headers)


async def tags_list(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository
    tags = await stores.manifests.tags(target.repository)
    if tags is None:
        raise RegistryError(ErrorCode.NAME_UNKNOWN, f"repository {target.repository} is not known to the registry",
                            detail={"name": str(target.repository)})
    page, headers = paginate(tags, request.query_params, f"/v2/{target.repository}/tags/list")
    return JSONResponse({"name": str(target.repository), "tags": page}, headers=headers)


async def referrers(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    """An image index of the manifests whose `subject` is the digest; unknown digests give an empty one."""
    assert target.repository and target.digest
    descriptors = await StoreContent(stores.manifests).referrers(target.repository, target.digest)
    return referrers_response(descriptors, request.query_params.get("artifactType"))
