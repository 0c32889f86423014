"""Signing in to the console with a real OpenID provider (npm oidc-provider): the authorization code
grant with PKCE, state and nonce; the same user and teams as the device login; and every bad
callback (forged or missing state, another sign-in's nonce, a cancelled sign-in, a replay, a
provider that is down) answered with the sign-in page saying what happened, never a 500."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest

from authgate.audit.query import AuditFilter, list_events
from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.identity.people import PeopleSource
from authgate.identity.people_code import CodeSignIn
from authgate.resources import Resources
from tests.api.test_identity_people import device_login
from tests.console.support import add_user, console_app, flush_audit, push_image
from tests.support.identity_setup import oidc_people, write_identity, write_policies
from tests.support.oidc_provider import OidcProvider, authorize

pytestmark = pytest.mark.anyio
CONSOLE = "http://localhost:5000"
CALLBACK = f"{CONSOLE}/signin/oidc/sso/callback"
POLICY = """
rules:
  - name: backend team
    subjects: ["team:backend"]
    repositories: ["backend/**"]
    allow: [pull, push]
  - name: the builder pushes everything
    subjects: ["user:builder"]
    repositories: ["**"]
    allow: [pull, push]
"""
BUILDER = ("builder", "builder-password")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OidcProvider]:
    server = OidcProvider(tmp_path / "provider", [], accounts={"alice": ["backend"], "bob": ["frontend"]},
                          device_client="authgate", redirect_uris=(CALLBACK,))
    yield server
    server.stop()


@asynccontextmanager
async def oidc_console(tmp_path: Path, provider: OidcProvider, **settings: object
                       ) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    identity = write_identity(tmp_path / "identity.yaml", oidc_people(provider.issuer))
    async with console_app(tmp_path, identity=identity, policies=write_policies(tmp_path, POLICY),
                           **settings) as (client, resources):
        yield client, resources


async def _start(client: httpx.AsyncClient) -> str:
    """Press "Sign in with sso" on the sign-in page: the provider's authorization URL."""
    page = await client.get("/signin", params={"next": "/repositories"})
    assert "Sign in with sso" in page.text
    started = await client.get("/signin/oidc/sso", params={"next": "/repositories"})
    assert started.status_code == 303, started.text
    return started.headers["location"]


async def _provider_answer(client: httpx.AsyncClient, provider: OidcProvider, login: str | None) -> str:
    """Start, then sign in at the provider as `login` (None: cancel); the callback URL it sends back."""
    url = await _start(client)
    answer = await anyio.to_thread.run_sync(authorize, provider, url, login)
    assert answer.startswith(CALLBACK + "?"), answer
    return answer


def _with(url: str, **changes: str | None) -> str:
    """The callback URL with query parameters changed (None removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return f"{parts.path}?{urlencode(query)}"


def _source(resources: Resources) -> PeopleSource:
    return next(s for s in auth_of(resources).identity.sources if isinstance(s, PeopleSource))


def _tampered(resources: Resources, sealed: str, **changes: str) -> str:
    """The sign-in cookie resealed with other values: another sign-in's nonce or verifier."""
    sealer = _source(resources).sealer
    assert sealer is not None
    opened = sealer.unseal(sealed)
    assert opened is not None
    flow = CodeSignIn.loads(opened)
    assert flow is not None
    return sealer.seal(dataclasses.replace(flow, **changes).dumps())


async def test_a_person_signs_in_with_the_provider_and_sees_their_repositories(
        tmp_path: Path, provider: OidcProvider) -> None:
    async with oidc_console(tmp_path, provider, public_url=CONSOLE) as (client, resources):
        await add_user(resources, *BUILDER)
        await push_image(client, BUILDER, "backend/api", "1")
        await push_image(client, BUILDER, "frontend/web", "1")

        url = await _start(client)
        query = parse_qs(urlsplit(url).query)
        assert url.startswith(f"{provider.issuer}/auth?")
        assert query["redirect_uri"] == [CALLBACK]  # from public_url
        assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
        assert query["state"][0] and query["nonce"][0] and query["state"] != query["nonce"]
        assert "offline_access" not in query["scope"][0].split()
        flow_cookie = client.cookies["authgate_oidc"]
        assert query["state"][0] not in flow_cookie and query["nonce"][0] not in flow_cookie, "sealed, not readable"

        client.cookies.set("authgate_session", "planted-before-sign-in")
        answer = await anyio.to_thread.run_sync(authorize, provider, url, "alice")
        done = await client.get(_with(answer))
        assert done.status_code == 303 and done.headers["location"] == "/repositories", done.text
        cookies = done.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith("authgate_session="))
        assert "HttpOnly" in session and "SameSite=lax" in session
        assert "planted-before-sign-in" not in session, "a new value at sign-in"
        assert any(c.startswith("authgate_oidc=") and "Max-Age=0" in c for c in cookies), "the sign-in is over"
        client.cookies.delete("authgate_session", domain="")  # the jar would send the planted value too

        page = await client.get("/repositories")
        assert page.status_code == 200 and ">alice<" in page.text
        assert "backend/api" in page.text, "the provider's group backend is the team the policy grants"
        assert "frontend/web" not in page.text

        user = await accounts.find_user(resources.db, "alice")
        assert user is not None and accounts.user_subject(user).teams == frozenset({"backend"})
        await flush_audit(resources)
        logins = await list_events(resources.db, AuditFilter(action="auth:login", actor="alice"))
        assert logins[0]["details"] == {"via": "console", "source": "sso"}

        # A replay: the same answer again finds no sign-in in progress in this browser ...
        again = await client.get(_with(answer))
        assert again.status_code == 400 and "already used" in again.text
        # ... and with the old sign-in cookie put back, the provider refuses a code used twice.
        client.cookies.set("authgate_oidc", flow_cookie, path="/signin/oidc/sso")
        replayed = await client.get(_with(answer))
        assert replayed.status_code == 403 and "refused the authorization code" in replayed.text


async def test_the_console_and_the_device_login_are_one_user(tmp_path: Path, provider: OidcProvider) -> None:
    """Same provider subject, same authgate user; signing in to the console keeps the provider
    refresh token the device login stored, so docker's identity token still refreshes."""
    async with oidc_console(tmp_path, provider, public_url=CONSOLE) as (client, resources):
        device = await device_login(client, provider, "alice")
        assert device.status_code == 200, device.text
        before = await accounts.find_user(resources.db, "alice")
        answer = await _provider_answer(client, provider, "alice")
        assert (await client.get(_with(answer))).status_code == 303
        after = await accounts.find_user(resources.db, "alice")
        assert before is not None and after is not None and after.id == before.id
        refreshed = await client.post("/token", data={
            "grant_type": "refresh_token", "client_id": "docker", "refresh_token": device.json()["refresh_token"],
            "scope": "repository:backend/api:pull"})
        assert refreshed.status_code == 200, refreshed.text


@pytest.mark.parametrize(("case", "status", "says"), [
    ("no state", 400, "does not belong to the sign-in this browser started"),
    ("forged state", 400, "does not belong to the sign-in this browser started"),
    ("another browser", 400, "was not started in this browser"),
    ("forged cookie", 400, "was not started in this browser"),
    ("another sign-in's nonce", 403, "nonce does not match"),
    ("another verifier", 403, "refused the authorization code"),
    ("another issuer", 403, "not from"),
    ("no code", 403, "no usable authorization code"),
])
async def test_bad_callbacks_get_a_clear_page(tmp_path: Path, provider: OidcProvider, case: str, status: int,
                                              says: str) -> None:
    async with oidc_console(tmp_path, provider, public_url=CONSOLE) as (client, resources):
        answer = await _provider_answer(client, provider, "alice")
        target = _with(answer)
        if case == "no state":
            target = _with(answer, state=None)
        elif case == "forged state":
            target = _with(answer, state="forged-by-someone-else")
        elif case == "another browser":
            client.cookies.clear()
        elif case == "forged cookie":
            client.cookies.set("authgate_oidc", "gAAAAA-not-sealed-here", path="/signin/oidc/sso")
        elif case == "another sign-in's nonce":
            client.cookies.set("authgate_oidc", _tampered(resources, client.cookies["authgate_oidc"],
                                                          nonce="nonce-of-another-sign-in"), path="/signin/oidc/sso")
        elif case == "another verifier":
            client.cookies.set("authgate_oidc", _tampered(resources, client.cookies["authgate_oidc"],
                                                          verifier="v" * 64), path="/signin/oidc/sso")
        elif case == "another issuer":
            target = _with(answer, iss="https://mixed-up.example")
        elif case == "no code":
            target = _with(answer, code=None)
        response = await client.get(target)
        assert response.status_code == status, response.text
        assert 'role="alert"' in response.text and says in response.text
        assert "Sign in with sso" in response.text, "the page offers to start again"
        assert "authgate_session" not in client.cookies
        assert (await client.get("/repositories")).status_code == 303, "nobody is signed in"
        await flush_audit(resources)
        failures = await list_events(resources.db, AuditFilter(action="auth:login:failure"))
        assert failures and failures[0]["details"] == {"via": "console", "source": "sso"}


async def test_a_cancelled_sign_in_says_so(tmp_path: Path, provider: OidcProvider) -> None:
    async with oidc_console(tmp_path, provider, public_url=CONSOLE) as (client, _):
        answer = await _provider_answer(client, provider, None)
        assert "error=access_denied" in answer
        response = await client.get(_with(answer))
        assert response.status_code == 403
        assert "sso did not sign you in (access_denied: the person cancelled the sign-in)" in response.text


async def test_a_provider_that_is_down_is_a_503_page(tmp_path: Path, provider: OidcProvider) -> None:
    async with oidc_console(tmp_path, provider, public_url=CONSOLE) as (client, _):
        answer = await _provider_answer(client, provider, "alice")
        provider.stop()
        response = await client.get(_with(answer))
        assert response.status_code == 503 and "cannot be reached; try again later" in response.text
        assert (await client.get("/signin/oidc/sso")).status_code in (303, 503)  # keys cached, or unreachable


async def test_unknown_providers_and_the_wrong_address(tmp_path: Path, provider: OidcProvider) -> None:
    async with oidc_console(tmp_path, provider) as (client, _):
        assert (await client.get("/signin/oidc/nope")).status_code == 404
        assert (await client.get("/signin/oidc/nope/callback?state=x&code=y")).status_code == 404
        # No public_url: the provider sends people back to http://localhost:5000, which a browser
        # at 127.0.0.1 would reach without its sign-in cookie. Said before leaving, not after.
        response = await client.get("/signin/oidc/sso", headers={"Host": "127.0.0.1:5000"})
        assert response.status_code == 400 and "http://localhost:5000/signin" in response.text
        odd = await client.get("/signin/oidc/sso", headers={"Host": "localhost:99999"})
        assert odd.status_code < 500, "a Host header with a port that is not one is no crash"
        same = await client.get("/signin/oidc/sso", headers={"Host": "localhost:5000"})
        assert same.status_code == 303, "the configured address itself goes on to the provider"
