"""`workloads:` in policy files: parsing errors with file:line, and which claims match (a table)."""

from __future__ import annotations

import pytest

from authgate.policy.load import PolicyLoadError, parse_policies
from authgate.policy.workloads import match_workload

GOOD = """workloads:
  - name: app-main
    issuer: ci
    claims:
      repository: org/app
      ref: [refs/heads/main, refs/tags/v*]
  - name: app-any
    issuer: ci
    claims: {repository: org/app}
"""


@pytest.mark.parametrize(("claims", "expected"), [
    ({"repository": "org/app", "ref": "refs/heads/main"}, "app-main"),
    ({"repository": "org/app", "ref": "refs/tags/v1.2"}, "app-main"),
    ({"repository": "org/app", "ref": "refs/heads/dev"}, "app-any"),
    ({"repository": "org/app2", "ref": "refs/heads/main"}, None),
    ({"repository": ["org/app"], "ref": "refs/heads/main"}, None),
    ({"ref": "refs/heads/main"}, None),
])
def test_the_first_workload_whose_claims_all_match_names_the_robot(claims: dict[str, object],
                                                                    expected: str | None) -> None:
    policy = parse_policies([("ci.yaml", GOOD)])
    found = match_workload(policy.workloads, "ci", claims)
    assert (found.name if found else None) == expected
    assert match_workload(policy.workloads, "other-issuer", claims) is None


@pytest.mark.parametrize(("text", "message"), [
    ("workloads: {a: b}\n", "ci.yaml:1: workloads must be a list"),
    ("workloads:\n  - name: x\n    issuer: ci\n", "ci.yaml:2: a workload needs claims:"),
    ("workloads:\n  - issuer: ci\n    claims: {a: b}\n", "ci.yaml:2: a workload needs name:"),
    ("workloads:\n  - name: x\n    issuer: ci\n    claims: {a: b}\n    claim: {a: b}\n", "ci.yaml:5: unknown key 'claim'"),
    ("workloads:\n  - name: x\n    issuer: ci\n    claims: {a: ''}\n", "ci.yaml:4: claim a: a value"),
    ("workloads:\n  - name: 'a b'\n    issuer: ci\n    claims: {a: b}\n", "ci.yaml:2:"),
    ("workload: []\n", "did you mean 'workloads'"),
])
def test_bad_workloads_are_refused_with_file_and_line(text: str, message: str) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        parse_policies([("ci.yaml", text)])
    assert message in "\n".join(map(str, caught.value.issues))
