"""`workloads:` in a policy file: which CI jobs, by the claims of their issuer's token, act as which robot.

    workloads:
      - name: app-main                  # the job acts as robot:app-main in rules
        issuer: github                  # an `oidc_workload` source in the identity file
        claims:
          repository: org/app           # every claim must match; a list means any of these values
          ref: [refs/heads/main, refs/tags/v*]   # a trailing * matches any suffix

A workload is a robot without a stored secret: the job presents its platform's signed token
(`docker login -u oidc`), authgate verifies it, and the first workload (file order) whose issuer
and claims all match names the subject. Nothing matching means no login.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from authgate.policy.model import Origin, PatternError, SubjectPattern

WORKLOAD_KEYS = ("name", "issuer", "claims", "description")
MAX_CLAIM_VALUES = 64


@dataclass(frozen=True, slots=True)
class ClaimMatch:
    claim: str
    #: Exact values; one ending in `*` matches any value with that prefix.
    values: tuple[str, ...]

    def matches(self, claims: Mapping[str, object]) -> bool:
        value = claims.get(self.claim)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return False  # a missing, list or object claim never matches
        text = str(value)
        return any(text.startswith(v[:-1]) if v.endswith("*") else text == v for v in self.values)


@dataclass(frozen=True, slots=True)
class WorkloadRule:
    name: str
    issuer: str
    claims: tuple[ClaimMatch, ...]
    origin: Origin

    def matches(self, issuer: str, claims: Mapping[str, object]) -> bool:
        return self.issuer == issuer and all(c.matches(claims) for c in self.claims)


def match_workload(workloads: tuple[WorkloadRule, ...], issuer: str, claims: Mapping[str, object]
                   ) -> WorkloadRule | None:
    """The first workload (file order) whose issuer and every claim match, or None."""
    return next((w for w in workloads if w.matches(issuer, claims)), None)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _scalars(node: Node) -> Iterator[ScalarNode | Node]:
    if isinstance(node, SequenceNode):
        yield from node.value
    else:
        yield node


def parse_workloads(parser: object, node: Node) -> list[WorkloadRule]:
    """Parse the `workloads:` list with the file parser's `error(node, message)` and `mapping()`."""
    error = getattr(parser, "error")
    mapping = getattr(parser, "mapping")
    filename: str = getattr(parser, "filename")
    out: list[WorkloadRule] = []
    if not isinstance(node, SequenceNode):
        error(node, "workloads must be a list (each starting with '- name: …')")
        return out
    for item in node.value:
        fields = mapping(item, "a workload")
        if fields is None:
            continue
        problems = False
        for key, (key_node, _) in fields.items():
            if key not in WORKLOAD_KEYS:
                error(key_node, f"unknown key {key!r} in a workload (known: {', '.join(WORKLOAD_KEYS)})")
                problems = True
        values: dict[str, str] = {}
        for key in ("name", "issuer"):
            value = fields.get(key, (None, None))[1]
            if not isinstance(value, ScalarNode) or not value.value:
                error(value or item, f"a workload needs {key}: (a non-empty string)")
                problems = True
                continue
            values[key] = str(value.value)
        if "name" in values:
            try:
                SubjectPattern.parse(f"robot:{values['name']}")
            except PatternError as exc:
                error(fields["name"][1], str(exc))
                problems = True
        claims_node = fields.get("claims", (None, None))[1]
        matches: list[ClaimMatch] = []
        if not isinstance(claims_node, MappingNode) or not claims_node.value:
            error(claims_node or item, "a workload needs claims: (at least one claim: value, e.g. repository: org/app)")
            problems = True
        else:
            for claim, (claim_node, value_node) in (mapping(claims_node, "claims") or {}).items():
                accepted = [str(v.value) for v in _scalars(value_node) if isinstance(v, ScalarNode) and v.value != ""]
                if not accepted or len(accepted) > MAX_CLAIM_VALUES or \
                        len(accepted) != len(list(_scalars(value_node))):
                    error(value_node, f"claim {claim}: a value or a list of non-empty values")
                    problems = True
                    continue
                matches.append(ClaimMatch(claim, tuple(accepted)))
        if not problems:
            out.append(WorkloadRule(values["name"], values["issuer"], tuple(matches), Origin(filename, _line(item))))
    return out
