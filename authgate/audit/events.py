"""Audit events: what happened, by whom, to what. Action names follow `subject:action[:outcome]`,
e.g. `manifest:push`, `blob:push`, `auth:login:failure`, `token:issue`, `policy:reload`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from authgate.db.base import utcnow
from authgate.subject import ANONYMOUS, Subject


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str
    actor: Subject = ANONYMOUS
    repository: str | None = None
    reference: str | None = None
    digest: str | None = None
    size: int | None = None
    outcome: str = "success"
    reason: str | None = None
    address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: dict[str, Any] | None = None
    time: datetime = field(default_factory=utcnow)
    #: An id the source gave the event (a registry notification's event id): recorded once only.
    source_id: str | None = None
    #: For actors outside authgate's accounts, instead of `actor.kind`: `cli` (the operator running
    #: an `authgate` command, named by OS user), `server` (authgate itself, named by host: a policy reload).
    actor_type: str | None = None


def flat_text(details: dict[str, Any]) -> bool:
    """Whether `details` is a flat mapping of `str` to `str` (a token's grant type, client and scopes):
    its JSON round trip is a plain copy, and its JSON size is at most six characters per character
    (`\\uXXXX`) plus quotes and separators, so neither needs a `json.dumps` on the request path."""
    return all(type(k) is str and type(v) is str for k, v in details.items())


def flat_json_bound(details: dict[str, str]) -> int:
    """An upper bound of the JSON size of a `flat_text` mapping."""
    return 2 + sum(6 * (len(k) + len(v)) + 6 for k, v in details.items())


class AuditSink(Protocol):
    async def record(self, event: AuditEvent) -> None:
        """Persist one event; never raises into the caller's request."""
        ...
