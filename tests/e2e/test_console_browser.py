"""The web console in a real browser (Debian's chromium under playwright) against `authgate serve`,
with real `docker push`/`pull`/`login`: what a person would click, and what docker then does."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import chromium
from tests.support.processes import AuthgateServer, Dockerd

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e
PASSWORDS = {"alice": "alice-Pa55-console", "bob": "bob-Pa55-console"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    server = AuthgateServer(tmp_path_factory.mktemp("authgate-console"), bcrypt_rounds="4").start()
    server.cli("user", "add", "alice", "--admin", "--password-stdin", input=PASSWORDS["alice"] + "\n")
    server.cli("user", "add", "bob", "--password-stdin", input=PASSWORDS["bob"] + "\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


class _Docker:
    """One docker client config (its own stored logins) on the shared test dockerd."""

    def __init__(self, dockerd: Dockerd, config: Path) -> None:
        config.mkdir(parents=True, exist_ok=True)
        self.env = {**dockerd.env, "DOCKER_CONFIG": str(config)}

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, input=input, capture_output=True, text=True,
                                timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}\n{result.stderr}")
        return result


def _shot(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def _sign_in_by_keyboard(page: Page, server: AuthgateServer, name: str) -> None:
    """Keyboard only: the user name field has focus, Tab to the password, Enter submits."""
    page.goto(f"{server.url}/")
    assert page.url.endswith("/signin")
    # The field takes focus by itself (autofocus); on a loaded machine that can come after "load".
    page.wait_for_function("document.activeElement && document.activeElement.id === 'username'", timeout=10_000)
    page.keyboard.type(name)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS[name])
    page.keyboard.press("Enter")
    page.wait_for_url("**/repositories")


def _fits_at_400_percent(page: Page) -> bool:
    """A 1280 px wide screen at 400% zoom is 320 CSS px: nothing but tables may scroll sideways."""
    page.set_viewport_size({"width": 320, "height": 640})
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 800})
    return bool(fits)


def test_console_end_to_end(server: AuthgateServer, dockerd: Dockerd, browser: Browser,
                            tmp_path_factory: pytest.TempPathFactory) -> None:
    shots = tmp_path_factory.mktemp("console-screenshots")
    work = tmp_path_factory.mktemp("console-docker")
    alice, bob = _Docker(dockerd, work / "alice"), _Docker(dockerd, work / "bob")
    registry = server.registry
    for name, client in (("alice", alice), ("bob", bob)):
        client.run("login", "-u", name, "--password-stdin", registry, input=PASSWORDS[name])
    dockerd.build_busybox(f"{registry}/alice/hello", message="hello from the console test")
    alice.run("push", f"{registry}/alice/hello")
    dockerd.build_busybox(f"{registry}/bob/secret", message="bob's own image")
    bob.run("push", f"{registry}/bob/secret")
    repo_digest = alice.run("inspect", "--format", "{{index .RepoDigests 0}}", f"{registry}/alice/hello").stdout
    digest = repo_digest.strip().rsplit("@", 1)[1]

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    _sign_in_by_keyboard(page, server, "alice")

    # Repositories: hers, not bob's.
    page.get_by_role("link", name="alice/hello").wait_for()  # waits (bounded) for it to be visible
    assert "bob/secret" not in page.content()
    assert _fits_at_400_percent(page)
    _shot(page, shots, "repositories")
    # Search updates the list in place (htmx, under the CSP), and the URL follows.
    page.get_by_label("Search repositories").fill("zzz")
    page.get_by_text("0 repositories you may pull").wait_for()
    page.get_by_label("Search repositories").fill("hel")
    page.get_by_role("link", name="alice/hello").wait_for()
    assert "q=hel" in page.url

    # The tag page shows the pull command, and Copy puts it on the clipboard.
    page.get_by_role("link", name="alice/hello").click()
    page.get_by_role("link", name="latest").click()
    command = f"docker pull {registry}/alice/hello:latest"
    assert page.locator("#pull-command").inner_text() == command
    assert digest in page.content()
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == command
    assert _fits_at_400_percent(page)
    _shot(page, shots, "tag")

    # A robot: the secret is shown once, and docker logs in with it.
    page.get_by_role("link", name="Robots").click()
    page.get_by_label("Name").fill("ci-deploy")
    page.get_by_label("Expires after").select_option("30d")
    page.get_by_role("button", name="Create robot").click()
    secret = page.locator("#robot-secret").inner_text().strip()
    login_line = page.locator("#robot-login").inner_text()
    assert f"-u robot+ci-deploy" in login_line and registry in login_line
    assert _fits_at_400_percent(page)
    _shot(page, shots, "robots")
    robot = _Docker(dockerd, work / "robot")
    assert "Login Succeeded" in robot.run("login", "-u", "robot+ci-deploy", "--password-stdin", registry,
                                          input=secret).stdout
    assert robot.run("login", "-u", "robot+ci-deploy", "--password-stdin", registry, input=secret + "x",
                     check=False).returncode != 0

    # The audit page finds her push by its digest.
    page.get_by_role("link", name="Audit").click()
    page.get_by_label("Digest").fill(digest)
    page.get_by_role("button", name="Search").click()
    row = page.locator("tbody tr", has_text="manifest:push")
    row.first.wait_for()
    assert row.count() == 1 and "user:alice" in row.inner_text() and "alice/hello" in row.inner_text()
    page.get_by_role("link", name="Verify the chain").click()
    page.get_by_text("Chain verified through event").wait_for()
    assert _fits_at_400_percent(page)
    _shot(page, shots, "audit")

    # Bob can pull his image, then an admin disables him and his next pull fails.
    dockerd.run("rmi", f"{registry}/bob/secret")
    bob.run("pull", f"{registry}/bob/secret")
    page.get_by_role("link", name="Users").click()
    page.get_by_role("button", name="Disable bob").click()
    page.locator("tr", has_text="bob").get_by_text("disabled").wait_for()  # the page after the POST
    assert _fits_at_400_percent(page)
    _shot(page, shots, "users")
    dockerd.run("rmi", f"{registry}/bob/secret")
    refused = bob.run("pull", f"{registry}/bob/secret", check=False)
    assert refused.returncode != 0

    # A POST without the form's CSRF token (with alice's session cookie) is refused.
    forged = page.request.post(f"{server.url}/users", form={"name": "bob", "action": "enable"})
    assert forged.status == 403
    page.reload()
    page.locator("tr", has_text="bob").get_by_text("disabled").wait_for()

    assert console_errors == []  # e.g. no "Refused to apply inline style" from the Content-Security-Policy

    # A repository she cannot pull answers as if it did not exist.
    hidden = page.goto(f"{server.url}/repositories/bob/secret")
    assert hidden is not None and hidden.status == 404
    hidden_text = page.locator("main").inner_text()
    missing = page.goto(f"{server.url}/repositories/alice/never-pushed")
    assert missing is not None and missing.status == 404
    assert page.locator("main").inner_text() == hidden_text
    context.close()
