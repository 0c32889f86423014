"""Several processes serving one data dir (`authgate serve --workers N`): who may run recovery.

Start-up recovery empties `tmp/`, which is only safe when no other process is writing there. Each
serving process holds a shared `flock` on `registry/serving.lock` for its lifetime; recovery runs
only in a process that can take it exclusively, i.e. the first to start. A worker restarted
beside running ones skips it: a crash's leftovers in `tmp/` are never read, and the next start
alone removes them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path


def hold_and_maybe_recover(lock_path: Path, recover: Callable[[], object]) -> int:
    """Blocking. Run `recover` if no other process serves this dir; return the fd holding the shared lock."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a first process is recovering
        return fd
    try:
        recover()
    finally:
        fcntl.flock(fd, fcntl.LOCK_SH)  # converting may let another process in first; it finds us serving
    return fd


def release(fd: int) -> None:
    os.close(fd)
