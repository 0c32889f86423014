"""`authgate serve`'s default worker count: one per core it may use, a container's CPU quota included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authgate.cli.workers import MAX_DEFAULT_WORKERS, default_workers


@pytest.mark.parametrize(("cpu_max", "limit"), [
    ("max 100000\n", MAX_DEFAULT_WORKERS),     # no quota
    ("150000 100000\n", 2),                    # docker run --cpus 1.5
    ("50000 100000\n", 1),                     # half a core still gets one worker
    ("garbage", MAX_DEFAULT_WORKERS),          # unreadable: affinity alone
])
def test_quota_and_affinity(tmp_path: Path, cpu_max: str, limit: int) -> None:
    cgroup = tmp_path / "cpu.max"
    cgroup.write_text(cpu_max)
    assert default_workers(cgroup) == max(1, min(len(os.sched_getaffinity(0)), limit))


def test_no_cgroup_file(tmp_path: Path) -> None:
    assert 1 <= default_workers(tmp_path / "missing") <= MAX_DEFAULT_WORKERS


def test_the_worker_count_is_a_setting_too() -> None:
    from authgate.settings import SettingsError, load_settings

    assert load_settings(environ={"AUTHGATE_WORKERS": "3"}).workers == 3
    with pytest.raises(SettingsError, match="workers must be 0"):
        load_settings(environ={"AUTHGATE_WORKERS": "-1"})
