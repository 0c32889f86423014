"""CI workload tokens from a real OpenID provider (npm oidc-provider on loopback): `/token` and `/v2/`.

Accepted: a token from the configured issuer, for authgate's audience, whose claims a policy
workload matches. Refused: another issuer, another audience, expired, claims no workload matches,
forged (HS256 with the public key, alg none), a rotated-away key. Key rotation is followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from authgate.auth.services import auth_of
from authgate.identity.workload import WorkloadSource
from authgate.resources import Resources
from tests.api.registry_support import AuditLog
from tests.api.token_support import basic, token_app
from tests.support.identity_setup import write_identity, write_policies
from tests.support.oidc_provider import OidcProvider

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, AuditLog]
AUDIENCE = "https://registry.test"
MAIN = {"repository": "org/app", "ref": "refs/heads/main"}
CLIENTS = [
    {"client_id": "app-main", "client_secret": "s-main", "claims": MAIN},
    {"client_id": "app-feature", "client_secret": "s-feature", "claims": {**MAIN, "ref": "refs/heads/feature"}},
    {"client_id": "app-short", "client_secret": "s-short", "claims": MAIN, "ttl": 1},
]
POLICY = """
workloads:
  - name: app-main
    issuer: ci
    claims:
      repository: org/app
      ref: refs/heads/main
rules:
  - name: app ci pushes its repository
    subjects: ["robot:app-main"]
    repositories: ["org/app/**"]
    allow: [pull, push]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path / "provider", CLIENTS)
    yield server
    server.stop()


@pytest.fixture
async def ctx(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[Ctx]:
    identity = write_identity(tmp_path / "identity.yaml", {
        "type": "oidc_workload", "name": "ci", "issuer": provider.issuer, "audience": AUDIENCE,
        "algorithms": ["ES256"], "leeway": 0})
    async with token_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}", identity=identity,
                         policies=write_policies(tmp_path, POLICY)) as context:
        yield context


async def _login(client: httpx.AsyncClient, resources: Resources, token: str, repository: str = "org/app/api"
                 ) -> set[str] | httpx.Response:
    """POST /token with the workload token as the password: the granted actions, or the refusal."""
    response = await client.post("/token", data={"grant_type": "password", "client_id": "ci", "username": "oidc",
                                                 "password": token, "scope": f"repository:{repository}:pull,push"})
    if response.status_code != 200:
        return response
    access = auth_of(resources).tokens.verify(response.json()["access_token"]).access
    return set(access.get(("repository", repository), frozenset()))


async def _reason(audit: AuditLog) -> str | None:
    return [e for e in (await audit.events()) if e["action"] == "auth:login:failure"][-1]["reason"]


async def test_a_matching_workload_token_pushes_where_its_claims_allow(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, audit = ctx
    token = provider.token("app-main", AUDIENCE)
    assert await _login(client, resources, token) == {"pull", "push"}
    issued = [e for e in (await audit.events()) if e["action"] == "token:issue"][-1]
    assert (issued["actor"], issued["details"]["source"]) == ("robot:app-main", "ci")
    assert issued["details"]["identity"] == {"workload": "app-main", "sub": "app-main", "repository": "org/app",
                                          "ref": "refs/heads/main"}, "the audit log says which job it was"
    assert await _login(client, resources, token, "org/other") == set(), "nothing outside its rule"
    get = await client.get("/token", headers=basic("oidc", token), params={"scope": "repository:org/app/api:push"})
    bearer = get.json()["token"]
    assert (await client.get("/v2/", headers={"Authorization": f"Bearer {bearer}"})).status_code == 200, \
        "the token authgate issued works on /v2/ (docker login -u oidc, then push)"
    assert (await client.get("/v2/", headers=basic("oidc", token))).status_code == 200, "and as Basic on /v2/"


@pytest.mark.parametrize(("client_id", "audience", "reason"), [
    ("app-feature", AUDIENCE, "no workload in the policy files matches this ci token's claims"),
    ("app-main", "https://other.test", "workload token is for another audience"),
])
async def test_refused_tokens_say_why_in_the_audit_log(ctx: Ctx, provider: OidcProvider, client_id: str,
                                                      audience: str, reason: str) -> None:
    client, resources, audit = ctx
    response = await _login(client, resources, provider.token(client_id, audience))
    assert isinstance(response, httpx.Response) and response.status_code == 401
    assert await _reason(audit) == reason


async def test_expired_token_is_refused(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, audit = ctx
    token = provider.token("app-short", AUDIENCE)
    time.sleep(2.1)  # ttl 1 s, leeway 0
    response = await _login(client, resources, token)
    assert isinstance(response, httpx.Response) and response.status_code == 401
    assert await _reason(audit) == "workload token has expired"


async def test_a_token_from_an_unconfigured_issuer_is_refused(ctx: Ctx, tmp_path: Path) -> None:
    client, resources, audit = ctx
    stranger = OidcProvider(tmp_path / "stranger", CLIENTS)
    try:
        response = await _login(client, resources, stranger.token("app-main", AUDIENCE))
    finally:
        stranger.stop()
    assert isinstance(response, httpx.Response) and response.status_code == 401
    assert await _reason(audit) == "workload token from an issuer that is not configured"


async def test_forged_tokens_are_refused(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, _ = ctx
    jwks = httpx.get(f"{provider.issuer}/jwks", timeout=10).json()
    public = json.dumps(jwks["keys"][0]).encode()
    claims = {**MAIN, "iss": provider.issuer, "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 600}
    kid = jwks["keys"][0]["kid"]

    def forge(alg: str, key: bytes | None) -> str:
        part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
        signing_input = part({"alg": alg, "kid": kid, "typ": "JWT"}) + "." + part(claims)
        if key is None:
            return signing_input + "."
        mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    # The classic forgeries: the issuer's public key used as an HMAC secret, and no signature at all.
    hs256, none = forge("HS256", public), forge("none", None)
    for forged in (hs256, none):
        response = await _login(client, resources, forged)
        assert isinstance(response, httpx.Response) and response.status_code == 401


async def test_key_rotation_is_followed_and_old_keys_die(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, audit = ctx
    old = provider.token("app-main", AUDIENCE)
    assert await _login(client, resources, old) == {"pull", "push"}
    (source,) = [s for s in auth_of(resources).identity.sources if isinstance(s, WorkloadSource)]
    source.keys.min_refetch = 0  # the default (30 s) bounds refetches; here the test rotates at once
    provider.restart()
    assert await _login(client, resources, provider.token("app-main", AUDIENCE)) == {"pull", "push"}, \
        "a token signed with the new key is accepted after one JWKS refetch"
    response = await _login(client, resources, old)
    assert isinstance(response, httpx.Response) and response.status_code == 401
    assert await _reason(audit) == "workload token signed by a key the issuer does not publish"


@pytest.mark.parametrize(("policy_change", "issuer", "message"), [
    (("repository: org/app", "reponame: org/app"), None, "registry.yaml:3: workload app-main claims.reponame: "
                                                         "issuer ci does not publish this claim"),
    (("issuer: ci", "issuer: gh"), None, "workload app-main issuer: 'gh' is not an oidc_workload source"),
    (None, "http://127.0.0.1:1", "identity source ci: ci.issuer: cannot reach http://127.0.0.1:1/.well-known"),
])
def test_serve_refuses_a_workload_configuration_that_cannot_work(
        tmp_path: Path, provider: OidcProvider, policy_change: tuple[str, str] | None, issuer: str | None,
        message: str) -> None:
    from authgate.identity.base import IdentityConfigError
    from authgate.identity.report import check_sources
    from authgate.settings import Settings

    policies = write_policies(tmp_path, POLICY.replace(*policy_change) if policy_change else POLICY)
    identity = write_identity(tmp_path / "identity.yaml", {
        "type": "oidc_workload", "name": "ci", "issuer": issuer or provider.issuer, "audience": AUDIENCE})
    settings = Settings(data=tmp_path / "data", identity=identity, policies=policies)
    with pytest.raises(IdentityConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_sources(settings)
    write_policies(tmp_path, POLICY)
    write_identity(identity, {"type": "oidc_workload", "name": "ci", "issuer": provider.issuer, "audience": AUDIENCE})
    assert check_sources(settings)[1].startswith(f"ci: OpenID workload tokens from {provider.issuer}")


async def test_a_refused_workload_token_is_not_logged(ctx: Ctx, provider: OidcProvider,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging

    client, resources, audit = ctx
    caplog.set_level(logging.DEBUG)
    token = provider.token("app-feature", AUDIENCE)
    await _login(client, resources, token)
    await client.get("/v2/", headers=basic("oidc", token))
    everything = caplog.text + repr(await audit.events())
    assert "login failed for 'oidc'" in caplog.text
    assert token not in everything and token.split(".")[2] not in everything
