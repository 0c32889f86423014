"""The authgate container image that tests/e2e/test_container_image.py runs, built in the background.

The build (a local Debian base imported into a dockerd of its own, the pinned wheels made with `pip
wheel`, then `docker build` with no network) takes about a minute and needs nothing from the tests
before it. The session starts it on a thread at its first test when the image tests are among those
collected (tests/conftest.py); the image tests wait for it, so the minute overlaps other tests. The
build itself is what docs/container.md documents, unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.debian_base import import_base
from tests.support.processes import REPO_ROOT, Dockerd

#: The test file whose tests use the image: the build starts only when one of them is collected.
IMAGE_TESTS = "tests/e2e/test_container_image.py"


def offline_context(target: Path) -> Path:
    """The build context `docker build .` would send, plus the pinned wheels made on this machine: the
    offline path docs/container.md documents (a local base, `pip wheel` into docker/wheels/)."""
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, target / name)
    for name in ("authgate", "migrations", "docker"):
        shutil.copytree(REPO_ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "-r",
                    str(target / "docker" / "requirements.txt"), "-w", str(target / "docker" / "wheels")],
                   check=True, capture_output=True, timeout=900)
    return target


class ImageBuild:
    """A dockerd on overlay2 and the authgate image built in it, made on a thread from construction.

    overlay2, not vfs: the legacy builder copies the whole root filesystem for every step on vfs (12
    min for this Dockerfile on a loaded machine, against 2 on overlay2)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tag = f"authgate-test:{os.getpid()}"
        self.builder: Dockerd | None = None
        self.report = ""
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._build, name="authgate-image-build", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            started = time.monotonic()
            self.builder = Dockerd(self.workdir / "builder-dockerd", storage_driver="overlay2")
            base = import_base(self.builder)
            context = self.workdir / "build-context"
            context.mkdir()
            offline_context(context)
            based = time.monotonic()
            # No network at all during the build: the base is local and the wheels are in docker/wheels/.
            self.builder.run("build", "-q", "--network", "none", "--build-arg", f"BASE={base}", "-t", self.tag,
                             str(context), timeout=1200)
            size = int(self.builder.run("image", "inspect", "--format", "{{.Size}}", self.tag).stdout) // 2**20
            base_size = int(self.builder.run("image", "inspect", "--format", "{{.Size}}", base).stdout) // 2**20
            self.report = (f"base image {based - started:.0f}s, docker build {time.monotonic() - based:.0f}s, "
                           f"image {size} MiB (base {base_size} MiB)")
        except BaseException as exc:  # a skip (missing dockerd, debootstrap) too: raised again by `result`
            self._error = exc

    def result(self, timeout: float = 1500) -> tuple[Dockerd, str]:
        """The builder dockerd and the image's tag, once built; what stopped the build, raised here."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the image build did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self.builder is not None
        return self.builder, self.tag

    def close(self) -> None:
        """Remove the image and stop the builder dockerd; a build still running (the session ended
        before the image tests) is cut short by stopping its dockerd. Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        unused = self._thread.is_alive()
        if unused and self.builder is not None:
            self.builder.stop()
        self._thread.join(1500)
        if self.builder is not None:
            if not unused:
                self.builder.run("rmi", "-f", self.tag, check=False)
            self.builder.stop()


#: Where tests/conftest.py leaves the build it started, for the image tests' fixture.
IMAGE_BUILD = pytest.StashKey[ImageBuild]()
