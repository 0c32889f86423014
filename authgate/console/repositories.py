"""The repositories the signed-in subject may pull, and one repository's tags.

Every view asks the policy engine first: a repository the subject cannot pull is answered exactly
like one that does not exist (404, same page), so the console never confirms a name. In gateway
mode the same pages read the upstream registry; when it fails, the page says so (503).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request
from starlette.responses import Response

from authgate.audit.context import client_address
from authgate.console import registry_view
from authgate.console.repository_list import content_of
from authgate.console.web import ConsoleError, bad_input, can_pull, not_found, page, render, require_user
from authgate.errors import RegistryError
from authgate.policy import filter_pullable
from authgate.registry.content import RegistryContent
from authgate.resources import Resources
from authgate.subject import Subject

PAGE_SIZE = 50
MAX_SEARCH = 200
#: Separates a repository name from the tag in a console URL; `-` alone is no valid name component.
TAG_SEPARATOR = "/-/tags/"


def _store(resources: Resources) -> RegistryContent:
    store = content_of(resources)
    if store is None:
        raise ConsoleError(501, "Not available in token-server mode",
                           "The registry serves its content itself; authgate only issues its tokens. "
                           "Accounts, robots and the audit log are here as usual.")
    return store


@contextmanager
def _reading() -> Iterator[None]:
    """An upstream that is down or answers garbage (gateway mode) is a page saying so, not a 500."""
    try:
        yield
    except RegistryError as exc:
        raise ConsoleError(503, "The registry is unavailable", exc.message) from None


def _page_number(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise bad_input(f"page must be a whole number from 1, not {raw[:40]!r}.")
    return int(raw)


async def visible_page(resources: Resources, subject: Subject, address: str | None, query: str,
                       number: int) -> tuple[list[str], int, int]:
    """(names on page `number`, total matching, last page number): search, then policy, then slice."""
    with _reading():
        names = await registry_view.repositories(_store(resources))
    if query:
        names = [n for n in names if query in n]
    visible = filter_pullable(resources.policy, subject, names, address)
    last = max(1, -(-len(visible) // PAGE_SIZE))
    start = (min(number, last) - 1) * PAGE_SIZE
    return visible[start:start + PAGE_SIZE], len(visible), last


@page
async def repository_list(resources: Resources, request: Request) -> Response:
    who = await require_user(resources, request)
    query = request.query_params.get("q", "").strip().lower()
    if len(query) > MAX_SEARCH:
        raise bad_input(f"The search is longer than {MAX_SEARCH} characters; repository names are shorter.")
    number = _page_number(request.query_params.get("page"))
    names, total, last = await visible_page(resources, who.subject, client_address(request, resources.settings), query,
                                            number)
    context = {"names": names, "total": total, "page": min(number, last), "last": last, "q": query,
               "title": "Repositories"}
    template = "repositories_rows.html" if request.headers.get("hx-request") else "repositories.html"
    return render(request, template, context, who=who)


_HOST_RE = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


def pull_host(resources: Resources, request: Request) -> str:
    """The registry address for `docker pull`/`login` lines: `public_url` when set, else the address
    this browser reached authgate at (what docker on the same machine would use too)."""
    settings = resources.settings
    host = request.headers.get("host", "")
    if settings.public_url or not _HOST_RE.fullmatch(host):
        return settings.url.split("://", 1)[-1]
    return host


@page
async def repository_page(resources: Resources, request: Request) -> Response:
    who = await require_user(resources, request)
    rest = request.path_params["rest"]
    raw_name, _, raw_tag = rest.partition(TAG_SEPARATOR)
    name = registry_view.parse_name(raw_name.rstrip("/"))
    if name is None or not can_pull(resources, request, who.subject, str(name)):
        raise not_found("repository")
    store = _store(resources)
    host = pull_host(resources, request)
    if not raw_tag:
        with _reading():
            tags = await registry_view.tags(resources, store, name)
        if tags is None:
            raise not_found("repository")
        return render(request, "repository.html", {"title": str(name), "name": str(name), "tags": tags,
                                                   "host": host}, who=who)
    with _reading():
        tag = await registry_view.tag(resources, store, name, raw_tag)
        if tag is None:
            raise not_found("repository" if await store.tags(name) is None else "tag")
        referrers = await registry_view.referrers(store, name, tag.digest)
    return render(request, "tag.html", {"title": f"{name}:{tag.name}", "name": str(name), "tag": tag,
                                        "host": host, "referrers": referrers}, who=who)
