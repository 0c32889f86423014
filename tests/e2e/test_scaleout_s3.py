"""Two authgate processes sharing PostgreSQL and one S3 bucket (a real SeaweedFS), as two replicas
would: docker pushes through one and pulls through the other, a chunked upload hops between them,
skopeo copies a multi-layer image, and a pull with `s3_redirect` gets its bytes from the store."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.balancer import on, replica
from tests.support.oci import sha256, write_oci_layout
from tests.support.processes import AuthgateServer, Dockerd, Postgres, require
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.e2e
PASSWORD = "alice-secret-pw"
AUTH = ("alice", PASSWORD)


@pytest.fixture(scope="module")
def shared(seaweedfs: SeaweedFS, postgres: Postgres) -> dict[str, str]:
    """What every replica is configured with: one database, one bucket (prefix)."""
    return {**seaweedfs.settings(seaweedfs.new_prefix()), "database_url": postgres.create_database()}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, shared: dict[str, str]
             ) -> Iterator[tuple[AuthgateServer, AuthgateServer]]:
    first = replica(tmp_path_factory.mktemp("replica-a"), shared, seaweedfs.env())
    first.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    second = replica(tmp_path_factory.mktemp("replica-b"), shared, seaweedfs.env(), keys_from=first)
    yield first, second
    first.stop()
    second.stop()


def test_docker_push_on_one_replica_pull_on_the_other(replicas: tuple[AuthgateServer, AuthgateServer],
                                                      dockerd: Dockerd) -> None:
    first, second = replicas
    dockerd.run("login", "-u", "alice", "--password-stdin", first.registry, input=PASSWORD)
    dockerd.run("login", "-u", "alice", "--password-stdin", second.registry, input=PASSWORD)
    dockerd.build_busybox(f"{first.registry}/alice/s3hello", message="hello from S3", extra_layers=2)
    dockerd.run("push", f"{first.registry}/alice/s3hello")
    assert not list((first.data / "registry").rglob("*sha256*"))  # the bytes are in the bucket, not the data dir
    image = f"{second.registry}/alice/s3hello"
    dockerd.run("pull", image)
    assert dockerd.run("run", "--rm", "--network", "none", image).stdout.strip() == "hello from S3"
    assert "alice/s3hello" in httpx.get(f"{second.url}/v2/_catalog", auth=AUTH).json()["repositories"]


def test_docker_pull_with_redirect_gets_the_bytes_from_the_store(
        replicas: tuple[AuthgateServer, AuthgateServer], dockerd: Dockerd, seaweedfs: SeaweedFS,
        shared: dict[str, str], tmp_path: Path) -> None:
    first, _ = replicas
    redirecting = replica(tmp_path, {**shared, "s3_redirect": "true"}, seaweedfs.env(), keys_from=first)
    try:
        for server in (first, redirecting):
            dockerd.run("login", "-u", "alice", "--password-stdin", server.registry, input=PASSWORD)
        dockerd.build_busybox(f"{first.registry}/alice/redirected", message="redirected", extra_layers=1)
        dockerd.run("push", f"{first.registry}/alice/redirected")
        dockerd.run("rmi", f"{first.registry}/alice/redirected")  # its own layer must come over the wire
        image = f"{redirecting.registry}/alice/redirected"
        dockerd.run("pull", image)
        assert dockerd.run("run", "--rm", "--network", "none", image).stdout.strip() == "redirected"
        manifest = httpx.get(f"{redirecting.url}/v2/alice/redirected/manifests/latest", auth=AUTH,
                             headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}).json()
        layer = httpx.get(f"{redirecting.url}/v2/alice/redirected/blobs/{manifest['layers'][0]['digest']}", auth=AUTH)
        assert layer.status_code == 307 and layer.headers["location"].startswith(seaweedfs.endpoint)
    finally:
        redirecting.stop()


def test_chunked_upload_hops_between_replicas(replicas: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, second = replicas
    part = 5 * 1024 * 1024
    chunks = [bytes([n]) * (part + 1000 * n + 7) for n in range(1, 4)] + [b"last few bytes"]
    whole = b"".join(chunks)
    digest = f"sha256:{hashlib.sha256(whole).hexdigest()}"
    servers = [first, second, first, second]
    location = httpx.post(f"{first.url}/v2/alice/hop/blobs/uploads/", auth=AUTH).headers["location"]
    offset = 0
    for server, chunk in zip(servers, chunks[:-1]):
        response = httpx.patch(on(server, location), content=chunk, auth=AUTH, timeout=60,
                               headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert response.status_code == 202, response.text
        offset += len(chunk)
        assert response.headers["range"] == f"0-{offset - 1}"
        location = response.headers["location"]
    done = httpx.put(on(second, location), params={"digest": digest}, content=chunks[-1], auth=AUTH, timeout=60)
    assert done.status_code == 201, done.text
    pulled = httpx.get(f"{first.url}/v2/alice/hop/blobs/{digest}", auth=AUTH, timeout=60)
    assert hashlib.sha256(pulled.content).hexdigest() == digest[7:]


def test_skopeo_copy_through_both_replicas(replicas: tuple[AuthgateServer, AuthgateServer], tmp_path: Path) -> None:
    require("skopeo")
    first, second = replicas
    digest = write_oci_layout(tmp_path / "source", "v1", layers=3)
    creds = f"alice:{PASSWORD}"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", creds, "--preserve-digests",
                    f"oci:{tmp_path / 'source'}:v1", f"docker://{first.registry}/alice/multi:v1"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--src-creds", creds, "--preserve-digests",
                    f"docker://{second.registry}/alice/multi:v1", f"oci:{tmp_path / 'out'}:v1"],
                   check=True, capture_output=True, timeout=120)
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"][0]["digest"] == digest
    assert sha256((tmp_path / "out" / "blobs" / "sha256" / digest[7:]).read_bytes()) == digest


def test_audit_chain_of_both_replicas_verifies(replicas: tuple[AuthgateServer, AuthgateServer]) -> None:
    first, _ = replicas
    result = first.cli("audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
