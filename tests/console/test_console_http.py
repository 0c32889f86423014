"""The console over HTTP, in-process: sessions, CSRF, headers, policy on every view, bad input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import httpx
import pytest

from authgate.audit.query import AuditFilter, list_events
from authgate.auth import accounts
from authgate.console.sessions import load_session
from tests.console.support import (add_user, console_app, csrf_of, flush_audit, give_seal_key, push_image,
                                   put_manifest, sign_in)

pytestmark = pytest.mark.anyio
ALICE = ("alice", "alice-password")
BOB = ("bob", "bob-password")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["embedded", "gateway"])
def mode(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    """The settings of each mode: the embedded store, or the gateway in front of a real distribution
    (its own, so each test sees only what it pushed)."""
    if request.param == "embedded":
        yield {}
        return
    from tests.support.processes import Distribution

    upstream = Distribution(tmp_path / "upstream")
    try:
        yield {"upstream": upstream.url}
    finally:
        upstream.stop()


def _no_inline_script(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script> would need 'unsafe-inline'"
    assert " style=" not in html and "<style" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handlers are inline script"


async def test_sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE)
        page = await client.get("/signin")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        _no_inline_script(page.text)
        assert '<label for="username">' in page.text and '<label for="password">' in page.text
        client.cookies.set("authgate_session", "planted-before-sign-in")
        response = await sign_in(client, *ALICE)
        assert response.status_code == 303 and response.headers["location"] == "/repositories"
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("authgate_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        assert value != "planted-before-sign-in"  # rotated: a value set before sign-in is not the session
        client.cookies.clear()
        client.cookies.set("authgate_session", value)
        assert (await client.get("/repositories")).status_code == 200
        signed = await client.get("/repositories")
        out = await client.post("/signout", data={"csrf": csrf_of(signed.text)})
        assert out.status_code == 303
        assert await load_session(resources.db, value) is None  # ended server-side, not only forgotten
        client.cookies.set("authgate_session", value)
        again = await client.get("/repositories")
        assert again.status_code == 303 and again.headers["location"].startswith("/signin")


async def test_cookie_is_secure_under_https(tmp_path: Path) -> None:
    async with console_app(tmp_path, base_url="https://registry.test",
                           public_url="https://registry.test") as (client, resources):
        await add_user(resources, *ALICE)
        response = await sign_in(client, *ALICE)
        cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("authgate_session="))
        assert "Secure" in cookie


async def test_a_second_process_sees_the_session(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with console_app(tmp_path / "one", database_url=url) as (first, resources):
        await add_user(resources, *ALICE)
        await sign_in(first, *ALICE)
        value = first.cookies["authgate_session"]
        give_seal_key(tmp_path / "one", tmp_path / "two")
        async with console_app(tmp_path / "two", database_url=url) as (second, _):
            second.cookies.set("authgate_session", value)
            assert "Sign out" in (await second.get("/repositories")).text
            await first.post("/signout", data={"csrf": csrf_of((await first.get("/repositories")).text)})
            assert (await second.get("/repositories")).status_code == 303


async def test_wrong_password_is_refused_audited_and_limited_like_token(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE)
        wrong = await sign_in(client, "alice", "not-it")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        assert "authgate_session" not in client.cookies
        await flush_audit(resources)
        failures = await list_events(resources.db, AuditFilter(action="auth:login:failure"))
        assert failures and failures[0]["details"]["via"] == "console"
        statuses = [(await sign_in(client, "alice", f"guess-{i}")).status_code for i in range(12)]
        assert statuses[-1] == 429  # the limiter /token uses: the right password no longer gets in
        locked = await sign_in(client, *ALICE)
        assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
        token = await client.get("/token", auth=ALICE)
        assert token.status_code == 429


async def test_forms_without_the_csrf_token_are_refused(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await add_user(resources, *BOB)
        no_login_token = await client.post("/signin", data={"username": "alice", "password": ALICE[1]})
        assert no_login_token.status_code == 403 and "authgate_session" not in client.cookies
        await sign_in(client, *ALICE)
        refused = await client.post("/users", data={"name": "bob", "action": "disable"})
        assert refused.status_code == 403 and "security token" in refused.text
        forged = await client.post("/users", data={"name": "bob", "action": "disable", "csrf": "x" * 43})
        assert forged.status_code == 403
        assert not any(u.disabled for u in await accounts.list_users(resources.db))


async def test_repositories_follow_the_policy_and_hidden_ones_do_not_exist(tmp_path: Path,
                                                                          mode: dict[str, object]) -> None:
    async with console_app(tmp_path, **mode) as (client, resources):
        await add_user(resources, *ALICE)
        await add_user(resources, *BOB)
        digest = await push_image(client, ALICE, "alice/hello", "v1")
        await push_image(client, BOB, "bob/secret", "v1", b"bob's layer")
        await flush_audit(resources)
        await sign_in(client, *ALICE)
        listing = await client.get("/repositories")
        assert "alice/hello" in listing.text and "bob/secret" not in listing.text
        assert "1 repository you may pull" in listing.text
        repo = await client.get("/repositories/alice/hello")
        assert "v1" in repo.text and digest[:19] in repo.text and "user:alice" in repo.text
        tag = await client.get("/repositories/alice/hello/-/tags/v1")
        assert f"docker pull localhost:5000/alice/hello:v1" in tag.text and digest in tag.text
        hidden = await client.get("/repositories/bob/secret")
        missing = await client.get("/repositories/bob/nothing-here")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.text.replace("bob/secret", "X") == missing.text.replace("bob/nothing-here", "X")
        assert (await client.get("/repositories/alice/hello/-/tags/nope")).status_code == 404
        hidden_tag = await client.get("/repositories/bob/secret/-/tags/v1")
        missing_tag = await client.get("/repositories/bob/nothing-here/-/tags/v1")
        assert hidden_tag.status_code == missing_tag.status_code == 404
        assert hidden_tag.text.replace("bob/secret", "X") == missing_tag.text.replace("bob/nothing-here", "X")
        fragment = await client.get("/repositories", params={"q": "hel"}, headers={"HX-Request": "true"})
        assert "alice/hello" in fragment.text and "<html" not in fragment.text
        assert "alice/hello" not in (await client.get("/repositories", params={"q": "zzz"})).text


async def test_an_index_shows_its_platforms_and_referrers_their_artifact_type(tmp_path: Path,
                                                                            mode: dict[str, object]) -> None:
    async with console_app(tmp_path, **mode) as (client, resources):
        await add_user(resources, *ALICE)
        amd = await push_image(client, ALICE, "alice/multi", "amd64", b"amd")
        arm = await push_image(client, ALICE, "alice/multi", "arm64", b"arm")
        child = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1}
        await put_manifest(client, ALICE, "alice/multi", "v1", {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{**child, "digest": amd, "platform": {"os": "linux", "architecture": "amd64"}},
                          {**child, "digest": arm, "platform": {"os": "linux", "architecture": "arm64",
                                                                "variant": "v8"}}]})
        empty = {"mediaType": "application/vnd.oci.empty.v1+json",
                 "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}
        start = await client.post("/v2/alice/multi/blobs/uploads/", auth=ALICE)
        await client.put(start.headers["location"], params={"digest": empty["digest"]}, content=b"{}", auth=ALICE)
        await put_manifest(client, ALICE, "alice/multi", empty["digest"].replace(":", "-")[:20], {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json", "config": empty, "layers": [empty],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": 1}})
        await sign_in(client, *ALICE)
        index = await client.get("/repositories/alice/multi/-/tags/v1")
        assert "linux/amd64, linux/arm64/v8" in index.text
        image = await client.get("/repositories/alice/multi/-/tags/amd64")
        assert "application/spdx+json" in image.text


@pytest.mark.parametrize("path", [
    "/repositories?q=" + "a" * 300, "/repositories?page=-1", "/repositories?page=²", "/repositories?page=1e9",
    "/repositories/" + "A" * 400, "/repositories/%00", "/audit?since=yesterday", "/audit?digest=md5:1",
    "/audit?outcome=maybe", "/audit?before=x", "/audit/export?format=xml", "/tokens?user=%25",
    "/access?kind=user&name=nobody&repository=a/b", "/access?kind=group&name=x&repository=a/b",
    "/access?kind=user&name=alice&repository=Not/Valid",
])
async def test_bad_input_is_a_clear_page_never_a_500(tmp_path: Path, path: str) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await sign_in(client, *ALICE)
        response = await client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert "<h1>" in response.text and "Traceback" not in response.text


async def test_bad_forms_are_clear_pages(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await sign_in(client, *ALICE)
        csrf = csrf_of((await client.get("/users")).text)
        cases = [
            ("/users", {"name": "ghost", "action": "disable"}, 404),
            ("/users", {"name": "alice", "action": "disable"}, 400),
            ("/users", {"name": "x" * 2000, "action": "disable"}, 400),
            ("/robots/state", {"name": "someone-elses", "action": "disable"}, 404),
            ("/robots", {"name": "Bad Name", "expires": "90d"}, 400),
            ("/robots", {"name": "ci", "expires": "forever"}, 400),
            ("/tokens", {"id": "99999"}, 404),
            ("/tokens", {"id": "1; drop"}, 400),
            ("/teams", {"action": "add", "team": "nope", "user": "alice"}, 400),
        ]
        for path, data, status in cases:
            response = await client.post(path, data={"csrf": csrf, **data})
            assert response.status_code == status, (path, data, response.status_code)
            assert "Traceback" not in response.text
        raw = await client.post("/users", content=b"\xff\xfe", headers={"content-type": "application/json"})
        assert raw.status_code == 400


async def test_admin_pages_are_for_admins_and_changes_are_audited(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await add_user(resources, *BOB)
        bob = httpx.AsyncClient(transport=client._transport, base_url="http://localhost:5000")
        async with bob:
            await sign_in(bob, *BOB)
            for path in ("/users", "/tokens", "/robots", "/audit", "/audit/export"):
                assert (await bob.get(path)).status_code == 403, path
            bob_csrf = csrf_of((await bob.get("/repositories")).text)
            assert (await bob.post("/users", data={"csrf": bob_csrf, "name": "alice", "action": "disable"})
                    ).status_code == 403
            await sign_in(client, *ALICE)
            csrf = csrf_of((await client.get("/users")).text)
            assert (await client.post("/users", data={"csrf": csrf, "name": "bob", "action": "disable"})
                    ).status_code == 303
            assert (await bob.get("/repositories")).status_code == 303  # bob's session ended with his account
        created = await client.post("/robots", data={"csrf": csrf, "name": "ci", "expires": "30d"})
        secret = re.search(r"agr_[A-Za-z0-9_-]+", created.text)
        assert secret and "docker login localhost:5000 -u robot+ci --password-stdin" in created.text
        assert secret.group(0) not in (await client.get("/robots")).text  # shown once
        await client.post("/teams", data={"csrf": csrf, "action": "create", "team": "backend"})
        await client.post("/teams", data={"csrf": csrf, "action": "add", "team": "backend", "user": "alice"})
        assert (await accounts.list_teams(resources.db)) == {"backend": ["alice"]}
        await flush_audit(resources)
        events = await list_events(resources.db, AuditFilter(actor="user:alice"))
        done = {(e["action"], e["reference"]) for e in events if (e["details"] or {}).get("via") == "console"}
        assert {("user:disable", "bob"), ("robot:create", "ci"), ("team:create", "backend"),
                ("team:add", "backend")} <= done
        assert secret.group(0) not in str(events)


async def test_access_page_explains_with_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "teams.yaml").write_text(
        "rules:\n"
        "  - name: backend pushes\n"
        "    subjects: [team:backend]\n"
        "    repositories: [backend/**]\n"
        "    allow: [pull, push]\n")
    async with console_app(tmp_path, policies=policies) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await sign_in(client, *ALICE)
        page = await client.get("/access", params={"kind": "team", "name": "backend", "repository": "backend/api"})
        assert page.status_code == 200, page.text
        assert "teams.yaml:2" in page.text and "allowed" in page.text


async def test_audit_search_export_and_chain(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        digest = await push_image(client, ALICE, "alice/hello", "v1")
        await push_image(client, ALICE, "alice/other", "v1", b"other")
        await flush_audit(resources)
        await sign_in(client, *ALICE)
        found = await client.get("/audit", params={"digest": digest})
        assert found.text.count("<td>manifest:push</td>") == 1 and "alice/hello" in found.text
        failures = await client.get("/audit", params={"outcome": "failure"})
        assert "<td>manifest:push</td>" not in failures.text
        jsonl = await client.get("/audit/export", params={"format": "jsonl", "digest": digest})
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert [line.count(digest) > 0 for line in jsonl.text.splitlines()] == [True]
        csv = await client.get("/audit/export", params={"format": "csv", "repository": "alice/other"})
        assert csv.text.splitlines()[0].startswith("seq,time,actor") and "alice/hello" not in csv.text
        chain = await client.get("/audit/chain", headers={"HX-Request": "true"})
        assert "Chain verified through event" in chain.text and "<html" not in chain.text


async def test_non_admins_ask_about_themselves_and_see_their_own_teams(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE)
        await add_user(resources, *BOB)
        for team, members in (("backend", ["alice"]), ("secret-ops", ["bob"])):
            await accounts.create_team(resources.db, team)
            await accounts.add_members(resources.db, team, members)
        await sign_in(client, *ALICE)
        mine = await client.get("/access", params={"kind": "user", "name": "alice", "repository": "alice/app"})
        assert mine.status_code == 200 and "allowed by own-namespace (&lt;built-in&gt;:2)" in mine.text
        other = await client.get("/access", params={"kind": "user", "name": "bob", "repository": "bob/app"})
        assert other.status_code == 403
        teams = await client.get("/teams")
        assert "backend" in teams.text and "secret-ops" not in teams.text
        assert "Create team" not in teams.text
        csrf = csrf_of(teams.text)
        refused = await client.post("/teams", data={"csrf": csrf, "action": "create", "team": "mine"})
        assert refused.status_code == 403 and "mine" not in await accounts.list_teams(resources.db)


async def test_gateway_mode_reads_the_upstream_and_says_when_it_is_down(tmp_path: Path) -> None:
    """The catalog is the upstream's (a repository pushed there directly is listed, under the same
    policy); an upstream that stops answering is a 503 page, never a 500; a hidden repository
    stays a 404 without asking the upstream."""
    from tests.support.processes import Distribution

    upstream = Distribution(tmp_path / "upstream")
    try:
        async with console_app(tmp_path, upstream=upstream.url) as (client, resources):
            await add_user(resources, *ALICE, admin=True)
            async with httpx.AsyncClient(base_url=upstream.url) as direct:
                for name in ("alice/direct", "bob/direct"):
                    await push_image(direct, ALICE, name, "v1")  # distribution here takes no credentials
            await sign_in(client, *ALICE)
            listing = await client.get("/repositories")
            assert "alice/direct" in listing.text and "bob/direct" not in listing.text
            tag = await client.get("/repositories/alice/direct/-/tags/v1")
            assert tag.status_code == 200 and "not in the audit log" in tag.text
            assert "alice" in (await client.get("/users")).text
            upstream.stop()
            for path in ("/repositories/alice/direct", "/repositories/alice/direct/-/tags/v1"):
                down = await client.get(path)
                assert down.status_code == 503 and "unavailable" in down.text and upstream.url not in down.text
            assert (await client.get("/repositories/bob/direct")).status_code == 404
            assert "alice" in (await client.get("/users")).text
    finally:
        upstream.stop()


async def test_admins_unlock_a_locked_out_user_and_it_is_audited(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await add_user(resources, *BOB)
        for i in range(10):
            assert (await client.get("/token", auth=("bob", f"guess-{i}"))).status_code == 401
        assert (await client.get("/token", auth=BOB)).status_code == 429
        await sign_in(client, *ALICE)
        users = await client.get("/users")
        assert "Unlock bob" in users.text
        refused = await client.post("/users", data={"name": "bob", "action": "unlock"})
        assert refused.status_code == 403  # no CSRF token
        ghost = await client.post("/users", data={"csrf": csrf_of(users.text), "name": "ghost", "action": "unlock"})
        assert ghost.status_code == 404
        done = await client.post("/users", data={"csrf": csrf_of(users.text), "name": "bob", "action": "unlock"})
        assert done.status_code == 200 and "Unlocked bob" in done.text
        await anyio.sleep(1.1)  # a locked name asks the database at most once a second
        assert (await client.get("/token", auth=BOB)).status_code == 200
        await flush_audit(resources)
        events = await list_events(resources.db, AuditFilter(action="user:unlock"))
        assert [(e["actor_name"], e["reference"], e["outcome"]) for e in events] == [("alice", "bob", "success")]


async def test_admins_change_a_robots_expiry(tmp_path: Path) -> None:
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await accounts.create_robot(resources.db, "ci", timedelta(days=7))
        await sign_in(client, *ALICE)
        page = await client.get("/robots")
        assert '<label for="expires-1">New expiry for ci, from now</label>' in page.text
        csrf = csrf_of(page.text)
        assert (await client.post("/robots/expiry", data={"name": "ci", "expires": "never"})).status_code == 403
        assert (await client.post("/robots/expiry", data={"csrf": csrf, "name": "ci", "expires": "soon"})
                ).status_code == 400
        assert (await client.post("/robots/expiry", data={"csrf": csrf, "name": "ghost", "expires": "30d"})
                ).status_code == 404
        changed = await client.post("/robots/expiry", data={"csrf": csrf, "name": "ci", "expires": "365d"})
        assert changed.status_code == 303
        row = re.search(r"<th scope=\"row\">ci</th>.*?</tr>", (await client.get("/robots")).text, re.S)
        in_a_year = (datetime.now(timezone.utc) + timedelta(days=365)).strftime("%Y-%m-%d")
        assert row and in_a_year in row.group(0) and ">active<" in row.group(0)
        await client.post("/robots/expiry", data={"csrf": csrf, "name": "ci", "expires": "never"})
        assert (await accounts.list_robots(resources.db))[0].expires_at is None
        await flush_audit(resources)
        events = await list_events(resources.db, AuditFilter(action="robot:expire"))
        assert [(e["actor_name"], e["reference"], e["details"]["expires"]) for e in events
                if e["outcome"] == "success"] == [("alice", "ci", "never"), ("alice", "ci", "365d")]


async def test_token_server_mode_says_the_registry_serves_its_content(tmp_path: Path) -> None:
    async with console_app(tmp_path, registry_url="https://registry.example.test") as (client, resources):
        await add_user(resources, *ALICE, admin=True)
        await sign_in(client, *ALICE)
        for path in ("/repositories", "/repositories/alice/hello"):
            page = await client.get(path)
            assert page.status_code == 501 and "serves its content itself" in page.text
        assert "alice" in (await client.get("/users")).text
