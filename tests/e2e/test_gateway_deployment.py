"""Gateway deployment with real parts, no docker needed: authgate in front of distribution 2.8 in
`auth: token` mode trusting authgate's certificate, as docs/gateway.md tells an operator to run it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AuthgateServer, Distribution, free_port, token_auth_config, wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "alice-Pa55-word"


def test_a_users_token_does_not_work_at_the_upstream(tmp_path: Path) -> None:
    """The token /token gives a user names authgate's `service`; the tokens authgate mints for the
    upstream name `<service>-upstream` by default: a user who finds the upstream's address cannot
    push there with their own token (and so around authgate's policy and audit log)."""
    port = free_port()
    (tmp_path / "gateway").mkdir()
    server = AuthgateServer(tmp_path / "gateway", upstream=f"http://127.0.0.1:{port}", upstream_auth="token",
                            upstream_health_interval="0.5", bcrypt_rounds="4").start()
    bundle = tmp_path / "authgate.pem"
    server.cli("keys", "export-cert", "--output", str(bundle))
    # The upstream configured as docs/gateway.md shows it.
    registry = Distribution(tmp_path / "upstream", port=port, extra_config=token_auth_config(
        f"{server.url}/token", "authgate-upstream", "authgate", bundle))
    try:
        server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
        wait_for(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "readyz with token auth", 15)
        token = httpx.get(f"{server.url}/token", auth=("alice", PASSWORD), params={
            "service": "authgate", "scope": "repository:alice/direct:pull,push"}).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{server.url}/v2/alice/direct/blobs/uploads/", headers=bearer).status_code == 202
        assert httpx.post(f"{registry.url}/v2/alice/direct/blobs/uploads/", headers=bearer).status_code == 401
        data = b"through authgate only"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        pushed = httpx.post(f"{server.url}/v2/alice/direct/blobs/uploads/", params={"digest": digest},
                            content=data, headers=bearer)
        assert pushed.status_code == 201, pushed.text
    finally:
        server.stop()
        registry.stop()


def test_upstream_service_equal_to_service_is_refused(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path, upstream="http://127.0.0.1:9", upstream_auth="token",
                            upstream_service="authgate")
    result = server.cli("serve", check=False)
    assert result.returncode != 0
    assert "upstream_service must differ from service" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
