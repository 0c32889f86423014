"""Audit search for admins: who, repository, action, outcome, digest and time; the chain status;
export as JSON lines or CSV (the same formats as `authgate audit export`).

The filters extend `AuditFilter` (the CLI's and the admin API's) with outcome and digest, so
listing and export go through the same paged queries.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from authgate.audit.export import COLUMNS
from authgate.audit.query import AuditFilter, iter_events, list_events, parse_time
from authgate.audit.verify import verify
from authgate.console.web import SECURITY_HEADERS, bad_input, page, render, require_admin
from authgate.db.models import AuditEvent as AuditRow
from authgate.errors import RegistryError
from authgate.reference import Digest
from authgate.resources import Resources

PAGE_SIZE = 50
_TEXT_FILTERS = ("actor", "repository", "action", "digest", "outcome", "since", "until")
_OUTCOMES = ("", "success", "failure")
_MAX_FILTER = 255


@dataclass(frozen=True)
class ConsoleAuditFilter(AuditFilter):
    outcome: str | None = None
    digest: str | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        query = super().apply(query)
        if self.outcome:
            query = query.where(AuditRow.outcome == self.outcome)
        if self.digest:
            query = query.where(AuditRow.digest == self.digest)
        return query


def _filters(request: Request) -> tuple[ConsoleAuditFilter, dict[str, str]]:
    values = {name: request.query_params.get(name, "").strip() for name in _TEXT_FILTERS}
    too_long = [name for name, value in values.items() if len(value) > _MAX_FILTER]
    if too_long:
        raise bad_input(f"The {too_long[0]} filter is longer than {_MAX_FILTER} characters.")
    if values["outcome"] not in _OUTCOMES:
        raise bad_input("outcome must be success or failure.")
    if values["digest"]:
        try:
            Digest.parse(values["digest"])
        except RegistryError:
            raise bad_input("The digest looks like sha256: followed by 64 hex digits.") from None
    times: dict[str, Any] = {}
    for name in ("since", "until"):
        if values[name]:
            try:
                times[name] = parse_time(values[name])
            except ValueError as exc:
                raise bad_input(f"{name}: {exc}") from None
    flt = ConsoleAuditFilter(repository=values["repository"] or None, actor=values["actor"] or None,
                             action=values["action"] or None, outcome=values["outcome"] or None,
                             digest=values["digest"] or None, **times)
    return flt, values


def _before(request: Request) -> int | None:
    raw = request.query_params.get("before", "")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_input("before must be an event number.")
    return int(raw)


@page
async def audit_page(resources: Resources, request: Request) -> Response:
    who = await require_admin(resources, request)
    flt, values = _filters(request)
    events = await list_events(resources.db, flt, PAGE_SIZE, _before(request))
    more = events[-1]["seq"] if len(events) == PAGE_SIZE else None
    query = {k: v for k, v in values.items() if v}
    return render(request, "audit.html", {"title": "Audit log", "events": events, "values": values,
                                          "query": query, "more": more, "outcomes": _OUTCOMES}, who=who)


@page
async def chain_status(resources: Resources, request: Request) -> Response:
    """The chain check walks the whole log, so it runs when asked (a button), not on every search."""
    who = await require_admin(resources, request)
    result = await verify(resources.db)
    template = "chain_status.html" if request.headers.get("hx-request") else "chain_page.html"
    return render(request, template, {"title": "Audit chain", "result": result}, who=who)


async def _lines(events: AsyncIterator[dict[str, Any]], fmt: str) -> AsyncIterator[str]:
    if fmt == "jsonl":
        async for event in events:
            yield json.dumps(event, default=str, ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    async for event in events:
        writer.writerow(["" if event.get(c) is None else
                         (json.dumps(event[c], sort_keys=True) if c == "details" else event[c]) for c in COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


@page
async def audit_export(resources: Resources, request: Request) -> Response:
    await require_admin(resources, request)
    fmt = request.query_params.get("format", "jsonl")
    if fmt not in ("jsonl", "csv"):
        raise bad_input("format must be jsonl or csv.")
    flt, _ = _filters(request)
    media = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
    headers = {"Content-Disposition": f'attachment; filename="authgate-audit.{fmt}"', **SECURITY_HEADERS}
    return StreamingResponse(_lines(iter_events(resources.db, flt), fmt), media_type=media,
                             headers=headers)
