"""Several processes on one data dir: only the first to start runs recovery (it empties tmp/,
where the others may be writing)."""

from __future__ import annotations

from pathlib import Path

from authgate.storage.layout import Layout
from authgate.storage.recovery import recover
from authgate.storage.shared_dir import hold_and_maybe_recover, release


def test_recovery_runs_only_when_no_other_process_serves(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "registry")
    lock = layout.root / "serving.lock"
    first = hold_and_maybe_recover(lock, lambda: recover(layout))
    (layout.tmp / "being-written-by-the-first").write_bytes(b"x")
    second = hold_and_maybe_recover(lock, lambda: recover(layout))  # a second worker starting
    assert [p.name for p in layout.tmp.iterdir()] == ["being-written-by-the-first"]
    release(first)
    release(second)
    third = hold_and_maybe_recover(lock, lambda: recover(layout))  # alone again: recovery runs
    assert list(layout.tmp.iterdir()) == []
    release(third)
