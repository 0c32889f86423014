"""`authgate policy test`: cases in `policies/tests/*.yaml` run against a policy, like unit tests.

A case names a subject (with its teams), a repository, optionally a client address, and the actions
expected allowed and denied; or a tag and whether it is immutable there. Failures say which rule
decided, so the fix is obvious.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from authgate.policy.engine import PolicyEngine
from authgate.policy.load import _LOADER, PolicyIssue
from authgate.policy.model import ACTIONS, ALL_ACTIONS
from authgate.subject import Subject

CASE_KEYS = ("name", "subject", "teams", "repository", "from", "allowed", "denied", "tag", "immutable")


class SubjectSyntaxError(ValueError):
    pass


def parse_subject(raw: str, teams: frozenset[str] = frozenset()) -> Subject:
    """`anonymous`, `user:alice` (or just `alice`), `robot:ci`."""
    if raw == "anonymous":
        return Subject("anonymous")
    kind, sep, name = raw.partition(":")
    if not sep:
        kind, name = "user", raw
    if kind not in ("user", "robot") or not name:
        raise SubjectSyntaxError(f"subject {raw!r}: use anonymous, user:NAME or robot:NAME")
    return Subject("user" if kind == "user" else "robot", name, teams)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    file: str
    line: int
    subject: Subject
    repository: str
    address: str | None = None
    allowed: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()
    tag: str | None = None
    immutable: bool | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class CaseResult:
    case: Case
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_cases(directory: Path) -> tuple[list[Case], list[PolicyIssue]]:
    cases: list[Case] = []
    issues: list[PolicyIssue] = []
    for file in sorted(directory.glob("*.y*ml")):
        c, i = _parse_file(str(file), file.read_text(encoding="utf-8"))
        cases.extend(c)
        issues.extend(i)
    return cases, issues


def run_case(engine: PolicyEngine, case: Case) -> CaseResult:
    result = CaseResult(case)
    explanation = engine.explain(case.subject, case.repository, ACTIONS, case.address)
    for decision in explanation.decisions:
        if decision.action in case.allowed and not decision.allowed:
            result.failures.append(f"{decision.action}: expected allowed, got {decision.reason}")
        if decision.action in case.denied and decision.allowed:
            result.failures.append(f"{decision.action}: expected denied, got {decision.reason}")
    if case.tag is not None and case.immutable is not None:
        rule = engine.immutable_tag_rule(case.repository, case.tag)
        if case.immutable and rule is None:
            result.failures.append(f"tag {case.tag}: expected immutable, but no immutable_tags rule matches")
        if not case.immutable and rule is not None:
            result.failures.append(f"tag {case.tag}: expected mutable, but {rule.ref} protects it")
    return result


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _parse_file(filename: str, text: str) -> tuple[list[Case], list[PolicyIssue]]:
    issues: list[PolicyIssue] = []

    def error(node: Node | None, message: str) -> None:
        issues.append(PolicyIssue(filename, _line(node) if node is not None else 1, message))

    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        issues.append(PolicyIssue(filename, int(mark.line) + 1 if mark else 1, f"not valid YAML: {exc.problem}"))
        return [], issues
    if root is None:
        return [], issues
    top = dict(_pairs(root)) if isinstance(root, MappingNode) else {}
    cases_node = top.get("cases")
    if not isinstance(cases_node, SequenceNode):
        error(root, "a test file holds `cases:`, a list of cases")
        return [], issues
    cases = []
    for index, node in enumerate(cases_node.value, start=1):
        if not isinstance(node, MappingNode):
            error(node, f"case #{index} must be a mapping")
            continue
        fields = dict(_pairs(node))
        before = len(issues)
        for key in fields:
            if key not in CASE_KEYS:
                error(node, f"unknown key {key!r} in case #{index} (known: {', '.join(CASE_KEYS)})")
        scalar = {k: str(v.value) for k, v in fields.items() if isinstance(v, ScalarNode)}
        lists = {k: [str(i.value) for i in v.value if isinstance(i, ScalarNode)]
                 for k, v in fields.items() if isinstance(v, SequenceNode)}
        for key in ("allowed", "denied"):
            for action in lists.get(key, []):
                if action not in ALL_ACTIONS:
                    error(fields[key], f"unknown action {action!r} in {key}: use pull, push or delete")
        if "repository" not in scalar:
            error(node, f"case #{index} needs a repository")
        try:
            subject = parse_subject(scalar.get("subject", "anonymous"), frozenset(lists.get("teams", [])))
        except SubjectSyntaxError as exc:
            error(fields.get("subject"), str(exc))
            continue
        immutable = scalar.get("immutable")
        if immutable is not None and immutable.lower() not in ("true", "false"):
            error(fields["immutable"], "immutable must be true or false")
        if len(issues) > before:
            continue
        cases.append(Case(
            name=scalar.get("name", f"case #{index}"), file=filename, line=_line(node), subject=subject,
            repository=scalar["repository"], address=scalar.get("from"),
            allowed=frozenset(lists.get("allowed", [])), denied=frozenset(lists.get("denied", [])),
            tag=scalar.get("tag"), immutable=None if immutable is None else immutable.lower() == "true",
        ))
    return cases, issues


def _pairs(node: MappingNode) -> Iterator[tuple[str, Node]]:
    for key, value in node.value:
        yield str(key.value), value
