"""Console sign-in with an OpenID provider in a real browser (Debian's chromium under playwright):
`authgate serve` and npm oidc-provider on loopback, the person signing in on the provider's own
login page. authgate is at `localhost` and the provider at `127.0.0.1`, two sites, so the way back
is a cross-site navigation, as with a real provider (the cookies must be SameSite=Lax, not Strict)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import pytest

from tests.console.support import push_image
from tests.support.browser import chromium
from tests.support.identity_setup import oidc_people, write_identity, write_policies
from tests.support.oidc_provider import OidcProvider
from tests.support.processes import AuthgateServer, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e
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
BUILDER = ("builder", "builder-Pa55-oidc")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, OidcProvider]]:
    work = tmp_path_factory.mktemp("console-oidc")
    port = free_port()
    console = f"http://localhost:{port}"
    provider = OidcProvider(work / "provider", [], accounts={"alice": ["backend"]}, device_client="authgate",
                            redirect_uris=(f"{console}/signin/oidc/sso/callback",))
    identity = write_identity(work / "identity.yaml", oidc_people(provider.issuer))
    server = AuthgateServer(work, port=port, public_url=console, policies=str(write_policies(work, POLICY)),
                            identity=str(identity), bcrypt_rounds="4")
    try:
        server.start()
        server.cli("user", "add", "builder", "--password-stdin", input=BUILDER[1] + "\n")

        async def push() -> None:
            async with httpx.AsyncClient(base_url=console, timeout=30) as client:
                await push_image(client, BUILDER, "backend/api", "1")
                await push_image(client, BUILDER, "frontend/web", "1")

        anyio.run(push)
        yield server, provider
    finally:
        server.stop()
        provider.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def _errors(page: Page, origin: str) -> list[str]:
    """Errors the browser reports on authgate's pages (the test provider has no favicon: not ours)."""
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and message.location.get("url", "").startswith(origin) else None)
    return errors


def test_a_person_signs_in_on_the_providers_page_and_sees_their_repositories(
        servers: tuple[AuthgateServer, OidcProvider], browser: Browser, tmp_path: Path) -> None:
    server, provider = servers
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors = _errors(page, server.url)
    page.goto(f"{server.url}/repositories")
    page.wait_for_url("**/signin?next=/repositories")
    page.screenshot(path=str(tmp_path / "signin-with-provider.png"), full_page=True)
    page.get_by_role("link", name="Sign in with sso").click()

    page.get_by_role("heading", name="Sign in to the test provider").wait_for()  # the provider's own page
    assert page.url.startswith(provider.issuer)
    page.get_by_label("Login").fill("alice")
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(f"{server.url}/repositories")
    page.get_by_role("link", name="backend/api").wait_for()
    assert "frontend/web" not in page.content()
    assert page.locator("header").get_by_text("alice").is_visible()
    cookies = {c["name"]: c for c in context.cookies(server.url)}
    assert cookies["authgate_session"]["httpOnly"] and cookies["authgate_session"]["sameSite"] == "Lax"
    assert "authgate_oidc" not in cookies, "the sign-in cookie is gone once used"
    page.screenshot(path=str(tmp_path / "signed-in-with-provider.png"), full_page=True)
    assert errors == []  # nothing refused by the Content-Security-Policy
    context.close()


def test_a_forged_state_is_refused(servers: tuple[AuthgateServer, OidcProvider], browser: Browser) -> None:
    server, provider = servers
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/signin")
    page.get_by_role("link", name="Sign in with sso").click()
    page.get_by_role("heading", name="Sign in to the test provider").wait_for()
    # Instead of the provider's answer, a link someone else made: their code, their state.
    forged = page.goto(f"{server.url}/signin/oidc/sso/callback?code=someone-elses-code&state=forged"
                       f"&iss={provider.issuer}")
    assert forged is not None and forged.status == 400
    alert = page.get_by_role("alert")
    assert "does not belong to the sign-in this browser started" in alert.inner_text()
    assert "authgate_session" not in {c["name"] for c in context.cookies(server.url)}
    page.goto(f"{server.url}/repositories")
    page.wait_for_url("**/signin?next=/repositories")  # nobody signed in
    context.close()


def test_cancelling_at_the_provider_says_so(servers: tuple[AuthgateServer, OidcProvider], browser: Browser) -> None:
    server, _ = servers
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/signin")
    page.get_by_role("link", name="Sign in with sso").click()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("alert").wait_for()
    assert page.url.startswith(f"{server.url}/signin/oidc/sso/callback")
    assert "sso did not sign you in (access_denied" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name="Sign in with sso").wait_for()  # and offers to start again
    context.close()
