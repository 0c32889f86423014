"""The token scope grammar (distribution `docs/content/spec/auth/scope.md`).

`resourcetype[(class)]:resourcename:action[,action]*`, several separated by spaces. The type is
parsed from the left and the actions from the right, because a name may hold `host:port`.
`class` is accepted and dropped: registries ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from authgate.reference import MAX_NAME_LENGTH, NAME_PATTERN

ACTIONS: frozenset[str] = frozenset({"pull", "push", "delete", "*"})
_TYPE_RE = re.compile(r"([a-z0-9]+)(?:\(([a-z0-9]+)\))?")
_ACTION_RE = re.compile(r"[a-z*]+")
# Scopes may name `host[:port]/path` (distribution's reference grammar); the registry path itself
# must follow the repository name grammar.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_SCOPE_NAME_RE = re.compile(rf"(?:{_DOMAIN}/)?{NAME_PATTERN}")
MAX_SCOPE_LENGTH = 1024


class ScopeError(ValueError):
    """A scope string that does not follow the grammar."""


@dataclass(frozen=True, slots=True)
class Scope:
    type: str
    name: str
    actions: frozenset[str]

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)

    def format(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def with_actions(self, actions: Iterable[str]) -> Scope:
        return Scope(self.type, self.name, frozenset(actions))

    def as_access(self) -> dict[str, object]:
        """The token's `access` entry (jwt.md); `class` is never emitted."""
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(raw: str) -> Scope:
    if len(raw) > MAX_SCOPE_LENGTH:
        raise ScopeError("scope is too long")
    type_part, sep, rest = raw.partition(":")
    name, sep2, actions_part = rest.rpartition(":")
    if not sep or not sep2 or not name:
        raise ScopeError(f"malformed scope {raw[:100]!r}: expected type:name:actions")
    type_match = _TYPE_RE.fullmatch(type_part)
    if not type_match:
        raise ScopeError(f"malformed scope type {type_part[:50]!r}")
    actions = frozenset(a for a in actions_part.split(",") if a)
    if not all(_ACTION_RE.fullmatch(a) for a in actions):
        raise ScopeError(f"malformed scope actions {actions_part[:50]!r}")
    resource_type = type_match.group(1)
    if resource_type == "repository":
        if len(name) > MAX_NAME_LENGTH or not _SCOPE_NAME_RE.fullmatch(name):
            raise ScopeError(f"invalid repository name in scope {name[:100]!r}")
    return Scope(resource_type, name, actions)


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """Repeated and space-joined scope parameters, merged per resource."""
    merged: dict[tuple[str, str], set[str]] = {}
    for value in values:
        for part in value.split(" "):
            if part:
                scope = parse_scope(part)
                merged.setdefault(scope.key, set()).update(scope.actions)
    return [Scope(t, n, frozenset(a)) for (t, n), a in merged.items()]


def format_scopes(scopes: Iterable[Scope]) -> str:
    return " ".join(s.format() for s in scopes)


def satisfies(granted: Iterable[str], needed: str) -> bool:
    """Whether the granted actions cover `needed`; `*` covers everything."""
    granted_set = set(granted)
    return "*" in granted_set or needed in granted_set
