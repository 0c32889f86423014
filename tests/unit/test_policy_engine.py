"""Policy semantics as tables of cases: who may do what, and why."""

from __future__ import annotations

import pytest

from authgate.policy import filter_pullable, immutable_tag_rule
from authgate.policy.engine import PolicyEngine
from authgate.policy.load import parse_policies
from authgate.policy.store import PolicyStore
from authgate.subject import ANONYMOUS, Subject

EXAMPLE = """\
teams:
  release-bots: ["robot:ci"]
  backend: [carol, "user:dave"]
rules:
  - name: admins
    subjects: ["team:admins"]
    repositories: ["**"]
    allow: ["*"]
  - name: own-namespace
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: [pull, push, delete]
  - name: team-namespace
    subjects: ["team:*"]
    repositories: ["${team}/**"]
    allow: [pull, push]
  - name: public-read
    subjects: ["anonymous", "user:*", "robot:*"]
    repositories: ["public/**"]
    allow: [pull]
  - name: ci-releases
    subjects: ["robot:ci"]
    repositories: ["releases/**"]
    allow: [pull, push]
    from: ["127.0.0.0/8", "10.1.0.0/16"]
  - name: no-deletes-in-prod
    subjects: ["*"]
    repositories: ["prod/**"]
    deny: [delete]
  - name: one-level
    subjects: ["user:erin"]
    repositories: ["tools/*"]
    allow: [pull]
  - name: middle
    subjects: ["user:erin"]
    repositories: ["deep/**/cache"]
    allow: [push]
  - name: prefix
    subjects: ["user:erin"]
    repositories: ["team-${team}/*-images"]
    allow: [pull]
  - name: frontend-only
    subjects: ["team:frontend"]
    repositories: ["web-${team}/**"]
    allow: [pull]
  - name: erin-no-push-to-deep-x
    subjects: ["user:erin"]
    repositories: ["deep/x/**"]
    deny: [push]
  - name: release-tags-are-immutable
    repositories: ["releases/**", "prod/**"]
    immutable_tags: ["v*", "stable"]
"""

ENGINE = PolicyEngine(parse_policies([("example.yaml", EXAMPLE)]))


def user(name: str, *teams: str) -> Subject:
    return Subject("user", name, frozenset(teams))


def robot(name: str, *teams: str) -> Subject:
    return Subject("robot", name, frozenset(teams))


ALL = {"pull", "push", "delete"}

CASES = [
    # placeholders: ${user}
    ("own namespace", user("alice"), "alice/app", None, ALL),
    ("own namespace, nested", user("alice"), "alice/a/b/c", None, ALL),
    ("the namespace itself is not a repository under it", user("alice"), "alice", None, set()),
    ("someone else's namespace", user("bob"), "alice/app", None, set()),
    ("name prefix is not the namespace", user("ali"), "alice/app", None, set()),
    # placeholders: ${team} (database teams on the subject, file teams by declaration)
    ("team namespace", user("alice", "backend"), "backend/api", None, {"pull", "push"}),
    ("other team's namespace", user("bob", "frontend"), "backend/api", None, set()),
    ("file-declared team member", user("carol"), "backend/api", None, {"pull", "push"}),
    ("file-declared team, user: form", user("dave"), "backend/api", None, {"pull", "push"}),
    ("db and file teams are a union", user("carol", "frontend"), "frontend/web", None, {"pull", "push"}),
    ("${team} inside a segment", user("erin", "blue"), "team-blue/x-images", None, {"pull"}),
    ("${team} inside a segment, other team", user("erin", "blue"), "team-red/x-images", None, set()),
    ("${team} bound to the team matched through", user("zed", "frontend", "ops"), "web-frontend/app", None, {"pull"}),
    ("${team} not bound to other teams", user("zed", "frontend", "ops"), "web-ops/app", None, set()),
    # anonymous and robots
    ("anonymous pulls public", ANONYMOUS, "public/busybox", None, {"pull"}),
    ("anonymous nothing else", ANONYMOUS, "alice/app", None, set()),
    ("anonymous is not *", ANONYMOUS, "prod/x", None, set()),
    ("robot pulls public", robot("builder"), "public/a/b", None, {"pull"}),
    ("robot has no own namespace", robot("builder"), "builder/app", None, set()),
    ("robot in a file team", robot("ci"), "release-bots/x", "127.0.0.1", {"pull", "push"}),
    # address ranges
    ("ci from loopback", robot("ci"), "releases/app", "127.0.0.1", {"pull", "push"}),
    ("ci from second range", robot("ci"), "releases/app", "10.1.200.3", {"pull", "push"}),
    ("ci from elsewhere", robot("ci"), "releases/app", "10.2.0.1", set()),
    ("ci with unknown address", robot("ci"), "releases/app", None, set()),
    ("ci with garbage address", robot("ci"), "releases/app", "not-an-ip", set()),
    ("another robot from loopback", robot("other"), "releases/app", "127.0.0.1", set()),
    # globs
    ("* stays in one segment", user("erin"), "tools/jq", None, {"pull"}),
    ("* does not cross /", user("erin"), "tools/a/jq", None, set()),
    ("** in the middle matches zero segments", user("erin"), "deep/cache", None, {"push"}),
    ("** in the middle matches several", user("erin"), "deep/a/b/cache", None, {"push"}),
    ("** in the middle, wrong tail", user("erin"), "deep/a/b/cachex", None, set()),
    ("** alone matches everything", user("root", "admins"), "a", None, ALL),
    # deny wins
    ("deny overrides admin allow", user("root", "admins"), "prod/payments", None, {"pull", "push"}),
    ("deny overrides own allow", user("erin"), "deep/x/cache", None, set()),
    ("deny for everyone logged in", user("prod", "prod"), "prod/x", None, {"pull", "push"}),
]


@pytest.mark.parametrize(("subject", "repository", "address", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_allowed_actions(subject: Subject, repository: str, address: str | None, expected: set[str]) -> None:
    assert ENGINE.allowed_actions(subject, repository, address) == expected
    # The catalog fast path agrees with the decision, one repository at a time.
    assert (ENGINE.filter_pullable(subject, [repository], address) == [repository]) == ("pull" in expected)


IMMUTABLE = [
    ("releases/app", "v1", "release-tags-are-immutable"),
    ("releases/app", "v1.2.3", "release-tags-are-immutable"),
    ("prod/x/y", "stable", "release-tags-are-immutable"),
    ("releases/app", "latest", None),
    ("releases/app", "stable-2", None),
    ("backend/api", "v1", None),
    ("releases", "v1", None),
]


@pytest.mark.parametrize(("repository", "tag", "rule"), IMMUTABLE)
def test_immutable_tags(repository: str, tag: str, rule: str | None) -> None:
    found = ENGINE.immutable_tag_rule(repository, tag)
    assert (found.name if found else None) == rule


def test_explain_names_the_deny_that_overrode_an_allow() -> None:
    explanation = ENGINE.explain(user("root", "admins"), "prod/payments")
    decisions = {d.action: d for d in explanation.decisions}
    assert decisions["pull"].allowed and [r.name for r in decisions["pull"].allowed_by] == ["admins"]
    delete = decisions["delete"]
    assert not delete.allowed
    assert [r.name for r in delete.denied_by] == ["no-deletes-in-prod"]
    assert [r.name for r in delete.allowed_by] == ["admins"]
    assert delete.reason == ("denied by no-deletes-in-prod (example.yaml:26), "
                             "overriding the allow of admins (example.yaml:5)")
    data = explanation.as_dict()
    assert data["actions"]["delete"]["denied_by"] == [{"name": "no-deletes-in-prod", "file": "example.yaml", "line": 26}]
    assert data["teams"] == ["admins"]


def test_explain_when_nothing_matches() -> None:
    explanation = ENGINE.explain(user("bob"), "alice/app", ["push"])
    assert [d.action for d in explanation.decisions] == ["push"]
    assert explanation.decisions[0].reason == "denied: no rule allows it"
    assert explanation.matched == ()


def test_explain_lists_file_teams() -> None:
    assert ENGINE.explain(user("carol", "x"), "backend/api").teams == {"backend", "x"}


def test_catalog_filter_keeps_order_and_drops_what_cannot_be_pulled() -> None:
    repos = ["public/a", "alice/x", "backend/api", "prod/x", "public/b/c", "bob/y"]
    assert ENGINE.filter_pullable(user("alice", "backend"), repos) == ["public/a", "alice/x", "backend/api",
                                                                         "public/b/c"]
    assert ENGINE.filter_pullable(ANONYMOUS, repos) == ["public/a", "public/b/c"]


def test_pull_deny_hides_from_catalog() -> None:
    engine = PolicyEngine(parse_policies([("p.yaml", """\
rules:
  - {name: all, subjects: ["*"], repositories: ["**"], allow: [pull]}
  - {name: secret, subjects: ["user:*"], repositories: ["secret/**"], deny: [pull]}
""")]))
    assert engine.filter_pullable(user("a"), ["x/y", "secret/z"]) == ["x/y"]
    assert engine.allowed_actions(user("a"), "secret/z") == set()


def test_builtin_default_is_own_namespace() -> None:
    policy = PolicyStore(None)
    assert policy.allowed_actions(user("alice"), "alice/app") == ALL
    assert policy.allowed_actions(user("alice"), "bob/app") == set()
    assert policy.allowed_actions(robot("alice"), "alice/app") == set()
    assert policy.allowed_actions(ANONYMOUS, "alice/app") == set()
    assert filter_pullable(policy, user("alice"), ["bob/x", "alice/x"]) == ["alice/x"]
    assert immutable_tag_rule(policy, "alice/x", "v1") is None


def test_immutable_tag_rule_names_the_rule() -> None:
    # The name only: clients see it, and the file:line would show them the server's paths.
    assert immutable_tag_rule(ENGINE, "releases/app", "v1") == "release-tags-are-immutable"
