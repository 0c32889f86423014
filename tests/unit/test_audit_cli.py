"""`authgate audit …` as a user runs it: table, JSON lines, export, verify (exit 1 naming the event), prune."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from authgate.audit.chain import append_rows, ensure_head, to_row
from authgate.audit.events import AuditEvent
from authgate.db.session import Database
from authgate.subject import Subject
from tests.support.processes import authgate_env, run_cli

START = datetime(2026, 3, 1, tzinfo=timezone.utc)


def _seed(data: Path) -> None:
    async def body() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'authgate.db'}")
        await db.upgrade()
        await ensure_head(db)
        events = [
            AuditEvent("manifest:push", Subject("user", "alice"), "alice/app", "v1", "sha256:" + "a" * 64, 10,
                       address="192.0.2.1", time=START),
            AuditEvent("manifest:push", Subject("user", "bob"), "bob/tool", "latest", "sha256:" + "b" * 64, 20,
                       time=START + timedelta(days=1)),
            AuditEvent("manifest:push:failure", Subject("user", "bob"), "alice/app", "v2", outcome="failure",
                       reason="denied by policy", time=START + timedelta(days=2)),
            AuditEvent("auth:login:failure", Subject("user", "eve"), outcome="failure", reason="invalid password",
                       details={"user_agent": "curl, \"quoted\""}, time=START + timedelta(days=3)),
        ]
        await append_rows(db, [to_row(e) for e in events])
        await db.close()

    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(body())


def test_list_export_verify_prune(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed(data)
    env = authgate_env(data)

    table = run_cli(env, "audit", "list", "--all").stdout.splitlines()
    assert table[0].split()[:4] == ["SEQ", "TIME", "ACTOR", "ACTION"]
    assert table[1].split()[:4] == ["4", "2026-03-04T00:00:00Z", "user:eve", "auth:login:failure"]
    assert "failure: denied by policy" in table[2]

    lines = run_cli(env, "audit", "list", "--json", "--repository", "alice/app").stdout.splitlines()
    assert [(e["seq"], e["actor"], e["reference"]) for e in map(json.loads, lines)] == [
        (3, "user:bob", "v2"), (1, "user:alice", "v1")]
    window = run_cli(env, "audit", "list", "--json", "--action", "manifest:push", "--actor", "bob",
                     "--since", "2026-03-02", "--until", "2026-03-03", "--limit", "5").stdout
    assert [json.loads(e)["seq"] for e in window.splitlines()] == [2]

    exported = run_cli(env, "audit", "export", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(e)["seq"] for e in exported] == [1, 2, 3, 4]
    rows = list(csv.DictReader(io.StringIO(run_cli(env, "audit", "export", "--format", "csv").stdout)))
    assert [r["actor"] for r in rows] == ["user:alice", "user:bob", "user:bob", "user:eve"]
    assert json.loads(rows[3]["details"]) == {"user_agent": "curl, \"quoted\""}

    assert run_cli(env, "audit", "verify").stdout.startswith("audit log verified: 4 events")

    pruned = run_cli(env, "audit", "prune", "--before", "2026-03-02T12:00:00Z").stdout
    assert "pruned 2 events" in pruned
    # The prune is itself an event (5), chained after what is left.
    assert run_cli(env, "audit", "verify").stdout.startswith("audit log verified: 3 events, 3 to 5")
    latest = json.loads(run_cli(env, "audit", "list", "--json", "--limit", "1").stdout)
    assert (latest["action"], latest["actor_type"], latest["details"]["before"]) == (
        "audit:prune", "cli", "2026-03-02 12:00:00+00:00")

    with sqlite3.connect(data / "authgate.db") as connection:
        connection.execute("UPDATE audit_events SET reason = 'allowed' WHERE seq = 3")
    broken = run_cli(env, "audit", "verify", check=False)
    assert broken.returncode == 1
    assert "BROKEN at event 3 (manifest:push:failure by user:bob" in broken.stdout


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    env = authgate_env(tmp_path / "data")
    result = run_cli(env, "audit", "list", "--since", "last tuesday", check=False)
    assert result.returncode == 2 and "is not a time" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(env, "audit", "export", "--format", "xml", check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_admin_changes_made_with_the_cli_are_recorded(tmp_path: Path) -> None:
    env = authgate_env(tmp_path / "data", bcrypt_rounds="4")
    run_cli(env, "user", "add", "carol", "--admin", "--password-stdin", input="carol-Secret-pw\n")
    assert run_cli(env, "user", "add", "carol", "--password-stdin", input="again-Secret-pw\n", check=False).returncode
    run_cli(env, "user", "list")  # reading changes nothing: not recorded

    events = [json.loads(line) for line in run_cli(env, "audit", "list", "--json", "--action", "user").stdout.splitlines()]
    assert [(e["action"], e["actor_type"], e["reference"], e["outcome"]) for e in events] == [
        ("user:add:failure", "cli", "carol", "failure"),
        ("user:add", "cli", "carol", "success"),
    ]
    assert events[1]["details"]["admin"] is True
    exported = run_cli(env, "audit", "export").stdout
    assert "Secret-pw" not in exported
    assert run_cli(env, "audit", "verify").returncode == 0


def _seed_a_day(data: Path, tokens: int) -> None:
    """What a day looks like: a push, a refused push, then many token requests and a policy reload."""
    async def body() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'authgate.db'}")
        await db.upgrade()
        await ensure_head(db)
        events = [AuditEvent("manifest:push", Subject("user", "alice"), "alice/app", "v1", "sha256:" + "a" * 64, 10,
                             time=START),
                  AuditEvent("access:denied", Subject("user", "bob"), "alice/app", outcome="failure",
                             reason="PUT needs repository:alice/app:push", time=START)]
        events += [AuditEvent("token:issue", Subject("user", "alice"), time=START,
                              details={"requested": "repository:alice/app:pull,push repository:base/img:pull"})
                   for _ in range(tokens)]
        await append_rows(db, [to_row(e) for e in events])
        await db.close()

    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(body())


def test_the_default_table_is_who_pushed_and_deleted_what(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed_a_day(data, tokens=3)
    env = authgate_env(data)
    listed = run_cli(env, "audit", "list")
    rows = [line.split()[:5] for line in listed.stdout.splitlines()[1:]]
    assert rows == [["2", "2026-03-01T00:00:00Z", "user:bob", "access:denied", "alice/app"],
                    ["1", "2026-03-01T00:00:00Z", "user:alice", "manifest:push", "alice/app"]], \
        "token requests (most of the log) are not what an admin asks first"
    assert "--all for logins, tokens and policy reloads" in listed.stderr
    everything = run_cli(env, "audit", "list", "--all", "--limit", "2")
    assert [line.split()[3:5] for line in everything.stdout.splitlines()[1:]] == [
        ["token:issue", "alice/app,base/img"]] * 2, "a token event shows the repositories it asked for"
    assert "(more events: --before 4 for the next page, or --limit N)" in everything.stderr
    assert "more events" not in listed.stderr


def test_audit_list_into_head_ends_quietly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed_a_day(data, tokens=1500)  # more than a pipe holds, so the writer really meets the closed pipe
    env = authgate_env(data)
    result = subprocess.run(f"{sys.executable} -m authgate audit list --all --limit 1000 | head -n 2",
                            shell=True, env=env, capture_output=True, text=True, timeout=120)
    assert len(result.stdout.splitlines()) == 2
    assert "BrokenPipeError" not in result.stderr and "Traceback" not in result.stderr, result.stderr
