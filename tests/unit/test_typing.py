"""The package type-checks under `mypy --strict`: a regression fails the suite."""

import subprocess
import sys

from tests.support.processes import REPO_ROOT, missing_component


def test_mypy_strict() -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        missing_component("mypy not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "authgate"], cwd=REPO_ROOT, capture_output=True, text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
