"""Referrers through the gateway with a real client: oras attaches an SBOM to an image in front of
a stock distribution 2.8, which has no referrers API; authgate answers from its index."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oci import write_oci_layout
from tests.support.processes import AuthgateServer, Distribution, require

pytestmark = pytest.mark.e2e
PASSWORD = "alice-Pa55-word"
AUTH = ("alice", PASSWORD)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    registry = Distribution(tmp_path_factory.mktemp("upstream"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def gateway(upstream: Distribution, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("gateway"), upstream=upstream.url, bcrypt_rounds="4").start()
    server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    yield server
    server.stop()


def test_oras_attaches_an_sbom_through_the_gateway(gateway: AuthgateServer, upstream: Distribution,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require("skopeo")
    import oras.oci
    import oras.provider

    write_oci_layout(tmp_path / "image", "v1", layers=1)
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"alice:{PASSWORD}",
                    "--preserve-digests", f"oci:{tmp_path / 'image'}:v1", f"docker://{gateway.registry}/alice/art:v1"],
                   check=True, capture_output=True, timeout=120)
    manifest = httpx.get(f"{gateway.url}/v2/alice/art/manifests/v1", auth=AUTH,
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    subject = oras.oci.Subject(manifest.headers["content-type"], manifest.headers["docker-content-digest"],
                               len(manifest.content))
    # The upstream itself knows nothing of referrers.
    assert httpx.get(f"{upstream.url}/v2/alice/art/referrers/{subject.digest}").status_code == 404

    (tmp_path / "sbom.json").write_text('{"packages": []}')
    monkeypatch.chdir(tmp_path)
    # oras-py reuses its first token whatever scope a later challenge names, so it pushes with Basic
    # credentials on every request, which /v2/ accepts like the `registry` image does.
    registry = oras.provider.Registry(hostname=gateway.registry, insecure=True, auth_backend="basic")
    registry.auth.set_basic_auth("alice", PASSWORD)
    response = registry.push(f"{gateway.registry}/alice/art:sbom", files=["sbom.json:application/spdx+json"],
                             subject=subject, quiet=True)
    assert response.status_code == 201
    assert response.headers["oci-subject"] == subject.digest
    sbom = httpx.get(f"{gateway.url}/v2/alice/art/manifests/sbom", auth=AUTH,
                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    listing = httpx.get(f"{gateway.url}/v2/alice/art/referrers/{subject.digest}", auth=AUTH)
    assert listing.status_code == 200
    assert listing.json()["manifests"] == [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sbom.headers["docker-content-digest"],
        "size": len(sbom.content), "artifactType": json.loads(sbom.content).get("artifactType")
        or json.loads(sbom.content)["config"]["mediaType"]}]

    # A referrer pushed to the upstream directly passes no authgate: not indexed (docs/gateway.md).
    direct = dict(json.loads(sbom.content), annotations={"pushed": "around authgate"})
    body = json.dumps(direct).encode()
    assert httpx.put(f"{upstream.url}/v2/alice/art/manifests/direct", content=body,
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}).status_code == 201
    again = httpx.get(f"{gateway.url}/v2/alice/art/referrers/{subject.digest}", auth=AUTH).json()["manifests"]
    assert [m["digest"] for m in again] == [sbom.headers["docker-content-digest"]]

    # Deleted through authgate: gone from the listing.
    deleted = httpx.delete(f"{gateway.url}/v2/alice/art/manifests/{sbom.headers['docker-content-digest']}", auth=AUTH)
    assert deleted.status_code == 202
    assert httpx.get(f"{gateway.url}/v2/alice/art/referrers/{subject.digest}", auth=AUTH).json()["manifests"] == []
