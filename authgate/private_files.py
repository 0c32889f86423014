"""Owner-only files and directories for what authgate keeps on disk.

The database holds password and refresh-token hashes and the audit log; the embedded store holds
private images. A fresh data dir is created 0700, but an existing one is often 0755 (a host bind
mount), and under the usual umask 022 the database was created 0644 and the store 0755 inside it:
readable by every local user. So the database file is created 0600 before SQLite opens it (SQLite
gives its -wal and -shm files the database's mode), the store's root 0700, and at every start an
existing one that others can read is tightened, with a warning saying so. (Signing keys go further:
authgate refuses to start with a key others can read, auth/keys.py.)
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int, what: str) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & 0o077:
        os.chmod(path, mode)
        log.warning("%s %s was readable by other local users (mode %o): made it %o", what, path, current, mode)


def private_directory(path: Path, what: str = "directory") -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700, what)


def private_sqlite_file(path: Path) -> None:
    """Create the database file 0600 if missing; tighten it and its journal files if others can read them."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in _SQLITE_COMPANIONS)):
        if candidate.exists():
            _tighten(candidate, 0o600, "database file")
