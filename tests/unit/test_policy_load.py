"""Loading policy files: every mistake is reported as file:line: message, and nothing half-loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.policy.load import PolicyLoadError, load_policy, parse_policies
from authgate.policy.model import RepositoryGlob

GOOD_RULE = "  - name: ok\n    subjects: [\"user:*\"]\n    repositories: [\"a/**\"]\n    allow: [pull]\n"

BAD = [
    ("unknown top key", "rulez: []\n", 1, "unknown key 'rulez': did you mean 'rules'?"),
    ("unknown rule key", "rules:\n  - name: x\n    subject: [\"user:*\"]\n", 3, "unknown key 'subject' in rule #1"),
    ("unknown action", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n    allow: [pull, pusj]\n",
     5, "unknown action 'pusj'"),
    ("bad glob: partial **", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories:\n      - a/b**\n"
     "    allow: [pull]\n", 5, "** must be a whole path segment"),
    ("bad glob: uppercase", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [Team/**]\n    allow: [pull]\n",
     4, "can never match: repository names are lowercase"),
    ("bad glob: character", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [\"a/b?\"]\n    allow: [pull]\n",
     4, "unsupported character(s) '?'"),
    ("bad glob: slashes", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [\"a//b\"]\n    allow: [pull]\n",
     4, "no leading, trailing or doubled '/'"),
    ("unknown placeholder", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [\"${org}/**\"]\n"
     "    allow: [pull]\n", 4, "unknown placeholder ${org}"),
    ("placeholder never bound", "rules:\n  - name: x\n    subjects: [anonymous, \"robot:*\"]\n"
     "    repositories: [\"${user}/**\"]\n    allow: [pull]\n", 4, "can never match: none of the subjects"),
    ("user and robot together", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [\"${user}/${robot}\"]\n"
     "    allow: [pull]\n", 4, "a subject is a user or a robot, not both"),
    ("empty subjects", "rules:\n  - name: x\n    subjects: []\n    repositories: [a]\n    allow: [pull]\n",
     3, "subjects is an empty list: the rule can never match"),
    ("empty from", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n    allow: [pull]\n    from: []\n",
     6, "from is an empty list: the rule can never match"),
    ("bad cidr", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n    allow: [pull]\n"
     "    from: [10.0.0.0/33]\n", 6, "address range '10.0.0.0/33'"),
    ("unknown subject", "rules:\n  - name: x\n    subjects: [\"group:a\"]\n    repositories: [a]\n    allow: [pull]\n",
     3, "unknown subject 'group:a'"),
    ("subject wildcard inside a name", "rules:\n  - name: x\n    subjects: [\"user:a*\"]\n    repositories: [a]\n"
     "    allow: [pull]\n", 3, "no other wildcards"),
    ("no repositories", "rules:\n  - name: x\n    subjects: [\"*\"]\n    allow: [pull]\n", 2, "no repositories"),
    ("no subjects", "rules:\n  - name: x\n    repositories: [a]\n    allow: [pull]\n", 2, "no subjects"),
    ("does nothing", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n", 2,
     "neither allows nor denies"),
    ("allow and deny the same", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n"
     "    allow: [pull]\n    deny: [\"*\"]\n", 6, "pull both allowed and denied"),
    ("immutable with subjects", "rules:\n  - name: x\n    subjects: [\"*\"]\n    repositories: [a]\n"
     "    immutable_tags: [v*]\n", 3, "applies to everyone"),
    ("immutable with placeholder", "rules:\n  - name: x\n    repositories: [\"${user}/a\"]\n"
     "    immutable_tags: [v*]\n", 3, "placeholders cannot be used with immutable_tags"),
    ("bad tag pattern", "rules:\n  - name: x\n    repositories: [a]\n    immutable_tags: [\"v/1\"]\n", 4,
     "tag pattern 'v/1'"),
    ("scalar instead of list", "rules:\n  - name: x\n    subjects: \"*\"\n    repositories: [a]\n    allow: [pull]\n",
     3, "subjects must be a list"),
    ("rules not a list", "rules: {a: 1}\n", 1, "rules must be a list"),
    ("duplicate key", "rules:\n  - name: x\n    subjects: [\"*\"]\n    subjects: [\"*\"]\n", 4, "duplicate key 'subjects'"),
    ("duplicate rule name", "rules:\n" + GOOD_RULE + GOOD_RULE, 6, "duplicate rule name 'ok' (first at bad.yaml:2)"),
    ("invalid yaml", "rules:\n  - name: [x\n", 3, "not valid YAML"),
    ("team member", "teams:\n  a: [\"team:b\"]\n", 2, "members are user names"),
]


@pytest.mark.parametrize(("text", "line", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_problems_name_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        parse_policies([("bad.yaml", text)])
    rendered = [str(issue) for issue in caught.value.issues]
    assert any(r.startswith(f"bad.yaml:{line}: ") and message in r for r in rendered), rendered


def test_all_problems_are_reported_in_line_order() -> None:
    text = "rules:\n  - name: a\n    subjects: [\"x\"]\n    repositories: [a]\n    allow: [pul]\n"
    with pytest.raises(PolicyLoadError) as caught:
        parse_policies([("f.yaml", text)])
    assert [(i.line, i.message.split(" ")[1]) for i in caught.value.issues] == [(3, "subject"), (5, "action")]


def test_rules_remember_where_they_were_written(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n" + GOOD_RULE)
    (tmp_path / "b.yml").write_text("# comment\n\nrules:\n" + GOOD_RULE.replace("ok", "second"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.yaml").write_text("cases: []\n")  # not a policy file
    (tmp_path / "notes.txt").write_text("ignored")
    policy = load_policy(tmp_path)
    assert [(r.name, Path(r.origin.file).name, r.origin.line) for r in policy.rules] == [
        ("ok", "a.yaml", 2), ("second", "b.yml", 4)]


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n" + GOOD_RULE)
    (tmp_path / "b.yaml").write_text("rules:\n" + GOOD_RULE)
    with pytest.raises(PolicyLoadError, match=r"b\.yaml:2: duplicate rule name 'ok' \(first at .*a\.yaml:2\)"):
        load_policy(tmp_path)


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="no policy files"):
        load_policy(tmp_path)


def test_empty_file_is_an_empty_policy(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("# nothing yet\n")
    assert load_policy(tmp_path).rules == ()


def test_shipped_example_is_valid() -> None:
    policy = load_policy(Path(__file__).resolve().parents[2] / "policies")
    assert {r.name for r in policy.rules} >= {"admins", "own-namespace", "team-namespace", "public-read",
                                               "ci-releases", "no-deletes-in-prod", "release-tags-are-immutable"}


GLOBS = [
    ("**", "a", True), ("**", "a/b/c", True),
    ("a/**", "a/b", True), ("a/**", "a", False), ("a/**", "ab/c", False),
    ("**/cache", "cache", True), ("**/cache", "x/y/cache", True), ("**/cache", "xcache", False),
    ("a/**/b", "a/b", True), ("a/**/b", "a/x/y/b", True), ("a/**/b", "a/xb", False),
    ("a/*", "a/b", True), ("a/*", "a/b/c", False), ("a/*", "a/", False),
    ("a/*-x", "a/b-x", True), ("a/*-x", "a/-x", True), ("a/b.c", "a/bxc", False),
]


@pytest.mark.parametrize(("glob", "repository", "matches"), GLOBS)
def test_glob_semantics(glob: str, repository: str, matches: bool) -> None:
    assert bool(RepositoryGlob.parse(glob).regex.fullmatch(repository)) is matches
