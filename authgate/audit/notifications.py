"""`POST /notifications`: token-server mode, where the registry serves `/v2/` itself and tells
authgate what happened through distribution's notification envelope (docs/audit.md shows the
registry config that sends them).

The registry authenticates with a shared secret (`Authorization: Bearer <notification_secret>`,
compared in constant time). Each event becomes an audit event whose `source_id` is the
notification's id, so the registry's retries are recorded once. Pulls are kept per `audit_pulls`.
"""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime, timezone
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.audit.events import AuditEvent, AuditSink
from authgate.bodies import BodyTooLarge, read_bounded
from authgate.errors import ErrorCode, RegistryError
from authgate.settings import Settings
from authgate.subject import ANONYMOUS, Subject

log = logging.getLogger(__name__)

#: distribution 2.x sends v1, 3.x sends v2; the JSON shape is the same.
MEDIA_TYPES = (
    "application/vnd.docker.distribution.events.v2+json",
    "application/vnd.docker.distribution.events.v1+json",
    "application/json",
)
MAX_BODY = 4 * 1024 * 1024
_MANIFEST_HINTS = ("manifest", "image.index", "manifest.list")


def _authorized(request: Request, secret: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), secret.encode())


async def _read_body(request: Request) -> bytes:
    """At most MAX_BODY bytes, streamed: a notification envelope is small; anything larger is refused."""
    try:
        return await read_bounded(request.stream(), MAX_BODY)
    except BodyTooLarge:
        raise RegistryError(ErrorCode.TOO_LARGE, f"notification envelope larger than {MAX_BODY} bytes") from None


def _str(value: Any, default: str | None = None) -> str | None:
    return value if isinstance(value, str) and value else default


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.astimezone(timezone.utc) if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc)


def _actor(name: str | None) -> Subject:
    if not name:
        return ANONYMOUS
    if name.startswith("robot:"):
        return Subject("robot", name.removeprefix("robot:"))
    return Subject("user", name)


def _host(addr: str | None) -> str | None:
    """`1.2.3.4:5678` or `[::1]:5678` → the address alone."""
    if not addr:
        return None
    if addr.startswith("["):
        return addr[1:].partition("]")[0]
    host, sep, port = addr.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else addr


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _is_manifest(target: dict[str, Any]) -> bool:
    media_type = str(target.get("mediaType") or "")
    return bool(target.get("tag")) or any(hint in media_type for hint in _MANIFEST_HINTS)


def to_audit_event(raw: Any, settings: Settings) -> AuditEvent | None:
    """One notification event → one audit event, or None when it is not kept (pulls per settings)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("target"), dict):
        return None
    action = _str(raw.get("action"))
    target: dict[str, Any] = raw["target"]
    request, actor, source = (_section(raw, name) for name in ("request", "actor", "source"))
    manifest = _is_manifest(target)
    if action == "pull":
        if settings.audit_pulls == "off" or (settings.audit_pulls == "manifests" and not manifest):
            return None
    if action not in ("push", "pull", "delete", "mount"):
        return None
    kind = "manifest" if manifest else "blob"
    if action == "delete" and target.get("tag") and not target.get("digest"):
        kind = "tag"
    size = target.get("size", target.get("length"))
    event_id = _str(raw.get("id"))
    return AuditEvent(
        action=f"{kind}:{action}",
        actor=_actor(_str(actor.get("name"))),
        repository=_str(target.get("repository")),
        reference=_str(target.get("tag")) or _str(target.get("digest")),
        digest=_str(target.get("digest")),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        address=_host(_str(request.get("addr"))),
        user_agent=_str(request.get("useragent")),
        request_id=_str(request.get("id")),
        details={"source": "registry-notification", "media_type": _str(target.get("mediaType")),
                 "registry": _str(source.get("addr")), "event_id": event_id},
        time=_time(raw.get("timestamp")),
        source_id=f"notification:{event_id}" if event_id else None,
    )


async def receive_notifications(settings: Settings, audit: AuditSink, request: Request) -> Response:
    if not settings.notification_secret:
        raise RegistryError(ErrorCode.UNSUPPORTED, "notifications are off: set notification_secret to enable them",
                            status=404)
    if not _authorized(request, settings.notification_secret):
        raise RegistryError(ErrorCode.UNAUTHORIZED,
                            "send the shared secret as `Authorization: Bearer <notification_secret>`")
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type not in MEDIA_TYPES:
        raise RegistryError(ErrorCode.INVALID_REQUEST, f"expected {MEDIA_TYPES[0]}, got {content_type or 'nothing'}",
                            status=415)
    try:
        envelope = json.loads(await _read_body(request))
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: `[[[[…` nested too deep
        raise RegistryError(ErrorCode.INVALID_REQUEST, "the body is not JSON") from None
    events = envelope.get("events") if isinstance(envelope, dict) else None
    if not isinstance(events, list):
        raise RegistryError(ErrorCode.INVALID_REQUEST, 'expected {"events": [...]}')
    recorded = 0
    for raw in events:
        event = to_audit_event(raw, settings)
        if event is not None:
            await audit.record(event)
            recorded += 1
    return JSONResponse({"recorded": recorded, "ignored": len(events) - recorded})


def notification_routes(settings: Settings, audit: AuditSink) -> list[BaseRoute]:
    return [Route("/notifications", partial(receive_notifications, settings, audit), methods=["POST"])]
