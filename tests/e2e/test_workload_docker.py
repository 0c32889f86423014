"""A CI job's workload token through a real dockerd: `docker login -u oidc` with a JWT from a real
OpenID provider (npm oidc-provider on loopback) pushes where its claims allow and nowhere else;
tokens from an unconfigured issuer or for another audience cannot log in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.identity_setup import docker_login, docker_push, serve, write_identity, write_policies
from tests.support.oidc_provider import OidcProvider
from tests.support.processes import AuthgateServer, Dockerd

pytestmark = pytest.mark.e2e

AUDIENCE = "https://registry.test"
CLIENTS = [
    {"client_id": "app-main", "client_secret": "s-main", "claims": {"repository": "org/app", "ref": "refs/heads/main"}},
    {"client_id": "app-pr", "client_secret": "s-pr", "claims": {"repository": "org/app", "ref": "refs/pull/7/merge"}},
]
POLICY = """
workloads:
  - name: app-main
    issuer: ci
    claims: {repository: org/app, ref: refs/heads/main}
rules:
  - name: app ci
    subjects: ["robot:app-main"]
    repositories: ["org/app/**"]
    allow: [pull, push]
"""


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path_factory.mktemp("oidc"), CLIENTS)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider) -> Iterator[AuthgateServer]:
    workdir = tmp_path_factory.mktemp("workload-docker")
    identity = write_identity(workdir / "identity.yaml", {
        "type": "oidc_workload", "name": "ci", "issuer": provider.issuer, "audience": AUDIENCE})
    server = serve(workdir, write_policies(workdir, POLICY), identity)
    yield server
    server.stop()


def _login(dockerd: Dockerd, server: AuthgateServer, token: str) -> tuple[bool, str]:
    return docker_login(dockerd, server, "oidc", token)


def test_a_ci_job_pushes_where_its_claims_allow(dockerd: Dockerd, server: AuthgateServer,
                                               provider: OidcProvider) -> None:
    assert "ci: OpenID workload tokens from" in server.log_text(), "the start-up summary lists the issuer"
    ok, output = _login(dockerd, server, provider.token("app-main", AUDIENCE))
    assert ok, output
    ok, output = docker_push(dockerd, f"{server.registry}/org/app/api:1")
    assert ok, output
    ok, output = docker_push(dockerd, f"{server.registry}/org/other/api:1")
    assert not ok and ("denied" in output or "unauthorized" in output), output


def test_tokens_that_must_not_log_in(dockerd: Dockerd, server: AuthgateServer, provider: OidcProvider,
                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    for token in (provider.token("app-pr", AUDIENCE), provider.token("app-main", "https://other.test")):
        ok, output = _login(dockerd, server, token)
        assert not ok and "unauthorized" in output.lower(), output
    stranger = OidcProvider(tmp_path_factory.mktemp("stranger"), CLIENTS)
    try:
        ok, output = _login(dockerd, server, stranger.token("app-main", AUDIENCE))
    finally:
        stranger.stop()
    assert not ok and "unauthorized" in output.lower(), output
