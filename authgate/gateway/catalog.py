"""`GET /v2/_catalog` in gateway mode: the upstream's catalog, filtered by the caller's pull permission.

The upstream's catalog is unfiltered (docs/client-compat.md §6), so authgate walks it in large pages
and keeps only repositories the live policy lets the caller pull, then paginates the result with
`n`/`last` and a `Link` header as the spec describes. A continuation cursor is always a name the
caller may see: names of hidden repositories never leave authgate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.client import Upstream
from authgate.gateway.responses import relay
from authgate.scope import Scope

log = logging.getLogger(__name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
#: Entries asked of the upstream per request (distribution's default `catalog.maxentries`).
_UPSTREAM_PAGE = 1000
#: Bounds one catalog request's walk over the upstream (100 000 repositories).
_MAX_UPSTREAM_PAGES = 100
_CATALOG_SCOPE = [Scope("registry", "catalog", frozenset({"*"}))]


def page_size(request: Request) -> int:
    raw = request.query_params.get("n")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    # ASCII only (isdigit also takes "²"); a longer number is "as many as you give", never int()'s
    # 5000 digits (a ValueError, so a 500).
    digits = raw.lstrip("0")
    if not raw.isascii() or not raw.isdigit() or not digits:
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID, "n must be a positive number")
    return min(int(digits), MAX_PAGE) if len(digits) <= 9 else MAX_PAGE


async def filtered_catalog(upstream: Upstream, request: Request, visible: Callable[[list[str]], list[str]]
                           ) -> Response:
    """One page of the repositories `visible` keeps (in order), after `?last=`, at most `?n=`."""
    n = page_size(request)
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
        names = _repositories(await upstream.read_json(response), upstream.base)
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
        query = urlencode({"last": page[-1], "n": n})
        headers["Link"] = f'</v2/_catalog?{query}>; rel="next"'
    return JSONResponse({"repositories": page}, headers=headers)


def _repositories(document: Any, base: str) -> list[str]:
    names = document.get("repositories") if isinstance(document, dict) else None
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        log.warning("upstream %s answered a malformed catalog", base)
        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry answered garbage; try again later")
    return sorted(names)
