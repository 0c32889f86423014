"""The embedded registry with real clients: docker (the `registry` image walkthrough), skopeo, oras,
and a kill -9 in the middle of pushes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.oci import check_store, sha256, write_oci_layout
from tests.support.processes import AuthgateServer, Dockerd, require

pytestmark = pytest.mark.e2e
PASSWORD = "alice-secret-pw"
AUTH = ("alice", PASSWORD)


def _start(workdir: Path) -> AuthgateServer:
    server = AuthgateServer(workdir).start()
    server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = _start(tmp_path_factory.mktemp("authgate-embedded"))
    yield server
    server.stop()


def _token(server: AuthgateServer, scope: str) -> str:
    response = httpx.get(f"{server.url}/token", params={"service": "authgate", "scope": scope}, auth=AUTH)
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def test_docker_walkthrough(server: AuthgateServer, dockerd: Dockerd) -> None:
    image = f"{server.registry}/alice/hello"
    dockerd.run("login", "-u", "alice", "--password-stdin", server.registry, input=PASSWORD)
    dockerd.build_busybox(image, message="hello through authgate")
    dockerd.run("push", image)

    catalog = httpx.get(f"{server.url}/v2/_catalog",
                        headers={"Authorization": f"Bearer {_token(server, 'registry:catalog:*')}"})
    assert "alice/hello" in catalog.json()["repositories"]
    assert "alice/hello" in httpx.get(f"{server.url}/v2/_catalog", auth=AUTH).json()["repositories"]  # curl -u

    dockerd.run("rmi", image)
    dockerd.run("pull", image)
    output = dockerd.run("run", "--rm", "--network", "none", image).stdout
    assert output.strip() == "hello through authgate"
    # a second repository: docker mounts the layer across (its token adds pull on the source)
    dockerd.run("tag", image, f"{server.registry}/alice/copy")
    assert "Mounted from alice/hello" in dockerd.run("push", f"{server.registry}/alice/copy").stdout
    assert check_store(server.data) == []


def test_skopeo_copy_in_and_out_keeps_digests(server: AuthgateServer, tmp_path: Path) -> None:
    require("skopeo")
    source = tmp_path / "source"
    digest = write_oci_layout(source, "v1", layers=3)
    remote = f"docker://{server.registry}/alice/multi:v1"
    creds = f"alice:{PASSWORD}"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", creds, "--preserve-digests",
                    f"oci:{source}:v1", remote], check=True, capture_output=True, timeout=120)
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", creds, remote],
                         check=True, capture_output=True, timeout=60).stdout
    assert sha256(raw) == digest
    out = tmp_path / "out"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--src-creds", creds, "--preserve-digests", remote,
                    f"oci:{out}:v1"], check=True, capture_output=True, timeout=120)
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == digest
    for blob in (source / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()


def test_oras_artifact_with_subject_shows_in_referrers(server: AuthgateServer, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import oras.oci
    import oras.provider

    write_oci_layout(tmp_path / "image", "v1", layers=1)
    creds = f"alice:{PASSWORD}"
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", creds, "--preserve-digests",
                    f"oci:{tmp_path / 'image'}:v1", f"docker://{server.registry}/alice/art:v1"],
                   check=True, capture_output=True, timeout=120)
    manifest = httpx.get(f"{server.url}/v2/alice/art/manifests/v1", auth=AUTH)
    subject = oras.oci.Subject(manifest.headers["content-type"], manifest.headers["docker-content-digest"],
                               len(manifest.content))
    (tmp_path / "sbom.json").write_text('{"packages": []}')
    monkeypatch.chdir(tmp_path)
    # oras-py reuses its first token whatever scope a later challenge names, so it pushes with Basic
    # credentials on every request, which /v2/ accepts like the `registry` image does.
    registry = oras.provider.Registry(hostname=server.registry, insecure=True, auth_backend="basic")
    registry.auth.set_basic_auth("alice", PASSWORD)
    response = registry.push(f"{server.registry}/alice/art:sbom", files=["sbom.json:application/spdx+json"],
                             subject=subject, quiet=True)
    assert response.status_code == 201
    assert response.headers["oci-subject"] == subject.digest
    listing = httpx.get(f"{server.url}/v2/alice/art/referrers/{subject.digest}", auth=AUTH).json()
    assert [m["digest"] for m in listing["manifests"]] == [
        httpx.get(f"{server.url}/v2/alice/art/manifests/sbom", auth=AUTH).headers["docker-content-digest"]]


def _send_partial(server: AuthgateServer, request_line: str, total: int, sent: int) -> socket.socket:
    """A request that declares `total` body bytes and sends only `sent`: the server is mid-upload."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    basic = httpx.BasicAuth(*AUTH)._auth_header
    sock.sendall((f"{request_line} HTTP/1.1\r\nHost: {server.registry}\r\nAuthorization: {basic}\r\n"
                  f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n").encode())
    sock.sendall(b"x" * sent)
    return sock


def test_client_disconnect_leaves_a_resumable_session_or_nothing(server: AuthgateServer) -> None:
    client = httpx.Client(base_url=server.url, auth=AUTH, timeout=30)
    uploads = server.data / "registry" / "uploads"
    before = set(uploads.iterdir())
    monolithic = _send_partial(server, f"POST /v2/alice/gone/blobs/uploads/?digest={sha256(b'x')}", 4 << 20, 1 << 20)
    monolithic.close()
    location = client.post("/v2/alice/resume/blobs/uploads/").headers["location"]
    _send_partial(server, f"PATCH {location}", total=4 << 20, sent=2 << 20).close()
    threading.Event().wait(1.0)
    session = location.rsplit("/", 1)[1]
    assert {p.name for p in set(uploads.iterdir()) - before} == {session}  # the monolithic one left nothing
    received = (uploads / session / "data").stat().st_size  # a prefix of what was sent
    assert received <= 2 << 20
    assert client.get(location).headers["range"] == f"0-{max(received - 1, 0)}"
    resumed = client.patch(location, content=b"x" * ((3 << 20) - received),
                           headers={"Content-Range": f"{received}-{(3 << 20) - 1}"})
    assert resumed.status_code == 202, resumed.text
    assert client.put(f"{location}?digest={sha256(b'x' * (3 << 20))}").status_code == 201


def test_kill_9_mid_upload_and_mid_tag_moves_restarts_consistent(tmp_path: Path) -> None:
    server = _start(tmp_path)
    try:
        client = httpx.Client(base_url=server.url, auth=AUTH, timeout=30)
        config = b"{}"
        client.post(f"/v2/alice/app/blobs/uploads/?digest={sha256(config)}", content=config).raise_for_status()
        manifests = []
        for i in range(20):
            manifests.append(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                         "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                                    "digest": sha256(config), "size": 2},
                                         "layers": [], "annotations": {"n": str(i)}}).encode())
        location = client.post("/v2/alice/app/blobs/uploads/").headers["location"]
        sock = _send_partial(server, f"PATCH {location}", total=8 << 20, sent=3 << 20)
        stop = threading.Event()

        def move_tags() -> None:  # bounded: at most 2000 pushes
            for n in range(2000):
                if stop.is_set():
                    return
                try:
                    client.put(f"/v2/alice/app/manifests/latest", content=manifests[n % 20],
                               headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
                except httpx.HTTPError:
                    return

        mover = threading.Thread(target=move_tags)
        mover.start()
        threading.Event().wait(1.5)
        assert server.daemon is not None
        server.daemon.kill()
        stop.set()
        mover.join(30)
        sock.close()
        server.start()

        assert check_store(server.data) == []
        assert client.get("/v2/alice/app/manifests/latest").status_code == 200
        status = client.get(location)
        assert status.status_code == 204
        received = int(status.headers["range"].split("-")[1]) + 1
        assert 0 < received <= 3 << 20
        rest = b"x" * ((5 << 20) - received)
        resumed = client.patch(location, content=rest, headers={"Content-Range": f"{received}-{(5 << 20) - 1}"})
        assert resumed.status_code == 202, resumed.text
        done = client.put(f"{location}?digest={sha256(b'x' * (5 << 20))}")
        assert done.status_code == 201, done.text
        assert client.get(done.headers["location"]).content == b"x" * (5 << 20)
        assert check_store(server.data) == []
    finally:
        server.stop()
        shutil.rmtree(server.data / "registry", ignore_errors=True)
