"""The Dockerfile builds a working image offline, as docs/container.md says: on a local Debian base (no
registry is reachable here) with the pinned wheels made on this machine and no network in the build;
run as documented with a volume, healthy, not root, and a docker push through it works."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.support.image_build import IMAGE_BUILD
from tests.support.processes import Dockerd, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]
PASSWORD = "alice-container-pw"


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> Iterator[tuple[Dockerd, str]]:
    """The builder dockerd and the image: the build tests/conftest.py started in the background at
    the session's first test (tests/support/image_build.py), waited for here."""
    build = request.config.stash[IMAGE_BUILD]
    try:
        result = build.result()
        print(f"\n{build.report}")
        yield result
    finally:
        build.close()


@pytest.fixture(scope="module")
def builder(built: tuple[Dockerd, str]) -> Dockerd:
    return built[0]


@pytest.fixture(scope="module")
def authgate_image(built: tuple[Dockerd, str]) -> str:
    return built[1]


@pytest.fixture
def container(builder: Dockerd, authgate_image: str) -> Iterator[tuple[str, int]]:
    """The image run as the README says (a named volume on /data), on a loopback port of this host."""
    port = free_port()
    name = f"authgate-test-{os.getpid()}-{port}"
    volume = f"{name}-data"
    # Host networking (the test daemon has no bridge), listening on loopback only.
    builder.run("run", "-d", "--name", name, "--network", "host", "-v", f"{volume}:/data",
                "-e", "AUTHGATE_HOST=127.0.0.1", "-e", f"AUTHGATE_PORT={port}", "--health-interval", "1s",
                authgate_image)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json() == {"status": "ok"},
                 "authgate in its container", 60)
        yield name, port
    finally:
        logs = builder.run("logs", name, check=False)
        print(logs.stdout[-2000:], logs.stderr[-2000:])
        builder.run("rm", "-f", name, check=False)
        builder.run("volume", "rm", "-f", volume, check=False)


def test_the_container_is_healthy_unprivileged_keeps_data_in_its_volume_and_takes_a_push(
    builder: Dockerd, container: tuple[str, int]
) -> None:
    name, port = container

    def health() -> str:
        state = json.loads(builder.run("inspect", "--format", "{{json .State.Health}}", name).stdout)
        return str(state["Status"])

    wait_for(lambda: health() == "healthy", "the image's HEALTHCHECK", 30)
    assert builder.run("exec", name, "id", "-u").stdout.strip() == "10001"
    mounts = json.loads(builder.run("inspect", "--format", "{{json .Mounts}}", name).stdout)
    assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/data")]

    builder.run("exec", "-i", name, "authgate", "user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    registry = f"127.0.0.1:{port}"
    image = f"{registry}/alice/boxed:1"
    builder.run("login", "-u", "alice", "--password-stdin", registry, input=PASSWORD)
    builder.build_busybox(image, message="pushed through the container")
    builder.run("push", image)
    builder.run("rmi", image)
    builder.run("pull", image)
    assert builder.run("run", "--rm", "--network", "none", image).stdout.strip() == "pushed through the container"
    stored = builder.run("exec", name, "ls", "/data").stdout.split()
    assert "authgate.db" in stored


def test_health_check_follows_authgate_to_https(builder: Dockerd, container: tuple[str, int]) -> None:
    """After `tls init` in the container and a restart, the HEALTHCHECK (python, no curl) still passes."""
    name, port = container
    builder.run("exec", name, "authgate", "tls", "init", "--host", "127.0.0.1")
    builder.run("restart", name)
    wait_for(lambda: httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=2,
                               verify=False).status_code == 200, "authgate over HTTPS in its container", 60)

    def healthy_since_restart() -> bool:
        state = json.loads(builder.run("inspect", "--format", "{{json .State.Health}}", name).stdout)
        last = state["Log"][-1] if state["Log"] else {}
        return bool(state["Status"] == "healthy" and last.get("ExitCode") == 0
                    and f"https://127.0.0.1:{port}/healthz 200" in last.get("Output", ""))

    wait_for(healthy_since_restart, "the HEALTHCHECK over HTTPS", 30)
