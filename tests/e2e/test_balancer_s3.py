"""Three authgate replicas behind nginx round robin, each its own process with its own empty data
dir, sharing PostgreSQL and one S3 bucket (a real SeaweedFS): docker through the balancer, a chunked
upload whose PATCHes land on three different replicas, and a replica killed in the middle of an
upload whose client then finishes through the others with nothing corrupt stored."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.balancer import (AUTH, OWN_NAMESPACE, PASSWORD, Balancer, alive, audit_chain_verifies,
                                    chunked_upload_over_three_replicas, docker_round_trip, on,
                                    policy_change_reaches_every_replica, push_while_a_replica_dies, replica,
                                    user_disable_reaches_every_replica)
from tests.support.processes import AuthgateServer, Dockerd, Postgres, free_port
from tests.support.seaweedfs import SeaweedFS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, postgres: Postgres
            ) -> Iterator[tuple[Balancer, list[AuthgateServer]]]:
    ports = [free_port() for _ in range(3)]
    balancer_port = free_port()
    policies = tmp_path_factory.mktemp("policies")  # one directory every replica reads (a shared volume)
    (policies / "registry.yaml").write_text(OWN_NAMESPACE)
    settings = {"policies": str(policies), **seaweedfs.settings(seaweedfs.new_prefix()), "database_url": postgres.create_database(),
                "public_url": f"http://127.0.0.1:{balancer_port}", "trusted_proxies": "127.0.0.1/32",
                "bcrypt_rounds": "4"}
    replicas: list[AuthgateServer] = []
    for n, port in enumerate(ports):  # the same signing keys everywhere
        replicas.append(replica(tmp_path_factory.mktemp(f"replica-{n}"), settings, seaweedfs.env(),
                                replicas[0] if replicas else None, port))
    for user in ("alice", "bob"):
        replicas[0].cli("user", "add", user, "--password-stdin", input=PASSWORD + "\n")
    balancer = Balancer(tmp_path_factory.mktemp("nginx"), balancer_port, [f"127.0.0.1:{p}" for p in ports])
    yield balancer, replicas
    balancer.stop()
    for server in replicas:
        server.stop()


def test_docker_through_the_balancer(cluster: tuple[Balancer, list[AuthgateServer]], dockerd: Dockerd) -> None:
    balancer, _ = cluster
    printed = docker_round_trip(balancer, dockerd, "alice/balanced", "hello through three replicas", PASSWORD)
    assert printed == "hello through three replicas"
    assert len(set(balancer.upstreams_of("PUT")) | set(balancer.upstreams_of("GET"))) == 3


def test_chunked_upload_lands_on_three_replicas(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    chunked_upload_over_three_replicas(cluster[0], AUTH)


def test_replica_killed_mid_upload(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    """kill -9 of the replica receiving a chunk: the client asks the balancer where the session stands
    (nginx skips the dead replica), resends from there, and the blob is whole."""
    balancer, replicas = cluster
    first = bytes(range(256)) * (24 * 1024)  # 6 MiB
    second = os.urandom(12 * 1024 * 1024)
    digest = f"sha256:{hashlib.sha256(first + second).hexdigest()}"
    location = httpx.post(f"{balancer.url}/v2/alice/crash/blobs/uploads/", auth=AUTH).headers["location"]
    response = httpx.patch(on(balancer, location), content=first, auth=AUTH, timeout=60)
    location = response.headers["location"]
    victim = replicas[2]  # the replica the balancer handed the next chunk to
    sent = threading.Event()

    def slow_body() -> Iterator[bytes]:
        for n in range(0, len(second), 1024 * 1024):
            yield second[n:n + 1024 * 1024]
            if n >= 4 * 1024 * 1024:
                sent.set()
                time.sleep(0.5)

    def kill_victim() -> None:
        sent.wait(60)
        assert victim.daemon is not None
        victim.daemon.kill()

    killer = threading.Thread(target=kill_victim)
    killer.start()
    with pytest.raises(httpx.HTTPError):
        httpx.patch(f"{victim.url}{httpx.URL(location).raw_path.decode()}", content=slow_body(), auth=AUTH,
                    timeout=60).raise_for_status()
    killer.join()
    status = httpx.get(on(balancer, location), auth=AUTH, timeout=30)
    assert status.status_code == 204, status.text
    assert status.headers["range"] == f"0-{len(first) - 1}"  # the interrupted chunk left nothing behind
    resumed = httpx.patch(on(balancer, status.headers["location"]), content=second, auth=AUTH, timeout=60,
                          headers={"Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"})
    assert resumed.status_code == 202, resumed.text
    done = httpx.put(on(balancer, resumed.headers["location"]), params={"digest": digest}, auth=AUTH, timeout=60)
    assert done.status_code == 201, done.text
    pulled = httpx.get(f"{balancer.url}/v2/alice/crash/blobs/{digest}", auth=AUTH, timeout=60)
    assert hashlib.sha256(pulled.content).hexdigest() == digest[7:]


def test_audit_chain_of_all_replicas_verifies(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    audit_chain_verifies(cluster[1])


def test_a_policy_change_reaches_every_replica(cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    policy_change_reaches_every_replica(cluster[1], PASSWORD)


def test_user_disable_on_one_replica_is_refused_by_every_replica(
        cluster: tuple[Balancer, list[AuthgateServer]]) -> None:
    user_disable_reaches_every_replica(cluster[1], PASSWORD)


def test_docker_push_survives_a_replica_killed_in_the_middle(
        cluster: tuple[Balancer, list[AuthgateServer]], dockerd: Dockerd, tmp_path: Path) -> None:
    """kill -9 of a replica while docker pushes through the balancer: docker's own retries (or the
    user's second `docker push`) finish through the replicas left, and what is pulled back is whole."""
    balancer, replicas = cluster
    running = alive(replicas)
    assert len(running) >= 2
    _, pulled_back_whole = push_while_a_replica_dies(balancer, running, dockerd, tmp_path, "alice/crash-push",
                                                     PASSWORD)
    dockerd.run("push", f"127.0.0.1:{balancer.port}/alice/crash-push")  # the client's retry (a no-op when
    assert pulled_back_whole()                                          # docker's own retries finished it)
