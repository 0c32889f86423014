"""Signed checkpoints catch what the hash chain alone cannot: a rewrite or roll-back of the whole log."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
from pathlib import Path

from authgate.audit.chain import append_rows, ensure_head, to_row
from authgate.audit.events import AuditEvent
from authgate.db.session import Database
from authgate.subject import Subject
from tests.support.processes import authgate_env, run_cli


def _append(data: Path, names: list[str]) -> None:
    async def body() -> None:
        db = Database(f"sqlite+aiosqlite:///{data / 'authgate.db'}")
        await db.upgrade()
        await ensure_head(db)
        await append_rows(db, [to_row(AuditEvent("manifest:push", Subject("user", n), f"{n}/app", "v1"))
                               for n in names])
        await db.close()

    data.mkdir(parents=True, exist_ok=True)
    asyncio.run(body())


def _wipe(data: Path) -> None:
    """What someone with write access to the whole database can do: start the chain again."""
    with sqlite3.connect(data / "authgate.db") as connection:
        connection.execute("DELETE FROM audit_events")
        connection.execute("UPDATE audit_chain_head SET seq = 0, hash = ?", ("0" * 64,))


def test_a_rewritten_or_rolled_back_log_fails_its_checkpoint(tmp_path: Path) -> None:
    data, key = tmp_path / "data", tmp_path / "offline" / "checkpoint.key"
    _append(data, ["alice", "bob", "carol"])
    env = authgate_env(data)
    made = run_cli(env, "audit", "checkpoint", "--key", str(key), "-o", str(tmp_path / "cp.json"))
    assert "created checkpoint key" in made.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and (tmp_path / "offline" / "checkpoint.key.pub").exists()
    assert json.loads((tmp_path / "cp.json").read_text())["seq"] == 3
    _append(data, ["dave"])
    good = run_cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "cp.json"), "--key", f"{key}.pub")
    assert "checkpoint" in good.stdout and "holds: event 3" in good.stdout

    _wipe(data)
    _append(data, ["mallory", "mallory", "mallory", "mallory"])  # history rewritten: 4 events that chain
    rewritten = run_cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "cp.json"), "--key", str(key),
                        check=False)
    assert rewritten.returncode == 1
    assert "audit log verified: 4 events" in rewritten.stdout, "the chain alone cannot see it"
    assert "no longer has the hash signed" in rewritten.stdout

    _wipe(data)
    _append(data, ["mallory"])
    rolled_back = run_cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "cp.json"), "--key", str(key),
                          check=False)
    assert rolled_back.returncode == 1 and "rolled back" in rolled_back.stdout

    forged = json.loads((tmp_path / "cp.json").read_text())
    forged["seq"] = 1
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    refused = run_cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "forged.json"), "--key", str(key),
                      check=False)
    assert refused.returncode == 1 and "signature does not verify" in refused.stdout

    os.chmod(key, 0o644)
    loose = run_cli(env, "audit", "checkpoint", "--key", str(key), check=False)
    assert loose.returncode == 1 and "chmod 600" in loose.stderr
    assert "--key" in run_cli(env, "audit", "verify", "--checkpoint", str(tmp_path / "cp.json"), check=False).stderr
