"""policy.access: the one decision `/token` and `/v2/` share, on the built-in policy."""

from __future__ import annotations

from authgate.policy.access import grant, missing_scopes, refusal_message
from authgate.policy.store import PolicyStore
from authgate.scope import Scope
from authgate.subject import ANONYMOUS, Identity, Subject

POLICY = PolicyStore(None)  # a user may do anything in USER/**
ALICE = Subject("user", "alice")
ADMIN = Subject("user", "root", admin=True)
PUSH = frozenset({"pull", "push"})


def repo(name: str, actions: frozenset[str] = PUSH) -> Scope:
    return Scope("repository", name, actions)


CATALOG = Scope("registry", "catalog", frozenset({"*"}))


def test_token_grants_what_was_asked_and_the_policy_allows() -> None:
    granted = grant(POLICY, ALICE, [repo("alice/app"), repo("bob/app"), CATALOG], None)
    assert [s.format() for s in granted] == [
        "repository:alice/app:pull,push", "repository:bob/app:", "registry:catalog:"]
    assert [s.format() for s in grant(POLICY, ADMIN, [CATALOG], None)] == ["registry:catalog:*"]


def test_v2_needs_both_the_token_and_the_live_policy() -> None:
    token = Identity(ALICE, {("repository", "alice/app"): frozenset({"pull"})})
    assert missing_scopes(POLICY, token, [repo("alice/app", frozenset({"pull"}))], None) == []
    assert missing_scopes(POLICY, token, [repo("alice/app")], None) == [repo("alice/app")], "the token lacks push"
    basic = Identity(ALICE)  # Basic credentials: no token limit, the policy alone decides
    assert missing_scopes(POLICY, basic, [repo("alice/app")], None) == []
    assert missing_scopes(POLICY, basic, [repo("bob/app")], None) == [repo("bob/app")]
    assert "user:alice may not pull or push bob/app (the policy allows: nothing)" == refusal_message(POLICY, basic, [repo("bob/app")], None)


def test_the_catalog_needs_only_a_caller() -> None:
    """authgate's catalog is filtered per caller, so no catalog grant is needed in the token."""
    token = Identity(ALICE, {})
    assert missing_scopes(POLICY, token, [CATALOG], None) == []
    assert missing_scopes(POLICY, Identity(ANONYMOUS), [CATALOG], None, anonymous_without_token=True) == [CATALOG]
