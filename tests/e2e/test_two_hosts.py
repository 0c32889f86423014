"""A second host reaches authgate over HTTPS the way issue #7 promises: trust one CA file, no
`insecure-registries`. The second host is a network namespace with its own dockerd; authgate serves
on our end of the veth. All traffic stays on that veth pair."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import SecondHost
from tests.support.processes import AuthgateServer, Dockerd, authgate_env, free_port, require, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def second_host() -> Iterator[SecondHost]:
    with SecondHost() as host:
        yield host


@pytest.fixture(scope="module")
def remote_docker(second_host: SecondHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """dockerd on the second host; its /etc/docker (so certs.d) is a directory of this test's."""
    workdir = tmp_path_factory.mktemp("remote-dockerd")
    etc_docker = workdir / "etc-docker"
    (etc_docker / "certs.d").mkdir(parents=True)
    daemon = Dockerd(workdir, netns=second_host.name, etc_docker=etc_docker)
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def https_authgate(second_host: SecondHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    """`authgate tls init --host ADDR` then a plain `authgate serve`: HTTPS comes from the data dir."""
    workdir = tmp_path_factory.mktemp("authgate-https")
    port = free_port()
    printed = run_cli(authgate_env(workdir / "data", port=str(port)), "tls", "init", "--host", second_host.host_address)
    (workdir / "tls-init.out").write_text(printed.stdout)
    server = AuthgateServer(workdir, port=port, host=second_host.host_address)
    assert server.scheme == "https"
    server.start()
    yield server
    server.stop()


PASSWORD = "alice-two-hosts-pw"


def _certs_dir(remote: Dockerd, authority: str) -> Path:
    return remote.workdir / "etc-docker" / "certs.d" / authority


def test_a_second_host_logs_in_pushes_pulls_and_runs_once_it_trusts_the_ca(
    remote_docker: Dockerd, https_authgate: AuthgateServer, second_host: SecondHost
) -> None:
    registry = https_authgate.registry
    image = f"{registry}/alice/hello:1"
    https_authgate.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    refused = remote_docker.run("login", "-u", "alice", "--password-stdin", registry, input=PASSWORD, check=False)
    assert refused.returncode != 0
    assert "x509: certificate signed by unknown authority" in refused.stderr

    # The step `authgate tls init` prints for docker: the CA in certs.d/HOST:PORT, no restart.
    ca = https_authgate.data / "tls" / "ca.crt"
    _certs_dir(remote_docker, registry).mkdir(parents=True)
    shutil.copy(ca, _certs_dir(remote_docker, registry) / "ca.crt")

    # curl's way, from the second host: the CA verifies the certificate for the address, and the
    # challenge sends clients to the HTTPS realm on that same address.
    probe = second_host.run(sys.executable, "-c", (
        "import httpx, sys; r = httpx.get(sys.argv[1], verify=sys.argv[2], timeout=10); "
        "print(r.status_code, r.headers.get('www-authenticate'))"
    ), f"{https_authgate.url}/v2/", str(ca))
    assert probe.stdout.split()[0] == "401"
    assert f'realm="https://{registry}/token"' in probe.stdout

    remote_docker.run("login", "-u", "alice", "--password-stdin", registry, input=PASSWORD)
    remote_docker.build_busybox(image, message="hello from the first host")
    remote_docker.run("push", image)
    remote_docker.run("rmi", image)
    remote_docker.run("pull", image)
    output = remote_docker.run("run", "--rm", "--network", "none", image).stdout
    assert output.strip() == "hello from the first host"

    # The other clients `tls init` prints steps for, run on the second host with those very steps.
    _skopeo_and_ctr_pull(remote_docker, https_authgate, second_host, image)

    # Without the CA, the same pull fails on the certificate.
    remote_docker.run("rmi", image)
    shutil.rmtree(_certs_dir(remote_docker, registry))
    untrusted = remote_docker.run("pull", image, check=False)
    assert untrusted.returncode != 0
    assert "x509: certificate signed by unknown authority" in untrusted.stderr


def test_plain_http_is_refused_by_the_second_host_and_the_log_names_the_fix(
    remote_docker: Dockerd, second_host: SecondHost, tmp_path: Path
) -> None:
    server = AuthgateServer(tmp_path, host=second_host.host_address).start()
    try:
        refused = remote_docker.run("pull", f"{server.registry}/alice/hello:1", check=False)
        assert refused.returncode != 0
        assert "server gave HTTP response to HTTPS client" in refused.stderr
        assert "authgate tls init --host" in server.log_text()
    finally:
        server.stop()


def _skopeo_and_ctr_pull(remote: Dockerd, server: AuthgateServer, host: SecondHost, image: str) -> None:
    """skopeo with the containers certs.d layout, and containerd's `ctr` with the printed hosts.toml."""
    require("skopeo", "ctr")
    printed = (server.workdir / "tls-init.out").read_text()
    assert f"/etc/containers/certs.d/{server.registry}/ca.crt" in printed
    certs = _certs_dir(remote, server.registry)
    creds = f"alice:{PASSWORD}"
    inspected = host.run("skopeo", "inspect", "--creds", creds, "--cert-dir", str(certs), f"docker://{image}")
    assert json.loads(inspected.stdout)["Name"] == image.rsplit(":", 1)[0]

    hosts_dir = server.workdir / "containerd-certs.d"
    toml = printed.split("<<'TOML'\n", 1)[1].split("\nTOML", 1)[0]
    (hosts_dir / server.registry).mkdir(parents=True)
    (hosts_dir / server.registry / "hosts.toml").write_text(toml.replace("/etc/containerd/certs.d", str(hosts_dir)))
    shutil.copy(certs / "ca.crt", hosts_dir / server.registry / "ca.crt")
    socket = remote.workdir / "exec" / "containerd" / "containerd.sock"
    pulled = host.run("ctr", "--address", str(socket), "--namespace", "authgate-test", "images", "pull",
                      "--hosts-dir", str(hosts_dir), "--user", creds, image, timeout=120)
    assert "done" in pulled.stdout
