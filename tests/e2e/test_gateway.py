"""Gateway mode with real parts: authgate in front of a stock distribution 2.8 (`docker-registry`),
driven by a real dockerd and skopeo. Clients talk only to authgate; the upstream sees only what the
guard allowed and only blobs whose digest authgate checked."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oci import sha256, write_oci_layout
from tests.support.processes import (
    AuthgateServer, Distribution, Dockerd, REPO_ROOT, free_port, require, token_auth_config, wait_for,
)

pytestmark = pytest.mark.e2e
PASSWORDS = {"alice": "alice-Pa55-word", "bob": "bob-Pa55-word"}


def _users(server: AuthgateServer) -> None:
    for name, password in PASSWORDS.items():
        server.cli("user", "add", name, "--password-stdin", input=password + "\n")


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    registry = Distribution(tmp_path_factory.mktemp("upstream"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def gateway(upstream: Distribution, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("gateway"), upstream=upstream.url,
                            policies=str(REPO_ROOT / "policies"), bcrypt_rounds="4").start()
    _users(server)
    server.cli("team", "create", "web")
    server.cli("team", "add", "web", "alice")
    yield server
    server.stop()


def _token(server: AuthgateServer, user: str, scope: str) -> dict[str, str]:
    response = httpx.get(f"{server.url}/token", params={"service": "authgate", "scope": scope},
                         auth=(user, PASSWORDS[user]))
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _upstream_catalog(upstream: Distribution) -> list[str]:
    names: list[str] = httpx.get(f"{upstream.url}/v2/_catalog").json()["repositories"]
    return names


def _upstream_has(upstream: Distribution, repository: str, digest: str) -> bool:
    return httpx.head(f"{upstream.url}/v2/{repository}/blobs/{digest}").status_code == 200


def test_docker_login_push_pull_run_with_team_permissions(gateway: AuthgateServer, upstream: Distribution,
                                                          dockerd: Dockerd) -> None:
    image = f"{gateway.registry}/web/hello"
    dockerd.run("login", "-u", "alice", "--password-stdin", gateway.registry, input=PASSWORDS["alice"])
    dockerd.build_busybox(image, message="hello through the gateway", extra_layers=1)
    dockerd.run("push", image)
    assert "web/hello" in _upstream_catalog(upstream)
    dockerd.run("rmi", image)
    dockerd.run("pull", image)
    assert dockerd.run("run", "--rm", "--network", "none", image).stdout.strip() == "hello through the gateway"

    # bob is not in team web: his push and pull are refused by authgate and never reach the upstream.
    dockerd.run("login", "-u", "bob", "--password-stdin", gateway.registry, input=PASSWORDS["bob"])
    intruder = f"{gateway.registry}/web/bob-was-here"
    dockerd.run("tag", image, intruder)
    refused = dockerd.run("push", intruder, check=False)
    assert refused.returncode != 0
    assert "denied" in refused.stderr.lower() or "insufficient_scope" in refused.stderr
    dockerd.run("rmi", image)
    assert dockerd.run("pull", image, check=False).returncode != 0
    assert "web/bob-was-here" not in upstream.daemon.output()
    assert "web/bob-was-here" not in _upstream_catalog(upstream)
    # the catalog through authgate shows bob only what he may pull
    catalog = httpx.get(f"{gateway.url}/v2/_catalog", auth=("bob", PASSWORDS["bob"])).json()["repositories"]
    assert "web/hello" not in catalog
    dockerd.run("logout", gateway.registry)


def test_tampered_upload_is_refused_and_absent_upstream(gateway: AuthgateServer, upstream: Distribution) -> None:
    headers = _token(gateway, "alice", "repository:alice/tamper:pull,push")
    content = b"what was really sent" * 1000
    claimed = sha256(b"what the client claims")
    with httpx.Client(base_url=gateway.url, headers=headers) as http:
        start = http.post("/v2/alice/tamper/blobs/uploads/")
        assert start.status_code == 202
        assert start.headers["location"].startswith("/v2/alice/tamper/blobs/uploads/")  # never the upstream's
        patch = http.patch(start.headers["location"], content=content,
                           headers={"Content-Type": "application/octet-stream"})
        assert patch.status_code == 202
        put = http.put(httpx.URL(patch.headers["location"]).copy_merge_params({"digest": claimed}))
    assert put.status_code == 400 and put.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not _upstream_has(upstream, "alice/tamper", claimed)
    assert not _upstream_has(upstream, "alice/tamper", sha256(content))


def test_skopeo_copies_a_multi_layer_image_both_ways(gateway: AuthgateServer, upstream: Distribution,
                                                     tmp_path: Path) -> None:
    require("skopeo")
    source = tmp_path / "source"
    digest = write_oci_layout(source, "v1", layers=3)
    remote = f"docker://{gateway.registry}/alice/multi:v1"
    creds = f"alice:{PASSWORDS['alice']}"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", creds, "--preserve-digests",
                    f"oci:{source}:v1", remote], check=True, capture_output=True, timeout=120)
    direct = httpx.get(f"{upstream.url}/v2/alice/multi/manifests/v1",
                       headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert direct.headers["docker-content-digest"] == digest
    out = tmp_path / "out"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--src-creds", creds, "--preserve-digests", remote,
                    f"oci:{out}:v1"], check=True, capture_output=True, timeout=120)
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == digest
    for blob in (source / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()


def test_upstream_stopped_mid_push_then_back(tmp_path: Path) -> None:
    port = free_port()
    registry = Distribution(tmp_path / "upstream", port=port)
    (tmp_path / "gateway").mkdir()
    server = AuthgateServer(tmp_path / "gateway", upstream=registry.url, upstream_health_interval="0.5",
                            bcrypt_rounds="4").start()
    try:
        _users(server)
        headers = _token(server, "alice", "repository:alice/fault:pull,push")
        chunk = b"\x5a" * (1024 * 1024)
        digest = "sha256:" + hashlib.sha256(chunk * 16).hexdigest()

        def body() -> Iterator[bytes]:
            for i in range(16):
                if i == 4:
                    registry.daemon.kill()
                yield chunk

        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            start = http.post("/v2/alice/fault/blobs/uploads/")
            assert start.status_code == 202
            try:
                broken = http.patch(start.headers["location"], content=body())
            except httpx.TransportError:
                pass  # the gateway may close the connection before the body is sent: also an error
            else:
                assert broken.status_code == 503
                assert broken.json()["errors"][0]["code"] == "UNAVAILABLE"
                assert f":{port}" not in broken.text
            down = http.post("/v2/alice/fault/blobs/uploads/")
            assert down.status_code == 503 and down.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert httpx.get(f"{server.url}/readyz").status_code == 503
            assert f"127.0.0.1:{port}" in server.log_text()  # the log names the upstream

            registry.stop()
            registry = Distribution(tmp_path / "upstream", port=port)
            assert not _upstream_has(registry, "alice/fault", digest)
            wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "readyz after recovery", 15)
            again = http.post("/v2/alice/fault/blobs/uploads/", params={"digest": digest}, content=chunk * 16)
            assert again.status_code == 201, again.text
        assert _upstream_has(registry, "alice/fault", digest)
    finally:
        server.stop()
        registry.stop()


def test_a_chunk_on_another_replica_continues_the_upload(upstream: Distribution, tmp_path: Path) -> None:
    """Two authgate processes sharing one data dir (database and keys) in front of one upstream: an
    upload opened on A continues on B and is committed on A, checked against the digest B
    recorded; a wrong digest there commits nothing."""
    first = AuthgateServer(tmp_path, upstream=upstream.url, bcrypt_rounds="4").start()
    second = AuthgateServer(tmp_path, upstream=upstream.url, bcrypt_rounds="4")
    second.workdir = tmp_path / "second"  # its own log file; the same data dir
    second.workdir.mkdir()
    second.start()
    try:
        _users(first)
        headers = _token(first, "alice", "repository:alice/replicas:pull,push")
        data = b"replicated upload" * 100
        digest = sha256(data)
        for claimed in (sha256(b"something else"), digest):
            opened = httpx.post(f"{first.url}/v2/alice/replicas/blobs/uploads/", headers=headers)
            assert opened.status_code == 202
            path = httpx.URL(opened.headers["location"]).raw_path.decode()
            elsewhere = httpx.patch(f"{second.url}{path}", content=data, headers=headers)
            assert elsewhere.status_code == 202, elsewhere.text
            path = httpx.URL(elsewhere.headers["location"]).raw_path.decode()
            done = httpx.put(f"{first.url}{path}", params={"digest": claimed}, headers=headers)
            if claimed != digest:
                assert done.status_code == 400 and done.json()["errors"][0]["code"] == "DIGEST_INVALID"
                assert not _upstream_has(upstream, "alice/replicas", digest)
                assert not _upstream_has(upstream, "alice/replicas", claimed)
        assert done.status_code == 201, done.text
        assert _upstream_has(upstream, "alice/replicas", digest)
    finally:
        second.stop()
        first.stop()


def test_upstream_in_token_mode_trusts_only_authgate(tmp_path: Path, dockerd: Dockerd) -> None:
    """Defence in depth: the upstream (`auth: token`, trusting authgate's certificate) refuses direct
    pushes; authgate reaches it with tokens it mints per request, scoped to that request."""
    port = free_port()
    (tmp_path / "gateway").mkdir()
    server = AuthgateServer(tmp_path / "gateway", upstream=f"http://127.0.0.1:{port}", upstream_auth="token",
                            upstream_health_interval="0.5", bcrypt_rounds="4").start()
    bundle = tmp_path / "authgate.pem"
    server.cli("keys", "export-cert", "--output", str(bundle))
    registry = Distribution(tmp_path / "upstream", port=port,
                            extra_config=token_auth_config(f"{server.url}/token", "authgate-upstream",
                                                           "authgate", bundle))
    try:
        _users(server)
        assert httpx.post(f"{registry.url}/v2/alice/defended/blobs/uploads/").status_code == 401
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "readyz with token auth", 15)
        image = f"{server.registry}/alice/defended"
        dockerd.run("login", "-u", "alice", "--password-stdin", server.registry, input=PASSWORDS["alice"])
        dockerd.build_busybox(image, message="defence in depth")
        dockerd.run("push", image)
        dockerd.run("rmi", image)
        dockerd.run("pull", image)
        dockerd.run("logout", server.registry)
        catalog = httpx.get(f"{server.url}/v2/_catalog", auth=("alice", PASSWORDS["alice"]))
        assert catalog.json()["repositories"] == ["alice/defended"]
    finally:
        server.stop()
        registry.stop()
