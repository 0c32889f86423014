"""`authgate identity test | sources`, `policy explain` and `serve`'s start checks against a real slapd."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import authgate_env, run_cli
from tests.support.slapd import GROUPS, Slapd

POLICY = 'rules:\n  - name: backend team\n    subjects: ["team:backend"]\n    repositories: ["backend/**"]\n' \
         '    allow: [pull, push]\n'


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path / "slapd")
    yield server
    server.stop()


def _env(tmp_path: Path, identity: Path) -> dict[str, str]:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "registry.yaml").write_text(POLICY)
    return authgate_env(tmp_path / "data", identity=str(identity), policies=str(policies))


def test_identity_test_names_the_source_the_groups_and_where_each_team_came_from(tmp_path: Path, slapd: Slapd) -> None:
    env = _env(tmp_path, slapd.identity_file(tmp_path / "identity.yaml"))
    out = run_cli(env, "identity", "test", "carol").stdout
    assert "carol: known to corp (looked up without a password)" in out
    assert "groups: backend-oncall, backend" in out
    assert f"team backend: ldap corp: group cn=backend,{GROUPS} (nested, through backend-oncall)" in out
    data = json.loads(run_cli(env, "identity", "test", "zed", "--json").stdout)
    assert (data["source"], data["teams"], data["groups"]) == ("corp", ["admins"], ["Platform Admins"])
    wrong = run_cli(env, "identity", "test", "alice", "--password-stdin", input="nope\n", check=False)
    assert wrong.returncode == 1 and "refused by corp: wrong password" in wrong.stdout
    right = run_cli(env, "identity", "test", "alice", "--password-stdin", input="alice-pw\n")
    assert "alice: known to corp (password checked)" in right.stdout
    unknown = run_cli(env, "identity", "test", "nobody", check=False)
    assert unknown.returncode == 1 and "unknown to every source" in unknown.stdout
    sources = run_cli(env, "identity", "sources").stdout
    assert sources.startswith("1. local: users and robots in authgate's database\n2. corp: LDAP ldap://127.0.0.1:")
    assert "StartTLS, search-then-bind" in sources


def test_policy_explain_shows_where_a_membership_came_from(tmp_path: Path, slapd: Slapd) -> None:
    env = _env(tmp_path, slapd.identity_file(tmp_path / "identity.yaml"))
    out = run_cli(env, "policy", "explain", "carol", "backend/api", "push").stdout
    assert "user:carol (teams: backend, backend-oncall) on backend/api" in out
    assert "push  allowed by backend team" in out
    assert "team backend: ldap corp: group cn=backend" in out and "through backend-oncall" in out


def test_a_directory_whose_certificate_is_not_from_the_configured_ca_is_refused(tmp_path: Path, slapd: Slapd) -> None:
    from cryptography.hazmat.primitives import serialization

    from authgate.tls.certs import issue_ca

    other_ca = tmp_path / "other-ca.crt"
    other_ca.write_bytes(issue_ca("not the directory's").certificate.public_bytes(serialization.Encoding.PEM))
    for mode, setting in (("search", "corp.start_tls: StartTLS with"), ("bind", "corp.ca_file: TLS with")):
        env = _env(tmp_path, slapd.identity_file(tmp_path / f"identity-{mode}.yaml", mode, ca_file=str(other_ca)))
        result = run_cli(env, "identity", "sources", check=False)
        assert result.returncode == 1 and setting in result.stderr, result.stderr
        login = run_cli(env, "identity", "test", "alice", "--password-stdin", input="alice-pw\n", check=False)
        assert login.returncode == 1 and "cannot be reached; try again later" in login.stdout, login.stdout
        assert "not signed by ca_file" in login.stderr + result.stderr


@pytest.mark.parametrize(("change", "setting"), [
    ({"bind_password": "wrong"}, "corp.bind_password"),
    ({"user_base": "ou=nobody,dc=example,dc=test"}, "corp.user_base"),
    ({"url": "ldap://127.0.0.1:1"}, "corp.url"),
])
def test_serve_refuses_a_source_that_cannot_work_naming_the_setting(
        tmp_path: Path, slapd: Slapd, change: dict[str, str], setting: str) -> None:
    env = _env(tmp_path, slapd.identity_file(tmp_path / "identity.yaml", **change))
    result = run_cli(env, "serve", check=False)
    assert result.returncode != 0
    assert setting in result.stderr, result.stderr
    assert "wrong" not in result.stderr.replace("wrong password", ""), "the bind password is never printed"
