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


class AuditSink(Protocol):
    async def record(self, event: AuditEvent) -> None:
        """Persist one event; never raises into the caller's request."""
        ...
