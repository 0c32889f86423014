"""Who may do what: the `Authorizer` protocol every caller asks, and its implementations.

`PolicyStore` (store.py) is the live, hot-reloaded policy from `settings.policies`;
`OwnNamespacePolicy` is the built-in default when no policy files are configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from authgate.subject import Subject


class Authorizer(Protocol):
    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        """The actions (`pull`, `push`, `delete`) `subject` may perform on `repository`; empty means none."""
        ...


class OwnNamespacePolicy:
    """The built-in default when no policy files are configured: deny by default; a user may
    pull, push and delete `USER/**`; anonymous and robots get nothing.

    Expressed as the built-in policy document (`load.BUILTIN_POLICY`) so `authgate policy explain`
    can name the rule that decided.
    """

    def __init__(self) -> None:
        from authgate.policy.engine import PolicyEngine
        from authgate.policy.load import builtin_policy

        self.engine = PolicyEngine(builtin_policy())

    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        return self.engine.allowed_actions(subject, repository, address)

    def filter_pullable(self, subject: Subject, repositories: Iterable[str], address: str | None = None) -> list[str]:
        return self.engine.filter_pullable(subject, repositories, address)

    def immutable_tag_rule(self, repository: str, tag: str) -> object | None:
        return None


def filter_pullable(authorizer: Authorizer, subject: Subject, repositories: Iterable[str],
                    address: str | None = None) -> list[str]:
    """The repositories `subject` may pull (for `/v2/_catalog`), in input order; uses the engine's
    fast path when the authorizer has one."""
    fast = getattr(authorizer, "filter_pullable", None)
    if fast is not None:
        result: list[str] = fast(subject, repositories, address)
        return result
    return [r for r in repositories if "pull" in authorizer.allowed_actions(subject, r, address)]


def immutable_tag_rule(authorizer: Authorizer, repository: str, tag: str) -> str | None:
    """The name of the rule that forbids overwriting or deleting the existing `tag` in `repository`, or
    None when nothing does. Enforced on manifest PUT/DELETE when the tag already exists. The name
    only: clients see it, and the rule's file:line would show them the server's paths
    (`authgate policy explain … --tag` gives the file and line to the people who edit policies)."""
    check = getattr(authorizer, "immutable_tag_rule", None)
    rule = check(repository, tag) if check is not None else None
    if rule is None:
        return None
    return str(getattr(rule, "name", rule))
