"""Who is asking: the one identity type auth/, policy/, registry/ and audit/ all speak, and the
`Identity` of one request (who, and what their token grants) that auth/ proves and registry/ asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SubjectKind = Literal["anonymous", "user", "robot"]


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    name: str = ""
    teams: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False
    #: The identity source that vouched for this subject (`local`, or an LDAP source's name); for
    #: the audit log and `authgate identity test`. Never consulted for permissions.
    source: str = field(default="local", compare=False)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"

    @property
    def token_subject(self) -> str:
        """The JWT `sub`: "" for anonymous (jwt.md), `robot:NAME` for robots, else the user name."""
        if self.kind == "anonymous":
            return ""
        return f"robot:{self.name}" if self.kind == "robot" else self.name

    def __str__(self) -> str:
        return "anonymous" if self.kind == "anonymous" else f"{self.kind}:{self.name}"


ANONYMOUS = Subject("anonymous")


@dataclass(frozen=True, slots=True)
class Identity:
    subject: Subject
    #: What the bearer token grants, per (type, name). None when the request carried Basic
    #: credentials (accepted on /v2/ like the `registry` image): then the live policy alone decides.
    token_access: dict[tuple[str, str], frozenset[str]] | None = None

    def token_grants(self, resource_type: str, name: str) -> frozenset[str] | None:
        """Actions the token grants on the resource; None means "no token limit" (Basic)."""
        if self.token_access is None:
            return None
        return self.token_access.get((resource_type, name), frozenset())
