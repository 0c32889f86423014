"""`authgate gc` on the S3 store (a real SeaweedFS): what no manifest references goes, the rest stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.registry_support import registry_client
from tests.api.test_registry_api import ALICE, push_blob, push_image, sha
from tests.api.test_registry_s3 import bucket, bucket_keys, s3_settings  # noqa: F401 - the fixture
from tests.support.processes import authgate_env, run_cli
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_gc_frees_unreferenced_blobs_on_s3(tmp_path: Path,
                                                 seaweedfs: SeaweedFS, bucket: str) -> None:  # noqa: F811
    settings = s3_settings(seaweedfs, bucket)
    env = authgate_env(tmp_path / "data", **{k: str(v) for k, v in settings.items()})
    env.update(seaweedfs.env())
    async with registry_client(tmp_path, **settings) as app:
        http = app.http
        await push_image(http, layer=b"kept layer")
        orphan = await push_blob(http, b"nobody references me")
        young = run_cli(env, "gc")  # default grace: everything is young
        assert "freed 0 blobs" in young.stdout
        dry = run_cli(env, "gc", "--dry-run", "--grace", "0")
        assert f"would free {orphan}" in dry.stdout and "would free 1 blobs" in dry.stdout
        assert (await http.get(f"/v2/alice/app/blobs/{orphan}", headers=ALICE)).status_code == 200
        done = run_cli(env, "gc", "--grace", "0")
        assert f"freed {orphan}" in done.stdout and "kept 3 referenced" in done.stdout, done.stdout
        assert (await http.get(f"/v2/alice/app/blobs/{orphan}", headers=ALICE)).status_code == 404
        for kept in (sha(b"kept layer"), sha(b"{}")):
            assert (await http.get(f"/v2/alice/app/blobs/{kept}", headers=ALICE)).status_code == 200
        assert (await http.get("/v2/alice/app/manifests/v1", headers=ALICE)).status_code == 200
    keys = await bucket_keys(seaweedfs, bucket)
    assert len([k for k in keys if k.startswith("data/")]) == 3  # config, layer, manifest: the orphan's bytes went
    assert f"_layers/sha256/{orphan[7:]}" not in "\n".join(keys)
