"""An OpenID provider (npm `oidc-provider`, run by tests/support/oidc/provider.mjs) on loopback.

Each configured client stands for a CI job: `token(client)` returns its client-credentials access
token, a JWT signed with the provider's current key and carrying the client's claims, like a CI
platform's workload token. Restarting the provider rotates its signing key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.support.processes import REPO_ROOT, Daemon, free_port, http_ok, missing_component, require

PROVIDER_DIR = REPO_ROOT / "tests" / "support" / "oidc"


class OidcProvider:
    def __init__(self, workdir: Path, clients: list[dict[str, Any]], port: int | None = None,
                 accounts: dict[str, list[str]] | None = None, device_client: str = "",
                 redirect_uris: tuple[str, ...] = ()) -> None:
        """`accounts`: people (login -> groups) who can sign in with `device_client`, a public client
        (also for the authorization code grant, to `redirect_uris`, when given)."""
        require("node")
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            missing_component(f"npm oidc-provider not installed (npm ci --prefix {PROVIDER_DIR})")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.clients = {c["client_id"]: c for c in clients}
        self.config = workdir / "provider.json"
        self.config.write_text(json.dumps({
            "clients": clients, "accounts": {k: {"groups": v} for k, v in (accounts or {}).items()},
            "device_client": device_client, "redirect_uris": list(redirect_uris)}))
        self.daemon: Daemon | None = None
        self.start()

    def start(self) -> None:
        self.daemon = Daemon(["node", str(PROVIDER_DIR / "provider.mjs"), str(self.port), str(self.config)],
                             self.workdir / "provider.log")
        self.daemon.wait_until(http_ok(f"{self.issuer}/.well-known/openid-configuration"), "oidc-provider", 30)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def restart(self) -> None:
        """A new signing key (kid), as an issuer's key rotation."""
        self.stop()
        self.start()

    def token(self, client_id: str, audience: str) -> str:
        client = self.clients[client_id]
        response = httpx.post(f"{self.issuer}/token", auth=(client_id, client["client_secret"]), timeout=10,
                              data={"grant_type": "client_credentials", "resource": audience, "scope": "registry"})
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token


_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"/>')


def sign_in(provider: OidcProvider, verification_uri: str, login: str) -> str:
    """What a person does in the browser after `authgate login --oidc` printed the URL: open it,
    confirm the code, sign in as `login`. Returns the provider's closing page."""
    with httpx.Client(timeout=10) as browser:
        page = browser.get(verification_uri)
        for _ in range(2):  # the code page (prefilled from the URL), then "Confirm device"
            fields = dict(_HIDDEN.findall(page.text))
            page = browser.post(f"{provider.issuer}/device", data=fields)
            if page.status_code in (302, 303):
                break
        for _ in range(10):  # the provider's redirects through its sign-in; ours signs `login` in
            if page.status_code not in (302, 303):
                break
            location = page.headers["location"]
            url = location if location.startswith("http") else provider.issuer + location
            if "/interaction/" in url:
                url += ("&" if "?" in url else "?") + f"login={login}"
            page = browser.get(url)
        assert page.status_code == 200, page.text
        return page.text


def authorize(provider: OidcProvider, authorization_url: str, login: str | None) -> str:
    """What a browser does with the provider's sign-in for the authorization code grant: follow the
    redirects, sign in as `login` on the login page (None: press Cancel). Returns the URL the
    provider finally sends the browser to (the client's redirect URI with code and state)."""
    with httpx.Client(timeout=10) as browser:
        url = authorization_url
        for _ in range(10):
            page = browser.get(url)
            if "/interaction/" in url and page.status_code == 200:  # the login page
                url += ("?cancel=1" if login is None else f"?login={login}")
                continue
            assert page.status_code in (302, 303), page.text
            location = page.headers["location"]
            url = location if location.startswith("http") else provider.issuer + location
            if not url.startswith(provider.issuer):
                return url
        raise AssertionError("the provider did not send the browser back")


def set_account(provider: OidcProvider, login: str, groups: list[str] | None) -> None:
    """Change an account at the provider (groups), or remove it (None): what an administrator does."""
    params = {"login": login, **({"groups": ",".join(groups)} if groups is not None else {"delete": "1"})}
    assert httpx.get(f"{provider.issuer}/test/account", params=params, timeout=10).status_code == 200
