"""Who may do what: the `Authorizer` protocol every caller asks, and the helpers around it.

`PolicyStore` (store.py) is the one implementation: the hot-reloaded policy from
`settings.policies`, or without policy files the built-in policy (`load.BUILTIN_POLICY`: deny by
default; a user may pull, push and delete `USER/**`; anonymous and robots get nothing), expressed
as a policy document so `authgate policy explain` can name the rule that decided.
`access.py` decides what a token grants and what a `/v2/` request may do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from authgate.policy.model import Rule
from authgate.subject import Subject


class Authorizer(Protocol):
    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        """The actions (`pull`, `push`, `delete`) `subject` may perform on `repository`; empty means none."""
        ...

    def filter_pullable(self, subject: Subject, repositories: Iterable[str], address: str | None = None) -> list[str]:
        """The repositories `subject` may pull (for `/v2/_catalog`), in input order."""
        ...

    def immutable_tag_rule(self, repository: str, tag: str) -> Rule | None:
        """The rule that forbids overwriting or deleting the existing `tag` in `repository`, if any."""
        ...


def filter_pullable(authorizer: Authorizer, subject: Subject, repositories: Iterable[str],
                    address: str | None = None) -> list[str]:
    """The repositories `subject` may pull (for `/v2/_catalog`), in input order."""
    return authorizer.filter_pullable(subject, repositories, address)


def immutable_tag_rule(authorizer: Authorizer, repository: str, tag: str) -> str | None:
    """The name of the rule that forbids overwriting or deleting the existing `tag` in `repository`, or
    None when nothing does. Enforced on manifest PUT/DELETE when the tag already exists. The name
    only: clients see it, and the rule's file:line would show them the server's paths
    (`authgate policy explain … --tag` gives the file and line to the people who edit policies)."""
    rule = authorizer.immutable_tag_rule(repository, tag)
    return rule.name if rule is not None else None
