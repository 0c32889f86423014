"""Token-server mode: a stock distribution 2.8 registry (`auth: token` against authgate) sends its
notifications to authgate's /notifications with the shared secret; a real `docker push` then shows
up in `authgate audit list --json` with the user, repository, tag and the digest docker printed."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.processes import AuthgateServer, Distribution, Dockerd, token_auth_config

pytestmark = pytest.mark.e2e

SERVICE = "registry.audit-e2e"
ISSUER = "authgate-audit-e2e"
SECRET = "notify-Secret-e2e"
PASSWORD = "alice-Pa55-word"


@pytest.fixture(scope="module")
def authgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("authgate"), service=SERVICE, issuer=ISSUER, bcrypt_rounds="4",
                            notification_secret=SECRET, audit_pulls="manifests")
    server.start()
    server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def registry(authgate: AuthgateServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    workdir = tmp_path_factory.mktemp("distribution")
    bundle = workdir / "authgate.pem"
    authgate.cli("keys", "export-cert", "--output", str(bundle))
    # The snippet docs/audit.md documents, verbatim apart from the addresses.
    registry = Distribution(workdir, extra_config=(
        token_auth_config(f"{authgate.url}/token", SERVICE, ISSUER, bundle)
        + "notifications:\n  endpoints:\n    - name: authgate\n"
        f"      url: {authgate.url}/notifications\n"
        f"      headers:\n        Authorization: [Bearer {SECRET}]\n"
        "      timeout: 5s\n      threshold: 5\n      backoff: 1s\n"
    ))
    yield registry
    registry.stop()


def _audit(authgate: AuthgateServer, *args: str) -> list[dict[str, Any]]:
    out = authgate.cli("audit", "list", "--json", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def _eventually(authgate: AuthgateServer, *args: str, count: int = 1) -> list[dict[str, Any]]:
    """The registry sends asynchronously and authgate writes in batches: poll, bounded."""
    deadline = time.monotonic() + 30
    events = _audit(authgate, *args)
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.5)
        events = _audit(authgate, *args)
    return events


def test_a_docker_push_through_the_registry_is_in_the_audit_log(dockerd: Dockerd, authgate: AuthgateServer,
                                                                 registry: Distribution) -> None:
    host = f"127.0.0.1:{registry.port}"
    image = f"{host}/alice/notified:1"
    dockerd.build_busybox(image, message="audited push")
    dockerd.run("login", host, "-u", "alice", "--password-stdin", input=PASSWORD)
    try:
        pushed = dockerd.run("push", image).stdout
        match = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed)
        assert match, pushed
        digest = match.group(1)

        events = _eventually(authgate, "--action", "manifest:push", "--repository", "alice/notified")
        assert [(e["actor"], e["repository"], e["reference"], e["digest"]) for e in events] == [
            ("user:alice", "alice/notified", "1", digest)]
        assert events[0]["details"]["source"] == "registry-notification"
        assert events[0]["address"] == "127.0.0.1"
        blobs = _audit(authgate, "--action", "blob:push", "--repository", "alice/notified")
        assert blobs and all(e["actor"] == "user:alice" for e in blobs)

        dockerd.run("rmi", image)
        dockerd.run("pull", image)
        pulls = _eventually(authgate, "--action", "manifest:pull", "--repository", "alice/notified")
        assert pulls and pulls[0]["actor"] == "user:alice"
    finally:
        dockerd.run("logout", host, check=False)

    assert authgate.cli("audit", "verify").stdout.startswith("audit log verified")
