"""What every embedded handler shares: the stores, the policy, the audit call, and the spec's response headers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authgate.audit.context import client_address, request_context
from authgate.audit.events import AuditEvent, AuditSink
from authgate.reference import Digest, RepositoryName
from authgate.registry import numbers
from authgate.registry.routes import Target
from authgate.policy import Authorizer
from authgate.settings import Settings
from authgate.storage.base import BlobStore, ManifestStore

log = logging.getLogger(__name__)
from authgate.subject import Identity



@dataclass(frozen=True, slots=True)
class Auditor:
    """Records the registry's audit events (both modes): the action, who, where from, and the
    repository of the request; an audit failure is logged, never allowed to fail the request."""

    sink: AuditSink
    settings: Settings

    async def __call__(self, request: Request, identity: Identity, target: Target, action: str,
                       **fields: Any) -> None:
        if action.endswith(":failure"):
            fields.setdefault("outcome", "failure")
        event = AuditEvent(
            action=action, actor=identity.subject,
            repository=str(target.repository) if target.repository else None,
            **request_context(request, self.settings), **fields,
        )
        await self.record(event)

    async def record(self, event: AuditEvent) -> None:
        try:
            await self.sink.record(event)
        except Exception:  # noqa: BLE001 - the push already happened; losing the request would be worse
            log.exception("audit record failed for %s", event.action)

    def address(self, request: Request) -> str | None:
        """The client's address as policies and the audit log see it (trusted proxies honoured)."""
        return client_address(request, self.settings)


@dataclass(frozen=True, slots=True)
class Stores:
    settings: Settings
    blobs: BlobStore
    manifests: ManifestStore
    #: The live policy: the catalog filter and immutable tags ask it.
    policy: Authorizer
    audit: Auditor


def blob_location(name: RepositoryName, digest: Digest) -> str:
    return f"/v2/{name}/blobs/{digest}"


def upload_headers(name: RepositoryName, upload_id: str, size: int) -> dict[str, str]:
    """Location, Range (`0-<last byte>`, "0-0" when empty, as distribution does) and the session id."""
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
    }


def empty(status: int, headers: dict[str, str]) -> Response:
    return Response(status_code=status, headers={**headers, "Content-Length": "0"})


def declared_length(request: Request) -> int | None:
    """The request's `Content-Length` (see `numbers.declared_length`)."""
    return numbers.declared_length(request.headers)
