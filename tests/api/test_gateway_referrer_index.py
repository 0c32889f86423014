"""The gateway's referrers index beyond one request: shared by replicas through the database, and
a database that fails is a 503 for the listing, never a lost push or a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.console.support import add_user, console_app, give_seal_key, push_image, put_manifest
from tests.support.processes import Distribution

pytestmark = pytest.mark.anyio
ALICE = ("alice", "alice-password")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Distribution]:
    server = Distribution(tmp_path / "upstream")
    yield server
    server.stop()


def _referrer(subject: str) -> dict[str, object]:
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
            "config": EMPTY, "layers": [EMPTY], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}


async def test_a_referrer_pushed_through_one_replica_is_listed_by_another(tmp_path: Path,
                                                                         upstream: Distribution) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with console_app(tmp_path / "a", database_url=database, upstream=upstream.url) as (first, resources):
        await add_user(resources, *ALICE)
        subject = await push_image(first, ALICE, "alice/app", "v1")
        await push_image(first, ALICE, "alice/app", "empty", b"{}")  # puts the empty blob in the repository
        referrer = await put_manifest(first, ALICE, "alice/app", "sbom", _referrer(subject))
        give_seal_key(tmp_path / "a", tmp_path / "b")
        async with console_app(tmp_path / "b", database_url=database, upstream=upstream.url) as (second, _):
            listed = await second.get(f"/v2/alice/app/referrers/{subject}", auth=ALICE)
            assert [m["digest"] for m in listed.json()["manifests"]] == [referrer]
            assert (await second.delete(f"/v2/alice/app/manifests/{referrer}", auth=ALICE)).status_code == 202
        assert (await first.get(f"/v2/alice/app/referrers/{subject}", auth=ALICE)).json()["manifests"] == []


async def test_a_failing_index_loses_no_push_and_lists_with_503(tmp_path: Path, upstream: Distribution) -> None:
    async with console_app(tmp_path, upstream=upstream.url) as (client, resources):
        await add_user(resources, *ALICE)
        subject = await push_image(client, ALICE, "alice/app", "v1")
        await push_image(client, ALICE, "alice/app", "empty", b"{}")
        async with resources.db.session() as session:
            await session.execute(text("DROP TABLE gateway_referrers"))
        body = json.dumps(_referrer(subject)).encode()
        pushed = await client.put("/v2/alice/app/manifests/sbom", content=body, auth=ALICE,
                                  headers={"Content-Type": OCI_MANIFEST})
        assert pushed.status_code == 201 and pushed.headers["oci-subject"] == subject
        assert (await client.get("/v2/alice/app/manifests/sbom", auth=ALICE,
                                 headers={"Accept": OCI_MANIFEST})).content == body
        listed = await client.get(f"/v2/alice/app/referrers/{subject}", auth=ALICE)
        assert listed.status_code == 503 and listed.json()["errors"][0]["code"] == "UNAVAILABLE"
