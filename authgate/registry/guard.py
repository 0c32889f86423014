"""The one guard every `/v2/` request passes: who is asking, and may they do what the route needs.

Both limits apply (grant the intersection, never more): what the bearer token grants (a Basic
request has no token limit) AND what the live policy allows now, so a permission revoked after
the token was issued stops working at once. A refusal is a 401 whose challenge names the scopes
that would succeed (docs/client-compat.md §7).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.requests import Request

from authgate.audit import context as audit_context
from authgate.audit.events import AuditEvent
from authgate.auth import identity as identity_module
from authgate.auth.challenge import unauthorized
from authgate.registry.routes import Kind, Target
from authgate.resources import Resources
from authgate.scope import Scope, satisfies
from authgate.subject import Identity

log = logging.getLogger(__name__)


def _has_token(request: Request) -> bool:
    """A bearer token (an anonymous one included). Empty Basic credentials (`Basic Og==`) are no
    credentials: they must not turn the base route's 401 into a 200 that docker takes for a login."""
    return request.headers.get("authorization", "").strip().lower().startswith("bearer ")


async def _identify(request: Request) -> Identity:
    # Through the module, so API tests can fake auth at this seam; it raises the 401 for bad credentials.
    return await identity_module.identify(request)


def missing_scopes(resources: Resources, identity: Identity, needed: Sequence[Scope], address: str | None
                   ) -> list[Scope]:
    """The needed scopes not covered by both the token and the live policy (empty: allowed)."""
    missing: list[Scope] = []
    for scope in needed:
        granted = identity.token_grants(scope.type, scope.name)
        if granted is not None and not all(satisfies(granted, a) for a in scope.actions):
            missing.append(scope)
            continue
        if scope.type == "repository":
            allowed = resources.policy.allowed_actions(identity.subject, scope.name, address)
            if not all(satisfies(allowed, a) for a in scope.actions):
                missing.append(scope)
    return missing


def refusal_message(resources: Resources, identity: Identity, missing: Sequence[Scope], address: str | None) -> str:
    """Which actions were missing and who withheld them: docker shows this line (it used to show only
    "authentication required" after a token server quietly granted less than asked)."""
    parts = []
    for scope in missing:
        if scope.type != "repository":
            parts.append(f"{scope.format()} was not granted")
            continue
        policy = resources.policy.allowed_actions(identity.subject, scope.name, address)
        token = identity.token_grants(scope.type, scope.name)
        lacking = sorted(a for a in scope.actions if not satisfies(policy, a))
        if lacking:
            allowed = ", ".join(sorted(policy)) or "nothing"
            parts.append(f"{identity.subject} may not {' or '.join(lacking)} {scope.name} (the policy allows: "
                         f"{allowed})")
        elif token is not None:
            stale = sorted(a for a in scope.actions if not satisfies(token, a))
            parts.append(f"the token was issued without {' or '.join(stale)} on {scope.name}; docker asks for a "
                         "new one by itself")
    return "; ".join(parts) or "requested access to the resource is denied"


async def guard(request: Request, target: Target, resources: Resources) -> Identity:
    """Return the caller's identity if the route's needed actions are allowed, else raise the 401."""
    settings = resources.settings
    identity = await _identify(request)
    anonymous_without_token = identity.subject.is_anonymous and not _has_token(request)
    if target.route.kind is Kind.BASE:
        # Docker's login pings `/v2/` and needs 200 for any valid credential; no scope here (zot#1125).
        if anonymous_without_token:
            raise unauthorized(settings.realm, settings.service)
        return identity
    needed = target.needed_scopes()
    address = audit_context.client_address(request, settings)
    if target.route.kind is Kind.CATALOG:
        # The listing is filtered by the live policy, so any valid identity may ask; the token's
        # `registry:catalog:*` is kept for stock registries (admins only, see auth/grants.py).
        missing = needed if anonymous_without_token else []
    else:
        missing = missing_scopes(resources, identity, needed, address)
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
                       message=refusal_message(resources, identity, missing, address))


async def record_audit(resources: Resources, event: AuditEvent) -> None:
    """Record an audit event; an audit failure is logged, never allowed to fail the request."""
    try:
        await resources.audit.record(event)
    except Exception:  # noqa: BLE001 - the push already happened; losing the request would be worse
        log.exception("audit record failed for %s", event.action)
