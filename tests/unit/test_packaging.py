"""A non-editable install (`pip install .`, the Docker image) has every module and the migrations."""

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.support.processes import REPO_ROOT


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for path in (REPO_ROOT / "authgate").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_the_wheel_carries_the_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
         str(REPO_ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("authgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "authgate/migrations/env.py" in names
    assert "authgate/migrations/versions/0001_initial_schema.py" in names
    assert "authgate/py.typed" in names


def test_the_image_pins_every_dependency() -> None:
    """docker/requirements.txt is what the image installs (online or from docker/wheels/): a dependency
    added to pyproject.toml and not pinned there would be missing from an offline build."""
    import re

    def name(requirement: str) -> str:
        return re.split(r"[\[<>=!~; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")

    lines = [line.strip() for line in (REPO_ROOT / "docker" / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all("==" in pin for pin in pins), "every line pins one version"
    pinned = {name(pin) for pin in pins}
    wanted = {name(dep) for dep in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert wanted - pinned == set(), "pin these in docker/requirements.txt (NAME==VERSION)"
