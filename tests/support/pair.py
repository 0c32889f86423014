"""Two `authgate serve` processes on one data dir and one database, as two replicas share them: the
pair the shared-state tests (tests/e2e/test_account_changes.py, test_shared_state.py) drive.

A pair is started once per database for the session (tests/e2e/conftest.py): starting two servers
costs seconds, and each test works on accounts named by `new_name`, so tests do not see each other.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.processes import AuthgateServer

#: The service both processes name in their tokens.
SERVICE = "two-processes"
#: Team backend pulls backend/** (test_account_changes takes a member out of the team).
POLICY = """\
rules:
  - name: backend
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull]
"""
_names = itertools.count(1)


def new_name(prefix: str) -> str:
    """An account name no other test on the shared pair uses."""
    return f"{prefix}-{next(_names)}"


def start_pair(workdir: pytest.TempPathFactory, database: str, database_url: str | None
               ) -> tuple[AuthgateServer, AuthgateServer]:
    """Both processes started; `database_url` None: the SQLite file in the shared data dir."""
    home = workdir.mktemp(f"pair-{database}")
    policies = home / "policies"
    policies.mkdir()
    (policies / "rules.yaml").write_text(POLICY)
    # The policy as replicas share it: pushed into the database (test_shared_state pushes others).
    settings = {"service": SERVICE, "policy_source": "database", "bcrypt_rounds": "4"}
    if database_url:
        settings["database_url"] = database_url
    (home / "second").mkdir()
    first = AuthgateServer(home, **settings)
    first.cli("policy", "push", str(policies))
    first.start()
    second = AuthgateServer(home / "second", **settings)
    second.env["AUTHGATE_DATA"] = str(first.data)  # the same keys, seal key and (SQLite) database file
    try:
        second.start()
    except BaseException:
        first.stop()
        raise
    return first, second
