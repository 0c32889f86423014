"""Decide and explain: what a subject may do on a repository under a loaded `Policy`.

Semantics (DESIGN.md): the union of `allow` of every matching rule minus the union of their
`deny`; deny wins; nothing matching means nothing allowed. A rule matches when one of its subjects,
one of its repository patterns and (if it has `from:`) one of its address ranges match.

Speed: rules are indexed by subject key (`user:alice`, `user:*`, `team:backend`, `*`, …) and then
by the literal first path segment of their patterns, so a decision only runs the few precompiled
regexes that could match, whatever the size of the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from authgate.policy.model import ACTIONS, Policy, Rule
from authgate.subject import Subject

# Buckets besides literal first segments; none of these can be a repository path segment.
_WILD = "*"  # first segment is a wildcard or mixes text and placeholders
#: First segment exactly `${user}`/`${robot}`/`${team}`: looked up only when the repository's first
#: segment is the subject's name or one of its teams, so `${user}/**` costs nothing elsewhere.
_PLACEHOLDER_BUCKETS = {"${user}": "@user", "${robot}": "@robot", "${team}": "@team"}


def _bucket(source: str, literal: str | None) -> str:
    if literal is not None:
        return literal
    return _PLACEHOLDER_BUCKETS.get(source.partition("/")[0], _WILD)


@dataclass(frozen=True, slots=True)
class ActionDecision:
    action: str
    allowed: bool
    allowed_by: tuple[Rule, ...]
    denied_by: tuple[Rule, ...]

    @property
    def reason(self) -> str:
        if self.allowed:
            return "allowed by " + ", ".join(r.ref for r in self.allowed_by)
        if self.denied_by:
            text = "denied by " + ", ".join(r.ref for r in self.denied_by)
            if self.allowed_by:
                text += ", overriding the allow of " + ", ".join(r.ref for r in self.allowed_by)
            return text
        return "denied: no rule allows it"


@dataclass(frozen=True, slots=True)
class Explanation:
    subject: Subject
    teams: frozenset[str]
    repository: str
    address: str | None
    decisions: tuple[ActionDecision, ...]
    matched: tuple[Rule, ...]

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(d.action for d in self.decisions if d.allowed)

    def as_dict(self) -> dict[str, Any]:
        def ref(rule: Rule) -> dict[str, Any]:
            return {"name": rule.name, "file": rule.origin.file, "line": rule.origin.line}

        return {
            "subject": str(self.subject),
            "teams": sorted(self.teams),
            "repository": self.repository,
            "address": self.address,
            "actions": {
                d.action: {
                    "allowed": d.allowed,
                    "reason": d.reason,
                    "allowed_by": [ref(r) for r in d.allowed_by],
                    "denied_by": [ref(r) for r in d.denied_by],
                }
                for d in self.decisions
            },
            "matched_rules": [ref(r) for r in self.matched],
        }


# bucket: first segment (or _WILD) -> rule positions, in file order
_Buckets = dict[str, tuple[int, ...]]


class PolicyEngine:
    """An immutable, compiled view of one `Policy`; swap the whole engine to change policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._rules = policy.rules
        index: dict[str, dict[str, list[int]]] = {}
        immutable: dict[str, list[int]] = {}
        for position, rule in enumerate(policy.rules):
            segments = {_bucket(glob.source, glob.first_segment) for glob in rule.repositories}
            if rule.immutable_tags:
                for segment in segments:
                    immutable.setdefault(segment, []).append(position)
                continue
            for pattern in rule.subjects:
                buckets = index.setdefault(pattern.index_key, {})
                for segment in segments:
                    bucket = buckets.setdefault(segment, [])
                    if not bucket or bucket[-1] != position:
                        bucket.append(position)
        self._index: dict[str, _Buckets] = {k: {s: tuple(v) for s, v in b.items()} for k, b in index.items()}
        self._immutable: _Buckets = {s: tuple(v) for s, v in immutable.items()}
        self._literal_segments = frozenset(s for b in self._index.values() for s in b)
        file_teams: dict[tuple[str, str], set[str]] = {}
        for team in policy.teams:
            for member in team.members:
                file_teams.setdefault(member, set()).add(team.name)
        self._file_teams = {k: frozenset(v) for k, v in file_teams.items()}

    def teams_of(self, subject: Subject) -> frozenset[str]:
        """Database teams (already on the subject) plus the teams policy files declare: the union."""
        if subject.kind == "anonymous":
            return frozenset()
        declared = self._file_teams.get((subject.kind, subject.name))
        return subject.teams | declared if declared else subject.teams

    def _keys(self, subject: Subject, teams: frozenset[str]) -> list[str]:
        if subject.kind == "anonymous":
            return ["anonymous"]
        keys = ["*", f"{subject.kind}:*", f"{subject.kind}:{subject.name}"]
        if teams:
            keys.append("team:*")
            keys.extend(f"team:{t}" for t in teams)
        return keys

    def _candidates(self, keys: list[str], segment: str, subject: Subject, teams: frozenset[str]) -> list[int]:
        extra = []
        if segment == subject.name and subject.kind in ("user", "robot"):
            extra.append("@" + subject.kind)
        if segment in teams:
            extra.append("@team")
        found: set[int] = set()
        for key in keys:
            buckets = self._index.get(key)
            if buckets:
                found.update(buckets.get(segment, ()))
                found.update(buckets.get(_WILD, ()))
                for name in extra:
                    found.update(buckets.get(name, ()))
        return sorted(found)

    def _matches(self, rule: Rule, subject: Subject, teams: frozenset[str], repository: str,
                 address: str | None, bound_cache: dict[int, frozenset[str] | None] | None = None) -> bool:
        for glob in rule.repositories:
            m = glob.regex.fullmatch(repository)
            if m is None:
                continue
            if glob.placeholders:
                if "user" in glob.placeholders and not (subject.kind == "user" and m["user"] == subject.name):
                    continue
                if "robot" in glob.placeholders and not (subject.kind == "robot" and m["robot"] == subject.name):
                    continue
                if "team" in glob.placeholders:
                    if bound_cache is None:
                        bound = rule.bind_subject(subject.kind, subject.name, teams)
                    elif id(rule) in bound_cache:
                        bound = bound_cache[id(rule)]
                    else:
                        bound = bound_cache[id(rule)] = rule.bind_subject(subject.kind, subject.name, teams)
                    if not bound or m["team"] not in bound:
                        continue
            return rule.networks is None or rule.matches_address(address)
        return False

    def matching_rules(self, subject: Subject, repository: str, address: str | None = None) -> list[Rule]:
        teams = self.teams_of(subject)
        segment = repository.partition("/")[0]
        rules = self._rules
        return [
            rules[i]
            for i in self._candidates(self._keys(subject, teams), segment, subject, teams)
            if self._matches(rules[i], subject, teams, repository, address)
        ]

    def allowed_actions(self, subject: Subject, repository: str, address: str | None = None) -> frozenset[str]:
        allow: set[str] = set()
        deny: set[str] = set()
        for rule in self.matching_rules(subject, repository, address):
            allow |= rule.allow
            deny |= rule.deny
        return frozenset(allow - deny)

    def explain(self, subject: Subject, repository: str, actions: Iterable[str] = ACTIONS,
                address: str | None = None) -> Explanation:
        matched = self.matching_rules(subject, repository, address)
        decisions = []
        for action in actions:
            allowed_by = tuple(r for r in matched if action in r.allow)
            denied_by = tuple(r for r in matched if action in r.deny)
            decisions.append(ActionDecision(action, bool(allowed_by) and not denied_by, allowed_by, denied_by))
        return Explanation(subject, self.teams_of(subject), repository, address, tuple(decisions), tuple(matched))

    def immutable_tag_rule(self, repository: str, tag: str) -> Rule | None:
        """The first rule protecting `tag` in `repository` (an existing such tag may not be moved or deleted)."""
        segment = repository.partition("/")[0]
        positions = sorted({*self._immutable.get(segment, ()), *self._immutable.get(_WILD, ())})
        for position in positions:
            rule = self._rules[position]
            if any(g.regex.fullmatch(repository) for g in rule.repositories) and any(
                t.regex.fullmatch(tag) for t in rule.immutable_tags
            ):
                return rule
        return None

    def filter_pullable(self, subject: Subject, repositories: Iterable[str], address: str | None = None) -> list[str]:
        """The repositories `subject` may pull, in input order: for `/v2/_catalog`.

        Candidate rules are gathered once per first segment rather than once per repository, and only
        rules that allow or deny `pull` are consulted.
        """
        teams = self.teams_of(subject)
        keys = self._keys(subject, teams)
        rules = self._rules
        per_segment: dict[str, list[Rule]] = {}
        bound_cache: dict[int, frozenset[str] | None] = {}
        out: list[str] = []
        for repository in repositories:
            segment = repository.partition("/")[0]
            if segment not in self._literal_segments and segment not in teams and segment != subject.name:
                segment = _WILD  # only wildcard rules can match: share one candidate list
            candidates = per_segment.get(segment)
            if candidates is None:
                candidates = [
                    rules[i] for i in self._candidates(keys, segment, subject, teams)
                    if "pull" in rules[i].allow or "pull" in rules[i].deny
                ]
                per_segment[segment] = candidates
            allowed = False
            for rule in candidates:
                if self._matches(rule, subject, teams, repository, address, bound_cache):
                    if "pull" in rule.deny:
                        allowed = False
                        break
                    allowed = True
            if allowed:
                out.append(repository)
        return out
