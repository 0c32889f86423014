"""The one guard every `/v2/` request passes: who is asking, and may they do what the route needs.

`policy.access` decides (token ∩ live policy); a refusal is a 401 whose challenge names the
scopes that would succeed (docs/client-compat.md §7).
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from authgate.audit import context as audit_context
from authgate.audit.events import AuditEvent
from authgate.auth.challenge import unauthorized
from authgate.auth.identity import identify
from authgate.policy.access import missing_scopes, refusal_message
from authgate.registry.routes import Kind, Target
from authgate.resources import Resources
from authgate.subject import Identity

log = logging.getLogger(__name__)


def _has_token(request: Request) -> bool:
    """A bearer token (an anonymous one included). Empty Basic credentials (`Basic Og==`) are no
    credentials: they must not turn the base route's 401 into a 200 that docker takes for a login."""
    return request.headers.get("authorization", "").strip().lower().startswith("bearer ")


async def guard(request: Request, target: Target, resources: Resources) -> Identity:
    """Return the caller's identity if the route's needed actions are allowed, else raise the 401."""
    settings = resources.settings
    identity = await identify(request, resources)  # raises the 401 for bad credentials
    anonymous_without_token = identity.subject.is_anonymous and not _has_token(request)
    if target.route.kind is Kind.BASE:
        # Docker's login pings `/v2/` and needs 200 for any valid credential; no scope here (zot#1125).
        if anonymous_without_token:
            raise unauthorized(settings.realm, settings.service)
        return identity
    needed = target.needed_scopes()
    address = audit_context.client_address(request, settings)
    missing = missing_scopes(resources.policy, identity, needed, address, anonymous_without_token)
    if not missing:
        return identity
    if anonymous_without_token:
        raise unauthorized(settings.realm, settings.service, needed)
    if "push" in target.route.needs or "delete" in target.route.needs:
        await record_audit(resources, AuditEvent(
            action="access:denied", actor=identity.subject, outcome="failure",
            repository=str(target.repository) if target.repository else None,
            reason=f"{request.method} needs {' '.join(s.format() for s in missing)}",
            **audit_context.request_context(request, settings),
        ))
    raise unauthorized(settings.realm, settings.service, needed, error="insufficient_scope",
                       message=refusal_message(resources.policy, identity, missing, address))


async def record_audit(resources: Resources, event: AuditEvent) -> None:
    """Record an audit event; an audit failure is logged, never allowed to fail the request."""
    try:
        await resources.audit.record(event)
    except Exception:  # noqa: BLE001 - the push already happened; losing the request would be worse
        log.exception("audit record failed for %s", event.action)
