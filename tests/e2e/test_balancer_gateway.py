"""Gateway mode behind a balancer, without pinning: nginx round robin in front of three authgate
replicas (each its own process and empty data dir, sharing PostgreSQL), in front of two
docker-registry (distribution 2.8) on one SeaweedFS bucket sharing one `http.secret`. Replicas a and
c talk to the first registry, b to the second, so an upload moves between registries as well.
docker pushes and pulls a multi-layer image; a chunked upload's requests land on all three
replicas; a replica killed in the middle of a push leaves docker's retry to finish through the
others, and nothing corrupt is stored; the audit chain all replicas wrote verifies, and a policy
change or `user disable` reaches every replica."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.support.balancer import (AUTH, OWN_NAMESPACE, PASSWORD, Balancer, alive, audit_chain_verifies,
                                    chunked_upload_over_three_replicas, docker_round_trip, on,
                                    policy_change_reaches_every_replica, push_while_a_replica_dies, replica,
                                    user_disable_reaches_every_replica)
from tests.support.processes import AuthgateServer, Dockerd, Postgres, free_port
from tests.support.seaweedfs import S3Distribution, SeaweedFS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS) -> Iterator[list[S3Distribution]]:
    prefix, secret = seaweedfs.new_prefix(), secrets.token_hex(16)
    upstreams = [S3Distribution(tmp_path_factory.mktemp(f"registry-{n}"), seaweedfs, prefix, secret) for n in range(2)]
    yield upstreams
    for upstream in upstreams:
        upstream.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, registries: list[S3Distribution], postgres: Postgres
            ) -> Iterator[tuple[Balancer, list[AuthgateServer]]]:
    ports = [free_port() for _ in range(3)]
    balancer_port = free_port()
    policies = tmp_path_factory.mktemp("policies")
    (policies / "registry.yaml").write_text(OWN_NAMESPACE)
    shared = {"policies": str(policies), "database_url": postgres.create_database(),
              "public_url": f"http://127.0.0.1:{balancer_port}", "trusted_proxies": "127.0.0.1/32",
              "bcrypt_rounds": "4"}
    replicas: list[AuthgateServer] = []
    for n, port in enumerate(ports):
        settings = {**shared, "upstream": registries[n % 2].url}
        replicas.append(replica(tmp_path_factory.mktemp(f"gateway-{n}"), settings, None,
                                replicas[0] if replicas else None, port))
    for user in ("alice", "bob"):
        replicas[0].cli("user", "add", user, "--password-stdin", input=PASSWORD + "\n")
    balancer = Balancer(tmp_path_factory.mktemp("nginx"), balancer_port, [f"127.0.0.1:{p}" for p in ports])
    yield balancer, replicas
    balancer.stop()
    for server in replicas:
        server.stop()


def test_docker_push_and_pull_through_the_balancer(cluster: tuple[Balancer, list[AuthgateServer]],
                                                   dockerd: Dockerd) -> None:
    balancer, _ = cluster
    printed = docker_round_trip(balancer, dockerd, "alice/gateway-balanced", "hello through the gateways", PASSWORD)
    assert printed == "hello through the gateways"
    uploads = [line.split() for line in balancer.log_text().splitlines() if "/blobs/uploads/" in line]
    assert len({fields[3] for fields in uploads}) == 3  # the upload steps were spread over every replica


def test_chunked_upload_lands_on_three_replicas(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    chunked_upload_over_three_replicas(cluster[0], AUTH)


def test_a_corrupt_chunk_through_the_balancer_is_refused(cluster: tuple[Balancer, list[AuthgateServer]],
                                                         registries: list[S3Distribution]) -> None:
    balancer, _ = cluster
    meant = [b"a" * (5 * 1024 * 1024), b"b" * 1024 * 1024]
    digest = f"sha256:{hashlib.sha256(b''.join(meant)).hexdigest()}"
    location = httpx.post(f"{balancer.url}/v2/alice/corrupt/blobs/uploads/", auth=AUTH).headers["location"]
    offset = 0
    for chunk in (meant[0], b"b" * (1024 * 1024 - 1) + b"!"):
        response = httpx.patch(on(balancer, location), content=chunk, auth=AUTH, timeout=60,
                               headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        assert response.status_code == 202, response.text
        offset += len(chunk)
        location = response.headers["location"]
    refused = httpx.put(on(balancer, location), params={"digest": digest}, auth=AUTH, timeout=60)
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    for registry in registries:
        assert httpx.head(f"{registry.url}/v2/alice/corrupt/blobs/{digest}").status_code == 404


def test_audit_chain_of_all_replicas_verifies(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    audit_chain_verifies(cluster[1])


def test_a_policy_change_reaches_every_replica(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    policy_change_reaches_every_replica(cluster[1], PASSWORD)


def test_user_disable_on_one_replica_is_refused_by_every_replica(
        cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    user_disable_reaches_every_replica(cluster[1], PASSWORD)


def test_docker_push_survives_a_replica_killed_in_the_middle(
        cluster: tuple[Balancer, list[AuthgateServer]], dockerd: Dockerd, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """kill -9 of the replica receiving a layer while docker pushes through the balancer: that
    request fails, docker retries the layer (through the replicas left) and the push succeeds."""
    balancer, replicas = cluster
    running = alive(replicas)
    assert len(running) == 3
    pushed, pulled_back_whole = push_while_a_replica_dies(balancer, running, dockerd,
                                                          tmp_path_factory.mktemp("crash"), "alice/crash-push",
                                                          PASSWORD)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert pulled_back_whole()
