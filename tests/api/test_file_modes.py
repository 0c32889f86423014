"""What other local users can read in a fresh data dir: nothing (password hashes, private images, keys)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.api.registry_support import basic, registry_client

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _others_bits(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o077


async def test_a_fresh_data_dir_is_private(tmp_path: Path) -> None:
    # Created under the usual umask 022: the database (password hashes) and blobs (private images)
    # inside were readable by every local user.
    previous = os.umask(0o022)
    try:
        async with registry_client(tmp_path) as app:
            http = app.http
            pushed = await http.post("/v2/alice/app/blobs/uploads/", params={
                "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
                content=b"hello", headers=basic("alice", "alice-pw"))
            assert pushed.status_code == 201
    finally:
        os.umask(previous)
    data = tmp_path / "data"
    assert (data / "authgate.db").exists() and any((data / "registry" / "blobs").rglob("*"))
    assert _others_bits(data) == 0
    assert _others_bits(data / "keys") == 0
    for key in (data / "keys").glob("*.key"):
        assert _others_bits(key) == 0


async def test_an_existing_open_data_dir_gets_private_database_and_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A host bind mount is typically 0755: authgate.db was created 0644 in it, the store 0755.
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    (data / "registry").mkdir(mode=0o755)
    os.chmod(data / "registry", 0o755)
    previous = os.umask(0o022)
    try:
        async with registry_client(tmp_path) as app:
            http = app.http
            pushed = await http.post("/v2/alice/app/blobs/uploads/", params={
                "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
                content=b"hello", headers=basic("alice", "alice-pw"))
            assert pushed.status_code == 201
    finally:
        os.umask(previous)
    assert _others_bits(data) == 0o055, "the directory itself is the operator's"
    for path in [data / "authgate.db", *data.glob("authgate.db-*")]:
        assert _others_bits(path) == 0, path
    assert _others_bits(data / "registry") == 0
    assert "blob store" in caplog.text and "made it 700" in caplog.text
