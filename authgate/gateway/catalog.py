"""Listings in gateway mode: `/v2/_catalog` filtered by the caller's pull permission, and tag lists.

A stock registry's catalog is unfiltered (it serves `registry:catalog:*` to whoever holds it), so
authgate walks it in large pages and keeps only repositories the live policy lets the caller pull,
then paginates the result with `n`/`last` and a `Link` header exactly as the embedded store does
(`authgate.registry.numbers.page_size`). A continuation cursor is always a name the caller may
see: names of hidden repositories never leave authgate.

Tag lists are read whole from the upstream (following its pages, if it pages) and paged here, so
`n`, `last` and `Link` behave as in embedded mode whatever the upstream does (distribution 2.8
ignores `n` on tag lists).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.client import Upstream
from authgate.gateway.responses import relay
from authgate.registry.listing import paginate
from authgate.registry.numbers import page_size
from authgate.scope import Scope

log = logging.getLogger(__name__)

#: Entries asked of the upstream per request (distribution's default `catalog.maxentries`).
_UPSTREAM_PAGE = 1000
#: Bounds one catalog request's walk over the upstream (100 000 repositories).
_MAX_UPSTREAM_PAGES = 100
_CATALOG_SCOPE = [Scope("registry", "catalog", frozenset({"*"}))]


async def filtered_catalog(upstream: Upstream, request: Request, visible: Callable[[list[str]], list[str]]
                           ) -> Response:
    """One page of the repositories `visible` keeps (in order), after `?last=`, at most `?n=`."""
    n = page_size(request.query_params)
    if n == 0:
        return JSONResponse({"repositories": []})
    cursor = request.query_params.get("last", "")
    found: list[str] = []
    exhausted = False
    for _ in range(_MAX_UPSTREAM_PAGES):
        params = {"n": str(_UPSTREAM_PAGE)}
        if cursor:
            params["last"] = cursor
        response = await upstream.send("GET", "/v2/_catalog", scopes=_CATALOG_SCOPE, params=params)
        if response.status_code != 200:
            return await relay(upstream, response)
        names = _names(await upstream.read_json(response), "repositories", upstream.base)
        found.extend(visible([name for name in names if name > cursor]))
        if len(names) < _UPSTREAM_PAGE or "link" not in response.headers or len(found) > n:
            exhausted = len(found) <= n
            break
        cursor = names[-1]
    else:
        log.warning("catalog walk stopped after %s upstream pages of %s", _MAX_UPSTREAM_PAGES, upstream.base)
        exhausted = len(found) <= n
    page = found[:n]
    headers = {}
    if not exhausted and page:
        query = urlencode({"n": n, "last": page[-1]})
        headers["Link"] = f'</v2/_catalog?{query}>; rel="next"'
    return JSONResponse({"repositories": page}, headers=headers)


def _names(document: Any, key: str, base: str) -> list[str]:
    """The sorted list of strings under `key` (`repositories`, `tags`); a null list is empty."""
    names = document.get(key) if isinstance(document, dict) else None
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        log.warning("upstream %s answered a malformed %s list", base, key)
        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry answered garbage; try again later")
    return sorted(names)


async def _tag_walk(upstream: Upstream, repository: str, scopes: Sequence[Scope]) -> list[str] | httpx.Response:
    """Every tag of `repository`, sorted, following the upstream's pages; or its first non-200 answer."""
    path = f"/v2/{repository}/tags/list"
    tags: set[str] = set()
    params = {"n": str(_UPSTREAM_PAGE)}
    for _ in range(_MAX_UPSTREAM_PAGES):
        response = await upstream.send("GET", path, scopes=scopes, params=params)
        if response.status_code != 200:
            return response
        more = "link" in response.headers
        names = _names(await upstream.read_json(response), "tags", upstream.base)
        tags.update(names)
        if not more or not names:
            break
        params = {"n": str(_UPSTREAM_PAGE), "last": max(names)}
    else:
        log.warning("tag list walk stopped after %s upstream pages of %s", _MAX_UPSTREAM_PAGES, upstream.base)
    return sorted(tags)


async def tag_list(upstream: Upstream, request: Request, repository: str, scopes: Sequence[Scope]) -> Response:
    """`GET /v2/<name>/tags/list`: the upstream's tags, paged as the embedded store pages them."""
    tags = await _tag_walk(upstream, repository, scopes)
    if isinstance(tags, httpx.Response):
        return await relay(upstream, tags)
    page, headers = paginate(tags, request.query_params, f"/v2/{repository}/tags/list")
    return JSONResponse({"name": repository, "tags": page}, headers=headers)


async def walk_tags(upstream: Upstream, repository: str, scopes: Sequence[Scope]) -> list[str] | None:
    """Every tag of `repository` (the console's repository page); None if the upstream does not know it."""
    tags = await _tag_walk(upstream, repository, scopes)
    if not isinstance(tags, httpx.Response):
        return tags
    await tags.aclose()
    if tags.status_code == 404:
        return None
    log.warning("upstream %s answered %s to a tag list of %s", upstream.base, tags.status_code, repository)
    raise RegistryError(ErrorCode.UNAVAILABLE, f"the upstream registry answered {tags.status_code}; try again later")


async def walk_catalog(upstream: Upstream) -> list[str]:
    """Every repository of the upstream, sorted, unfiltered (the console filters per user)."""
    found: list[str] = []
    cursor = ""
    for _ in range(_MAX_UPSTREAM_PAGES):
        params = {"n": str(_UPSTREAM_PAGE), **({"last": cursor} if cursor else {})}
        response = await upstream.send("GET", "/v2/_catalog", scopes=_CATALOG_SCOPE, params=params)
        if response.status_code != 200:
            await response.aclose()
            log.warning("upstream %s answered %s to its catalog", upstream.base, response.status_code)
            raise RegistryError(ErrorCode.UNAVAILABLE,
                                f"the upstream registry answered {response.status_code}; try again later")
        more = "link" in response.headers
        names = [name for name in _names(await upstream.read_json(response), "repositories", upstream.base)
                 if name > cursor]
        found.extend(names)
        if not more or not names:
            break
        cursor = names[-1]
    else:
        log.warning("catalog walk stopped after %s upstream pages of %s", _MAX_UPSTREAM_PAGES, upstream.base)
    return sorted(set(found))
