"""`authgate policy check | explain | test` as a policy author uses them: output and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authgate.cli.main import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AUTHGATE_POLICIES", "AUTHGATE_CONFIG", "AUTHGATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUTHGATE_DATA", str(tmp_path / "no-data"))


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(REPO / "policies", target)
    return target


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_accepts_the_shipped_policy(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check", str(REPO / "policies"))
    assert code == 0
    assert out.startswith("ok: 7 rules")


def test_check_prints_file_line_message_and_fails(capsys: pytest.CaptureFixture[str], policies: Path) -> None:
    text = (policies / "registry.yaml").read_text()
    broken = text.replace("allow: [pull, push, delete]", "allow: [pull, push, destroy]", 1)
    (policies / "registry.yaml").write_text(broken)
    line = broken.splitlines().index("    allow: [pull, push, destroy]") + 1
    code, out, err = run(capsys, "policy", "check", str(policies))
    assert code == 1
    assert out.strip() == f"{policies / 'registry.yaml'}:{line}: unknown action 'destroy' in allow: use pull, push, delete or *"
    assert "1 problem" in err


def test_check_uses_the_configured_directory(capsys: pytest.CaptureFixture[str], policies: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (policies / "extra.yaml").write_text("rules:\n  - name: x\n    subjects: [\"user:*\"]\n")
    monkeypatch.setenv("AUTHGATE_POLICIES", str(policies))
    code, out, _ = run(capsys, "policy", "check")
    assert code == 1
    assert f"{policies / 'extra.yaml'}:2: the rule has no repositories" in out


def test_explain_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "explain", "user:root", "prod/payments", "--team", "admins",
                       "--policies", str(REPO / "policies"), "--tag", "v3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "user:root (teams: admins) on prod/payments"
    assert lines[1].split()[:4] == ["pull", "allowed", "by", "admins"]
    assert "delete  denied by no-deletes-in-prod (" in lines[3]
    assert "overriding the allow of admins (" in lines[3]
    assert lines[4].startswith("  tag v3: immutable by release-tags-are-immutable (")


def test_explain_json_with_selected_actions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "explain", "robot:ci", "releases/app", "push", "--from", "192.0.2.1",
                       "--policies", str(REPO / "policies"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["subject"] == "robot:ci"
    assert list(data["actions"]) == ["push"]
    assert data["actions"]["push"]["allowed"] is False
    code, out, _ = run(capsys, "policy", "explain", "robot:ci", "releases/app", "push", "--from", "127.0.0.1",
                       "--policies", str(REPO / "policies"), "--json")
    ci = json.loads(out)["actions"]["push"]
    assert ci["allowed"] is True
    assert ci["allowed_by"][0]["name"] == "ci-releases"
    assert ci["allowed_by"][0]["file"].endswith("registry.yaml")


def test_explain_without_policies_uses_the_builtin_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "explain", "alice", "alice/app", "push")
    assert code == 0
    assert "push  allowed by own-namespace (<built-in>:2)" in out


def test_explain_rejects_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "policy", "explain", "group:x", "a/b")[0] == 2
    assert run(capsys, "policy", "explain", "user:a", "a/b", "destroy")[0] == 2


def test_test_passes_on_the_shipped_cases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "test", str(REPO / "policies"))
    assert code == 0
    assert out.strip().endswith("passed") and "failed" not in out


def test_test_reports_failures_like_a_test_runner(capsys: pytest.CaptureFixture[str], policies: Path) -> None:
    # Loosen the policy: every logged-in user may push to backend/*, which the shipped cases forbid.
    with (policies / "registry.yaml").open("a") as f:
        f.write("  - name: oops\n    subjects: [\"user:*\"]\n    repositories: [\"backend/**\"]\n    allow: [push]\n")
    code, out, _ = run(capsys, "policy", "test", str(policies))
    assert code == 1
    assert f"FAILED {policies / 'tests' / 'registry.yaml'}:22 another team cannot push there" in out
    assert "    push: expected denied, got allowed by oops (" in out
    assert out.strip().splitlines()[-1] == "1 failed, 13 passed"


def test_test_reports_bad_case_files(capsys: pytest.CaptureFixture[str], policies: Path) -> None:
    (policies / "tests" / "bad.yaml").write_text("cases:\n  - subject: user:a\n    repository: a/b\n    allowd: [pull]\n")
    code, out, _ = run(capsys, "policy", "test", str(policies))
    assert code == 1
    assert f"{policies / 'tests' / 'bad.yaml'}:2: unknown key 'allowd'" in out


def test_explain_adds_the_users_teams_from_the_database(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from authgate.auth import accounts
    from authgate.db.session import Database

    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("AUTHGATE_DATA", str(data))

    async def seed() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'authgate.db'}")
        try:
            await db.upgrade()
            await accounts.create_user(db, "alice", "x")
            await accounts.create_team(db, "backend")
            await accounts.add_members(db, "backend", ["alice"])
        finally:
            await db.close()

    asyncio.run(seed())
    args = ("policy", "explain", "user:alice", "backend/api", "push", "--policies", str(REPO / "policies"))
    code, out, _ = run(capsys, *args, "--team", "ops")
    assert code == 0
    assert out.splitlines()[0] == "user:alice (teams: backend, ops) on backend/api"
    assert "push  allowed by team-namespace (" in out
    code, out, _ = run(capsys, *args, "--no-db")
    assert "push  denied: no rule allows it" in out


def test_config_is_accepted_after_the_command(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # `authgate serve --config x.yaml` is how people type it; the option used to exist only before the command.
    config = tmp_path / "authgate.yaml"
    config.write_text("policies: nowhere\n")
    code, out, _ = run(capsys, "policy", "check", "--config", str(config))
    assert code == 1 and "nowhere" in out, "the file given after the command was read"
    assert main(["--config", str(tmp_path / "missing.yaml"), "policy", "check"]) == 2, \
        "given before the command, --config still counts"


def test_explain_warns_about_an_unknown_user(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setenv("AUTHGATE_DATA", str(data))
    assert main(["team", "create", "backend"]) == 0  # a database with no user `alcie`
    capsys.readouterr()
    code, out, err = run(capsys, "policy", "explain", "user:alcie", "alcie/app", "--policies", str(REPO / "policies"))
    assert code == 0 and "allowed by own-namespace" in out
    assert f"warning: no user named 'alcie' in the database ({data.resolve()}): explaining as if it existed" in err


def test_the_fallbacks_of_check_test_and_explain_are_said(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "policy", "check")
    assert code == 0 and "teams declared in" in out
    assert "using ./policies; `authgate serve` uses the built-in policy until it is set" in err
    code, _, err = run(capsys, "policy", "test")
    assert code == 0 and "using ./policies" in err
    code, out, err = run(capsys, "policy", "explain", "user:alice", "backend/api", "--no-db")
    assert "explaining the built-in policy, as `authgate serve` would decide" in err
    assert "allowed by" not in out, "the built-in policy gives alice nothing in backend/"


def test_an_empty_directory_names_both_extensions(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, _ = run(capsys, "policy", "check", str(tmp_path / "empty"))
    assert code == 1 and "no policy files (*.yaml or *.yml) here" in out
