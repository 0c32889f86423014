"""Grant the intersection of what was asked and what the policy allows, never more
(docker_auth `authz/acl.go`; docs/client-compat.md §6). Fewer than asked is not an error: the entry
stays in the token with the actions that survived, possibly none."""

from __future__ import annotations

from collections.abc import Iterable

from authgate.policy import Authorizer
from authgate.scope import Scope
from authgate.subject import Subject

#: `registry:catalog:*` is what a stock registry's `/v2/_catalog` checks, and that catalog is not
#: filtered: in token-server mode the grant would show every repository. So only admins get it;
#: authgate's own `/v2/_catalog` filters per caller and needs no catalog grant in the token.
CATALOG = ("registry", "catalog")


def _allowed(policy: Authorizer, subject: Subject, scope: Scope, address: str | None) -> frozenset[str]:
    if scope.type == "repository":
        return policy.allowed_actions(subject, scope.name, address)
    if scope.key == CATALOG and subject.admin:
        return frozenset({"*"})
    return frozenset()


def intersect(requested: frozenset[str], allowed: frozenset[str]) -> frozenset[str]:
    """`*` asked means "everything allowed"; `*` allowed covers whatever was asked."""
    if "*" in allowed:
        return requested
    if "*" in requested:
        return allowed
    return requested & allowed


def grant(policy: Authorizer, subject: Subject, requested: Iterable[Scope], address: str | None) -> list[Scope]:
    return [s.with_actions(intersect(s.actions, _allowed(policy, subject, s, address))) for s in requested]
