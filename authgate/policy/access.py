"""Who gets what: the one place access is decided, for `/token` (what to grant) and `/v2/` (whether
to allow). Both limits apply everywhere, never more than their intersection:

- `/token` grants requested ∩ policy (docker_auth `authz/acl.go`; docs/client-compat.md §6).
  Fewer than asked is not an error: the entry stays in the token with the actions that survived,
  possibly none.
- `/v2/` allows token ∩ policy: what the bearer token grants (a Basic request has no token limit)
  AND what the live policy allows now, so a permission revoked after the token was issued stops
  working at once.
- The catalog is the exception in both: `registry:catalog:*` is what a stock registry's
  `/v2/_catalog` checks, and that catalog is not filtered, so `/token` grants it to admins only;
  authgate's own `/v2/_catalog` filters per caller by the policy, so any identity may ask it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from authgate.policy import Authorizer
from authgate.scope import Scope, satisfies
from authgate.subject import Identity, Subject

CATALOG = ("registry", "catalog")


def intersect(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    """`*` asked means "everything allowed"; `*` allowed covers whatever was asked."""
    if "*" in allowed:
        return requested
    if "*" in requested:
        return allowed
    return requested & allowed


def _allowed(policy: Authorizer, subject: Subject, scope: Scope, address: str | None) -> frozenset[str]:
    if scope.type == "repository":
        return policy.allowed_actions(subject, scope.name, address)
    if scope.key == CATALOG and subject.admin:
        return frozenset({"*"})
    return frozenset()


def grant(policy: Authorizer, subject: Subject, requested: Iterable[Scope], address: str | None) -> list[Scope]:
    """What `/token` puts in the token: each requested scope with the actions the policy allows."""
    return [s.with_actions(intersect(s.actions, _allowed(policy, subject, s, address))) for s in requested]


def missing_scopes(policy: Authorizer, identity: Identity, needed: Sequence[Scope], address: str | None,
                   anonymous_without_token: bool = False) -> list[Scope]:
    """The scopes a `/v2/` request needs that the token and the live policy do not both cover
    (empty: allowed). The catalog needs only a caller: anyone but an anonymous one without a token."""
    missing: list[Scope] = []
    for scope in needed:
        if scope.key == CATALOG:
            if anonymous_without_token:
                missing.append(scope)
            continue
        granted = identity.token_grants(scope.type, scope.name)
        if granted is not None and not all(satisfies(granted, a) for a in scope.actions):
            missing.append(scope)
            continue
        if scope.type == "repository":
            allowed = policy.allowed_actions(identity.subject, scope.name, address)
            if not all(satisfies(allowed, a) for a in scope.actions):
                missing.append(scope)
    return missing


def refusal_message(policy: Authorizer, identity: Identity, missing: Sequence[Scope], address: str | None) -> str:
    """Which actions were missing and who withheld them: docker shows this line (it used to show only
    "authentication required" after a token server quietly granted less than asked)."""
    parts = []
    for scope in missing:
        if scope.type != "repository":
            parts.append(f"{scope.format()} was not granted")
            continue
        allowed = policy.allowed_actions(identity.subject, scope.name, address)
        token = identity.token_grants(scope.type, scope.name)
        lacking = sorted(a for a in scope.actions if not satisfies(allowed, a))
        if lacking:
            parts.append(f"{identity.subject} may not {' or '.join(lacking)} {scope.name} (the policy allows: "
                         f"{', '.join(sorted(allowed)) or 'nothing'})")
        elif token is not None:
            stale = sorted(a for a in scope.actions if not satisfies(token, a))
            parts.append(f"the token was issued without {' or '.join(stale)} on {scope.name}; docker asks for a "
                         "new one by itself")
    return "; ".join(parts) or "requested access to the resource is denied"
