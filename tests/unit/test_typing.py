"""The package type-checks under `mypy --strict` (STYLE.md §10): a regression fails the suite."""

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT


def test_mypy_strict() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.skip("mypy not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "authgate"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
