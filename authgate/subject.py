"""Who is asking: the one identity type auth/, policy/, registry/ and audit/ all speak."""

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
