"""People signing in with a real OpenID provider (npm oidc-provider) by the device grant: the
authgate refresh token docker stores, groups as teams, and revocation at the provider or in authgate."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from authgate.auth import accounts
from authgate.auth.refresh import revoke_refresh_tokens
from authgate.auth.services import auth_of
from authgate.resources import Resources
from tests.api.registry_support import AuditLog
from tests.api.token_support import add_user, basic, token_app
from tests.support.identity_setup import oidc_people, write_identity, write_policies
from tests.support.oidc_provider import OidcProvider, set_account, sign_in

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, AuditLog]
POLICY = """
rules:
  - name: backend team
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull, push]
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path / "provider", [], accounts={"alice": ["backend", "Platform Admins"],
                                                               "bob": ["backend"]}, device_client="authgate")
    yield server
    server.stop()


@pytest.fixture
async def ctx(tmp_path: Path, provider: OidcProvider) -> AsyncIterator[Ctx]:
    identity = write_identity(tmp_path / "identity.yaml",
                              oidc_people(provider.issuer, teams={"Platform Admins": "admins"}))
    async with token_app(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}", identity=identity,
                         policies=write_policies(tmp_path, POLICY)) as context:
        yield context


async def device_login(client: httpx.AsyncClient, provider: OidcProvider, login: str) -> httpx.Response:
    """What `authgate login --oidc` does: start, let the person sign in, poll until done."""
    started = (await client.post("/auth/oidc/device", data={})).json()
    assert started["user_code"] and started["verification_uri"].startswith(provider.issuer)
    pending = await client.post("/auth/oidc/token", data={"device_code": started["device_code"], "source": "sso"})
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    await anyio.to_thread.run_sync(sign_in, provider, started["verification_uri_complete"], login)
    return await client.post("/auth/oidc/token", data={"device_code": started["device_code"], "source": "sso"})


async def _refresh(client: httpx.AsyncClient, resources: Resources, refresh: str) -> set[str] | int:
    response = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "docker",
                                                 "refresh_token": refresh, "scope": "repository:backend/api:pull,push"})
    if response.status_code != 200:
        return response.status_code
    access = auth_of(resources).tokens.verify(response.json()["access_token"]).access
    return set(access.get(("repository", "backend/api"), frozenset()))


async def test_device_login_gives_a_refresh_token_with_the_providers_groups_as_teams(
        ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, audit = ctx
    done = await device_login(client, provider, "alice")
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["username"], body["teams"], body["source"]) == ("alice", ["admins", "backend"], "sso")
    assert body["refresh_token"].startswith("agrt_")
    assert await _refresh(client, resources, body["refresh_token"]) == {"pull", "push"}, \
        "docker's identity token works like any refresh token"
    login = [e for e in (await audit.events()) if e["action"] == "auth:login"][-1]
    assert (login["actor"], login["details"]["source"]) == ("user:alice", "sso")
    assert (await client.get("/token", headers=basic("alice", "anything"))).status_code == 401, \
        "a device-login user has no password"
    answer, _ = await auth_of(resources).identity.ask("alice", None)  # what `authgate identity test` prints
    assert [(o.team, o.via) for o in answer.origins] == [("admins", "oidc sso: groups claim"),
                                                         ("backend", "oidc sso: groups claim")]
    set_account(provider, "alice", ["frontend"])
    assert await _refresh(client, resources, body["refresh_token"]) == set(), \
        "groups are synced from the provider at the next re-check"
    assert "backend" not in (await accounts.list_teams(resources.db)) or \
        "alice" not in (await accounts.list_teams(resources.db))["backend"]


async def test_revoking_at_the_provider_or_in_authgate_ends_it(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, _ = ctx
    alice = (await device_login(client, provider, "alice")).json()["refresh_token"]
    bob = (await device_login(client, provider, "bob")).json()["refresh_token"]
    set_account(provider, "alice", None)
    assert await _refresh(client, resources, alice) == 401, "removed at the provider: refused at the next re-check"
    assert await _refresh(client, resources, alice) == 401, "and its authgate refresh tokens are revoked"
    assert await _refresh(client, resources, bob) == {"pull", "push"}
    await revoke_refresh_tokens(resources.db, user="bob")
    assert await _refresh(client, resources, bob) == 401, "authgate token revoke --user bob"


async def test_a_local_name_is_never_taken_over_and_a_down_provider_is_a_503(ctx: Ctx, provider: OidcProvider) -> None:
    client, resources, _ = ctx
    await add_user(resources, "bob", "bob-local-pw")
    refused = await device_login(client, provider, "bob")
    assert refused.status_code == 403 and "already belongs to another authgate account" in refused.json()[
        "error_description"]
    alice = (await device_login(client, provider, "alice")).json()["refresh_token"]
    provider.stop()
    response = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "docker",
                                                 "refresh_token": alice})
    assert response.status_code == 503 and "try again later" in response.json()["error_description"]
    provider.start()


def test_start_checks_the_provider_and_lists_it(tmp_path: Path, provider: OidcProvider) -> None:
    from authgate.identity.base import IdentityConfigError
    from authgate.identity.report import check_sources
    from authgate.settings import Settings

    identity = tmp_path / "identity.yaml"
    source = {"type": "oidc", "name": "sso", "issuer": provider.issuer, "client_id": "authgate"}
    identity.write_text(json.dumps({"sources": ["local", source]}))
    settings = Settings(data=tmp_path / "data", identity=identity)
    assert check_sources(settings)[1].startswith(f"sso: people via OpenID device login at {provider.issuer}")
    identity.write_text(json.dumps({"sources": ["local", {**source, "issuer": "http://127.0.0.1:1"}]}))
    with pytest.raises(IdentityConfigError, match=r"identity source sso: sso\.issuer: cannot reach"):
        check_sources(settings)


async def test_guessing_device_codes_is_refused_like_guessing_passwords(ctx: Ctx) -> None:
    client, resources, audit = ctx
    statuses = []
    for attempt in range(40):
        response = await client.post("/auth/oidc/token", data={"device_code": f"guess-{attempt}", "source": "sso"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    assert statuses[0] == 403 and statuses[-1] == 429, statuses
    assert [e for e in (await audit.events()) if e["action"] == "auth:login:failure"][0]["details"]["source"] == "sso"
