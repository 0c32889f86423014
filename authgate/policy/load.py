"""Read policy YAML into a `Policy`, reporting every problem as `file:line: message`.

Files are composed into YAML nodes (not plain dicts) so every rule and every error keeps the line
it came from: `authgate policy check` and the hot-reload log point at the exact line to fix.
All problems of all files are collected, not just the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from authgate.policy.model import (
    ACTIONS,
    ALL_ACTIONS,
    Network,
    Origin,
    PatternError,
    Policy,
    RepositoryGlob,
    Rule,
    SubjectPattern,
    TagGlob,
    TeamDeclaration,
    parse_network,
)
from authgate.policy.workloads import WorkloadRule, parse_workloads

_BASE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[valid-type,misc]
    """libyaml's parser when built in (10x faster on a 10,000-rule file; marks carry lines either way).
    Every scalar is read as a string, so implicit type resolution (`yes`, `1.0`, dates) is skipped."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return str(yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG)
        if kind is SequenceNode:
            return str(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG)
        return str(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG)


_LOADER = _Loader
RULE_KEYS = ("name", "description", "subjects", "repositories", "allow", "deny", "from", "immutable_tags")
TOP_KEYS = ("rules", "teams", "workloads")
#: Which subject kinds can carry each placeholder (team members may be users or robots).
_PLACEHOLDER_KINDS = {
    "user": {"user", "team", "*"},
    "robot": {"robot", "team", "*"},
    "team": {"user", "robot", "team", "*"},
}

#: The behaviour when no policy files are configured: each user owns the namespace named after them.
BUILTIN_POLICY = """\
rules:
  - name: own-namespace
    description: built-in default (no policy files configured)
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: [pull, push, delete]
"""
BUILTIN_NAME = "<built-in>"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PolicyLoadError(Exception):
    """The policy cannot be used; `issues` lists every problem found, in file order."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(map(str, issues)))


def policy_files(path: Path) -> list[Path]:
    """A file, or the `*.yaml`/`*.yml` files directly in a directory (its `tests/` are not policy)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def load_policy(path: Path) -> Policy:
    """Every rule and team in `path`; raises `PolicyLoadError` naming each problem."""
    return parse_policies(read_policy_texts(path))


def read_policy_texts(path: Path, names: Callable[[Path], str] = str) -> list[tuple[str, str]]:
    """`(name, text)` of each policy file in `path`, named by `names` (the path as given by default;
    `authgate policy push` stores base names, the same on every machine)."""
    files = policy_files(path)
    if not files:
        raise PolicyLoadError([PolicyIssue(str(path), 0, "no policy files (*.yaml or *.yml) here")])
    texts: list[tuple[str, str]] = []
    issues: list[PolicyIssue] = []
    for file in files:
        try:
            texts.append((names(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            issues.append(PolicyIssue(str(file), 0, f"cannot read: {exc}"))
    if issues:
        raise PolicyLoadError(issues)
    return texts


def builtin_policy() -> Policy:
    return parse_policies([(BUILTIN_NAME, BUILTIN_POLICY)])


def parse_policies(texts: list[tuple[str, str]]) -> Policy:
    """Parse `(filename, text)` pairs as one policy; rule names must be unique across files."""
    rules: list[Rule] = []
    teams: list[TeamDeclaration] = []
    workloads: list[WorkloadRule] = []
    issues: list[PolicyIssue] = []
    for filename, text in texts:
        parser = _FileParser(filename)
        parser.parse(text)
        rules.extend(parser.rules)
        teams.extend(parser.teams)
        workloads.extend(parser.workloads)
        issues.extend(sorted(parser.issues, key=lambda i: i.line))
    seen: dict[str, Rule] = {}
    for rule in rules:
        first = seen.setdefault(rule.name, rule)
        if first is not rule:
            issues.append(PolicyIssue(rule.origin.file, rule.origin.line,
                                      f"duplicate rule name {rule.name!r} (first at {first.origin}): names must be unique"))
    if issues:
        raise PolicyLoadError(issues)
    return Policy(tuple(rules), tuple(teams), tuple(name for name, _ in texts), tuple(workloads))


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _suggest(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known keys: {', '.join(known)}"


class _FileParser:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.rules: list[Rule] = []
        self.teams: list[TeamDeclaration] = []
        self.workloads: list[WorkloadRule] = []
        self.issues: list[PolicyIssue] = []

    def error(self, node: Node | int, message: str) -> None:
        line = node if isinstance(node, int) else _line(node)
        self.issues.append(PolicyIssue(self.filename, line, message))

    def parse(self, text: str) -> None:
        try:
            root = yaml.compose(text, Loader=_LOADER)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self.error(int(mark.line) + 1 if mark else 1, f"not valid YAML: {exc.problem or exc}")
            return
        except yaml.YAMLError as exc:
            self.error(1, f"not valid YAML: {exc}")
            return
        if root is None:
            return
        top = self.mapping(root, "a policy file")
        if top is None:
            return
        for key, (key_node, _) in top.items():
            if key not in TOP_KEYS:
                self.error(key_node, f"unknown key {key!r}: {_suggest(key, TOP_KEYS)}")
        if "teams" in top:
            self.parse_teams(top["teams"][1])
        if "workloads" in top:
            self.workloads.extend(parse_workloads(self, top["workloads"][1]))
        if "rules" in top:
            rules_node = top["rules"][1]
            if not isinstance(rules_node, SequenceNode):
                self.error(rules_node, "rules must be a list of rules (each starting with '- name: …')")
            else:
                for index, item in enumerate(rules_node.value, start=1):
                    self.parse_rule(item, index)

    def mapping(self, node: Node, what: str) -> dict[str, tuple[Node, Node]] | None:
        if not isinstance(node, MappingNode):
            self.error(node, f"{what} must be a mapping of key: value")
            return None
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(key_node, "keys must be plain strings")
                continue
            key = str(key_node.value)
            if key in out:
                self.error(key_node, f"duplicate key {key!r} (first on line {_line(out[key][0])})")
                continue
            out[key] = (key_node, value_node)
        return out

    def strings(self, node: Node, what: str) -> Iterator[tuple[str, Node]]:
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what} must be a list, e.g. {what}: [...]")
            return
        for item in node.value:
            if isinstance(item, ScalarNode) and item.value != "":
                yield str(item.value), item
            else:
                self.error(item, f"each entry of {what} must be a non-empty string")

    def parse_teams(self, node: Node) -> None:
        teams = self.mapping(node, "teams")
        for name, (key_node, members_node) in (teams or {}).items():
            try:
                SubjectPattern.parse(f"team:{name}")
            except PatternError as exc:
                self.error(key_node, str(exc))
                continue
            if name == "*":
                self.error(key_node, "a team cannot be named *")
                continue
            members: set[tuple[str, str]] = set()
            for raw, item in self.strings(members_node, f"team {name}"):
                member = raw if ":" in raw else f"user:{raw}"
                try:
                    pattern = SubjectPattern.parse(member)
                except PatternError as exc:
                    self.error(item, str(exc))
                    continue
                if pattern.kind not in ("user", "robot") or pattern.name == "*":
                    self.error(item, f"team member {raw!r}: members are user names, user:NAME or robot:NAME")
                    continue
                members.add((pattern.kind, pattern.name))
            self.teams.append(TeamDeclaration(name, frozenset(members), Origin(self.filename, _line(key_node))))

    def parse_rule(self, node: Node, index: int) -> None:
        fields = self.mapping(node, f"rule #{index}")
        if fields is None:
            return
        before = len(self.issues)
        for key, (key_node, _) in fields.items():
            if key not in RULE_KEYS:
                self.error(key_node, f"unknown key {key!r} in rule #{index}: {_suggest(key, RULE_KEYS)}")
        name = f"rule-{index}"
        if "name" in fields:
            name_node = fields["name"][1]
            if isinstance(name_node, ScalarNode) and name_node.value:
                name = str(name_node.value)
            else:
                self.error(name_node, "name must be a non-empty string")
        description = ""
        if "description" in fields and isinstance(fields["description"][1], ScalarNode):
            description = str(fields["description"][1].value)

        subjects = tuple(s for s, _ in self.collect(fields, "subjects", SubjectPattern.parse))
        repositories = self.collect(fields, "repositories", RepositoryGlob.parse)
        tags = tuple(t for t, _ in self.collect(fields, "immutable_tags", TagGlob.parse))
        networks: tuple[Network, ...] | None = None
        if "from" in fields:
            networks = tuple(n for n, _ in self.collect(fields, "from", parse_network))
        allow = self.actions(fields, "allow")
        deny = self.actions(fields, "deny")

        if all(key in RULE_KEYS for key in fields):  # after a typo in a key, "missing key" messages are noise
            self.check_rule(node, fields, subjects, repositories, allow, deny)
        if len(self.issues) == before:
            self.rules.append(Rule(name, Origin(self.filename, _line(node)), subjects,
                                   tuple(g for g, _ in repositories), allow, deny, networks, tags, description))

    def collect(self, fields: dict[str, tuple[Node, Node]], key: str, parse: Callable[[str], T]
                ) -> list[tuple[T, Node]]:
        out: list[tuple[T, Node]] = []
        if key not in fields:
            return out
        for raw, item in self.strings(fields[key][1], key):
            try:
                out.append((parse(raw), item))
            except PatternError as exc:
                self.error(item, str(exc))
        return out

    def actions(self, fields: dict[str, tuple[Node, Node]], key: str) -> frozenset[str]:
        out: set[str] = set()
        if key not in fields:
            return frozenset()
        for raw, item in self.strings(fields[key][1], key):
            if raw == "*":
                out.update(ALL_ACTIONS)
            elif raw in ACTIONS:
                out.add(raw)
            else:
                self.error(item, f"unknown action {raw!r} in {key}: use pull, push, delete or *")
        return frozenset(out)

    def check_rule(self, node: Node, fields: dict[str, tuple[Node, Node]], subjects: tuple[SubjectPattern, ...],
                   repositories: list[tuple[RepositoryGlob, Node]], allow: frozenset[str], deny: frozenset[str]
                   ) -> None:
        """The mistakes that make a rule silently useless: say so instead of ignoring them."""
        never = "the rule can never match"
        for key in ("subjects", "repositories", "from", "immutable_tags", "allow", "deny"):
            value = fields.get(key)
            if value is not None and isinstance(value[1], SequenceNode) and not value[1].value:
                self.error(value[0], f"{key} is an empty list: {never if key != 'allow' else 'remove it'}")
        if "repositories" not in fields:
            self.error(node, "the rule has no repositories: add e.g. repositories: [\"team/**\"]")
        if "immutable_tags" in fields:
            extra = [k for k in ("subjects", "allow", "deny", "from") if k in fields]
            if extra:
                self.error(fields[extra[0]][0], f"a rule with immutable_tags applies to everyone and cannot have "
                           f"{', '.join(extra)}: put those in a separate rule")
            for glob, item in repositories:
                if glob.placeholders:
                    self.error(item, f"repository pattern {glob.source!r}: placeholders "
                               "cannot be used with immutable_tags (no subject to stand for)")
            return
        if not allow and not deny and "allow" not in fields and "deny" not in fields:
            self.error(node, "the rule neither allows nor denies anything: add allow: or deny: (or immutable_tags:)")
        if "subjects" not in fields:
            self.error(node, "the rule has no subjects: add e.g. subjects: [\"team:backend\"]")
        both = allow & deny
        if both:
            self.error(fields["deny"][0], f"{', '.join(sorted(both))} both allowed and denied in the same rule: "
                       "deny wins, so the allow is useless")
        kinds = {p.kind for p in subjects}
        for glob, item in repositories:
            if {"user", "robot"} <= glob.placeholders:
                self.error(item, f"repository pattern {glob.source!r} can never match: a "
                           "subject is a user or a robot, not both")
                continue
            for placeholder in sorted(glob.placeholders):
                if kinds and not kinds & _PLACEHOLDER_KINDS[placeholder]:
                    self.error(item, f"repository pattern {glob.source!r} can never match: "
                               f"none of the subjects ({', '.join(sorted(map(str, subjects)))}) has a "
                               f"${{{placeholder}}}")
