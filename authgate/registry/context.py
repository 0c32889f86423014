"""What every embedded handler shares: the stores, the audit call, and the spec's response headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authgate.audit.context import request_context
from authgate.audit.events import AuditEvent
from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName
from authgate.registry import numbers
from authgate.registry.guard import record_audit
from authgate.registry.routes import Target
from authgate.resources import resources_of
from authgate.settings import Settings
from authgate.storage.base import BlobStore, ManifestStore
from authgate.subject import Identity



@dataclass(frozen=True, slots=True)
class Stores:
    settings: Settings
    blobs: BlobStore
    manifests: ManifestStore


async def audit(request: Request, identity: Identity, target: Target, action: str, **fields: Any) -> None:
    """Record `action` for this request; never fails the request (see `record_audit`)."""
    if action.endswith(":failure"):
        fields.setdefault("outcome", "failure")
    resources = resources_of(request)
    event = AuditEvent(
        action=action, actor=identity.subject,
        repository=str(target.repository) if target.repository else None,
        **request_context(request, resources.settings), **fields,
    )
    await record_audit(resources, event)


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
