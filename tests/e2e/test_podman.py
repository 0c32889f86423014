"""podman against the embedded registry: a second real client, speaking the containers/image dialect
(it tries HTTPS first, takes scopes per blob, fetches its own tokens) rather than docker's."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AuthgateServer, require

pytestmark = pytest.mark.e2e
PASSWORDS = {"alice": "alice-podman-pw", "bob": "bob-podman-pw"}
MESSAGE = "hello through podman"


def _ulimit(kind: int, name: str) -> str:
    """podman as root asks runc for nofile/nproc of 1048576; without CAP_SYS_RESOURCE (this sandbox,
    many CI runners) runc cannot raise them, so containers get limits at or below the current ones."""
    hard = resource.getrlimit(kind)[1]
    value = 1024 if hard == resource.RLIM_INFINITY else min(hard, 1024)
    return f'"{name}={value}:{value}"'


class Podman:
    """podman with its own storage (vfs), runroot, auth file and configuration: nothing of the host's.

    It runs in a private mount namespace where /run and /var/lib/containers (/var/lib when that is
    missing, so no directory appears on the host) are directories of this test: root's podman 4.3 keeps
    state there whatever its flags say (/run/libpod, /run/runc, /run/containers, the blob-info cache that
    decides cross-repository mounts), and one test's cache must not steer another's pushes."""

    def __init__(self, workdir: Path) -> None:
        require("podman", "runc", "unshare", "busybox")
        self.workdir = workdir
        # the runroot holds conmon's sockets: podman refuses a path over 50 characters
        self.short = Path(tempfile.mkdtemp(prefix="podman-"))
        for name in ("root", "tmp", "networks", "run", "lib/containers"):
            (workdir / name).mkdir(parents=True, exist_ok=True)
        (workdir / "containers.conf").write_text(
            f"[containers]\ndefault_ulimits = [{_ulimit(resource.RLIMIT_NOFILE, 'nofile')}, "
            f"{_ulimit(resource.RLIMIT_NPROC, 'nproc')}]\n"
            f'[network]\nnetwork_config_dir = "{workdir / "networks"}"\n'
            f'[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
            f'events_logfile_path = "{workdir / "events.log"}"\nimage_copy_tmp_dir = "{workdir / "tmp"}"\n')
        (workdir / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = dict(os.environ, XDG_RUNTIME_DIR=str(self.short), TMPDIR=str(workdir / "tmp"),
                        REGISTRY_AUTH_FILE=str(workdir / "auth.json"),
                        CONTAINERS_CONF=str(workdir / "containers.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(workdir / "registries.conf"))
        self.prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'lib=/var/lib/containers; [ -d $lib ] || lib=/var/lib; '
                       'mount --bind "$0/run" /run && mount --bind "$0/lib" $lib && exec "$@"', str(workdir),
                       "podman", "--root", str(workdir / "root"), "--runroot", str(self.short / "run"),
                       "--storage-driver", "vfs"]

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.prefix, *args], env=self.env, input=input, capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def close(self) -> None:
        shutil.rmtree(self.short, ignore_errors=True)

    def login(self, server: AuthgateServer, user: str, password: str) -> subprocess.CompletedProcess[str]:
        return self.run("login", "--tls-verify=false", "-u", user, "--password-stdin", server.registry,
                        input=password + "\n", check=False)

    def build_busybox(self, tag: str) -> None:
        """A `FROM scratch` image holding /bin/busybox that prints MESSAGE, built by podman itself."""
        context = self.workdir / "context"
        context.mkdir(exist_ok=True)
        shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
        (context / "Containerfile").write_text(
            f'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "echo", "{MESSAGE}"]\n')
        self.run("build", "-q", "-t", tag, str(context))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    require("podman")
    server = AuthgateServer(tmp_path_factory.mktemp("authgate-podman")).start()
    for user, password in PASSWORDS.items():
        server.cli("user", "add", user, "--password-stdin", input=password + "\n")
    yield server
    server.stop()


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    client = Podman(tmp_path)
    yield client
    client.close()


def _registry_digest(server: AuthgateServer, repository: str) -> str:
    response = httpx.get(f"{server.url}/v2/{repository}/manifests/latest", auth=("alice", PASSWORDS["alice"]),
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    response.raise_for_status()
    digest: str = response.headers["docker-content-digest"]
    return digest


def test_podman_login_build_push_pull_run(server: AuthgateServer, podman: Podman, tmp_path: Path) -> None:
    image = f"{server.registry}/alice/hello"
    wrong = podman.login(server, "alice", "not-her-password")
    assert wrong.returncode != 0 and "invalid username/password" in wrong.stderr
    assert podman.login(server, "alice", PASSWORDS["alice"]).stdout.strip() == "Login Succeeded!"
    podman.build_busybox(image)
    podman.run("push", "--tls-verify=false", "--digestfile", str(tmp_path / "pushed"), image)
    pushed = (tmp_path / "pushed").read_text().strip()
    assert _registry_digest(server, "alice/hello") == pushed

    podman.run("rmi", image)
    assert podman.run("image", "exists", image, check=False).returncode == 1
    podman.run("pull", "-q", "--tls-verify=false", image)
    assert podman.run("image", "inspect", "--format", "{{.Digest}}", image).stdout.strip() == pushed
    assert podman.run("run", "--rm", "--network", "none", image).stdout.strip() == MESSAGE

    # a second repository of hers: the layer is mounted from alice/hello (a token for both), not re-sent
    podman.run("tag", image, f"{server.registry}/alice/copy")
    copy = podman.run("--log-level=debug", "push", "--tls-verify=false", f"{server.registry}/alice/copy")
    assert "scope=repository%3Aalice%2Fhello%3Apull" in copy.stderr  # it asks for a token naming both
    assert "... mount OK" in copy.stderr
    assert _registry_digest(server, "alice/copy") == pushed


def test_podman_user_without_access_is_refused(server: AuthgateServer, podman: Podman) -> None:
    assert podman.login(server, "bob", PASSWORDS["bob"]).returncode == 0
    image = f"{server.registry}/alice/bobs"
    podman.build_busybox(image)
    push = podman.run("push", "--tls-verify=false", image, check=False)
    assert push.returncode != 0
    # podman shows the challenge's error_description: which action was missing, and who said no.
    assert "user:bob may not" in push.stderr and "alice/bobs (the policy allows: nothing)" in push.stderr, push.stderr
    assert httpx.get(f"{server.url}/v2/alice/bobs/manifests/latest",
                     auth=("alice", PASSWORDS["alice"])).status_code == 404
    # his own namespace works with the same image
    podman.run("tag", image, f"{server.registry}/bob/mine")
    podman.run("push", "--tls-verify=false", f"{server.registry}/bob/mine")
