"""Who may do what: the `Authorizer` protocol every caller asks, and its implementations."""

from __future__ import annotations

from typing import Protocol

from authgate.subject import Subject


class Authorizer(Protocol):
    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        """The actions (`pull`, `push`, `delete`) `subject` may perform on `repository`; empty means none."""
        ...


class OwnNamespacePolicy:
    """The built-in default when no policy files are configured: deny by default; a user may
    pull, push and delete `USER/**`; anonymous and robots get nothing."""

    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        if subject.kind == "user" and repository.startswith(subject.name + "/"):
            return frozenset({"pull", "push", "delete"})
        return frozenset()
