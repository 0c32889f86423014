import pytest

from authgate.scope import Scope, ScopeError, parse_scope, parse_scopes, satisfies


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("repository:alice/app:pull", Scope("repository", "alice/app", frozenset({"pull"}))),
        ("repository:alice/app:pull,push", Scope("repository", "alice/app", frozenset({"pull", "push"}))),
        ("repository(plugin):alice/app:pull", Scope("repository", "alice/app", frozenset({"pull"}))),
        ("registry:catalog:*", Scope("registry", "catalog", frozenset({"*"}))),
        ("repository:localhost:5000/foo:pull", Scope("repository", "localhost:5000/foo", frozenset({"pull"}))),
        ("repository:alice/app:", Scope("repository", "alice/app", frozenset())),
    ],
)
def test_parse(raw: str, expected: Scope) -> None:
    assert parse_scope(raw) == expected


@pytest.mark.parametrize("raw", ["", "repository", "repository:alice", "repository::pull", "Repo:x:pull",
                                 "repository:UPPER:pull", "repository:a:pu ll", "repository:a:" + "x" * 2000])
def test_malformed(raw: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(raw)


def test_repeated_and_space_joined_scopes_merge() -> None:
    scopes = parse_scopes(["repository:a/b:pull repository:c/d:push", "repository:a/b:push"])
    assert {s.key: s.actions for s in scopes} == {
        ("repository", "a/b"): frozenset({"pull", "push"}),
        ("repository", "c/d"): frozenset({"push"}),
    }


def test_star_satisfies_everything() -> None:
    assert satisfies({"*"}, "delete")
    assert satisfies({"pull"}, "pull")
    assert not satisfies({"push"}, "pull")
