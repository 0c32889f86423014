"""Shared fixtures: real daemons, started once per session where that is safe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image_build import IMAGE_BUILD, IMAGE_TESTS, ImageBuild
from tests.support.processes import Daemon, Dockerd, Postgres
from tests.support.seaweedfs import SeaweedFS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Whatever a failed fixture left running stops with the session."""
    Daemon.stop_all()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    daemon = Dockerd(tmp_path_factory.mktemp("dockerd"))
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the session; each test makes its own bucket."""

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _image_build_in_background(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                               ) -> Iterator[None]:
    """When the container image tests are to run, their minute-long image build starts now, on a
    thread (tests/support/image_build.py), and overlaps the tests before them."""
    if not any(item.nodeid.startswith(IMAGE_TESTS) for item in request.session.items):
        yield
        return
    build = ImageBuild(tmp_path_factory.mktemp("image-build"))
    request.config.stash[IMAGE_BUILD] = build
    yield
    build.close()
