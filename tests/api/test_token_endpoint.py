"""`/token` through HTTP, in-process, on SQLite and PostgreSQL: grants, dialects, refresh tokens, bad input."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from passlib.hash import sha512_crypt

from authgate.auth import accounts
from authgate.auth.account_store import DatabaseAccounts
from authgate.auth.refresh import list_refresh_tokens
from authgate.auth.services import auth_of
from authgate.resources import Resources
from tests.api.registry_support import AuditLog
from tests.api.token_support import SERVICE, add_user, basic, token_app

pytestmark = pytest.mark.anyio
Ctx = tuple[httpx.AsyncClient, Resources, AuditLog]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def ctx(tmp_path: Path, database_url: str) -> AsyncIterator[Ctx]:
    async with token_app(tmp_path, database_url) as (client, resources, audit):
        await add_user(resources, "alice", "alice-pw")
        await add_user(resources, "bob", "bob-pw")
        yield client, resources, audit


def _access(resources: Resources, body: dict[str, object]) -> dict[tuple[str, str], frozenset[str]]:
    assert body["token"] == body["access_token"]
    return auth_of(resources).tokens.verify(str(body["access_token"])).access


async def test_grants_are_the_intersection_of_asked_and_allowed(ctx: Ctx) -> None:
    client, resources, audit = ctx
    response = await client.get(
        "/token",
        params=[("service", SERVICE), ("account", "alice"), ("scope", "repository:alice/app:pull,push"),
                ("scope", "repository:bob/app:pull repository(plugin):alice/tool:delete registry:catalog:*")],
        headers={**basic("alice", "alice-pw"), "User-Agent": "docker/20.10"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert type(body["expires_in"]) is int and body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body
    assert _access(resources, body) == {
        ("repository", "alice/app"): frozenset({"pull", "push"}),
        ("repository", "bob/app"): frozenset(),
        ("repository", "alice/tool"): frozenset({"delete"}),
        ("registry", "catalog"): frozenset(),  # a stock registry's catalog is unfiltered: admins only
    }
    issue = [e for e in (await audit.events()) if e["action"] == "token:issue"][-1]
    assert issue["actor"] == "user:alice" and issue["address"] == "192.0.2.7" and issue["user_agent"] == "docker/20.10"
    assert issue["details"] is not None and "repository:bob/app:pull" in str(issue["details"]["requested"])
    assert "bob/app" not in str(issue["details"]["granted"]).replace("repository:bob/app:", "")


async def test_only_admins_get_the_unfiltered_catalog_scope(ctx: Ctx) -> None:
    client, resources, _ = ctx
    await add_user(resources, "root", "root-pw", admin=True)
    response = await client.get("/token", params={"scope": "registry:catalog:*"}, headers=basic("root", "root-pw"))
    assert _access(resources, response.json()) == {("registry", "catalog"): frozenset({"*"})}


async def test_anonymous_gets_a_token_with_nothing_granted(ctx: Ctx) -> None:
    client, resources, _ = ctx
    for headers in ({}, {"Authorization": "Basic Og=="}):
        response = await client.get("/token", params={"scope": "repository:alice/app:pull registry:catalog:*"},
                                    headers=headers)
        assert response.status_code == 200
        assert _access(resources, response.json()) == {("repository", "alice/app"): frozenset(),
                                                        ("registry", "catalog"): frozenset()}


async def test_docker_login_then_refresh_grant_returns_the_same_refresh_token(ctx: Ctx) -> None:
    client, resources, audit = ctx
    login = await client.get("/token", params={"account": "alice", "client_id": "docker", "offline_token": "true",
                                               "service": SERVICE}, headers=basic("alice", "alice-pw"))
    assert login.status_code == 200
    refresh = login.json()["refresh_token"]
    assert "auth:login" in (await audit.actions())
    form = {"grant_type": "refresh_token", "client_id": "docker", "service": SERVICE, "refresh_token": refresh,
            "scope": "repository:alice/app:pull,push repository:bob/app:pull"}
    response = await client.post("/token", data=form)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"] == refresh
    assert set(body["scope"].split(" ")) == {"repository:alice/app:pull,push", "repository:bob/app:"}
    assert _access(resources, body)[("repository", "alice/app")] == {"pull", "push"}
    stored = await list_refresh_tokens(resources.db)
    assert len(stored) == 1

    await accounts.set_password(resources.db, "alice", auth_of(resources).verifier.hash("new-pw"))
    assert (await client.post("/token", data=form)).status_code == 401, "a password change kills refresh tokens"


async def test_refresh_token_dies_with_disable_and_is_bound_to_the_service(ctx: Ctx) -> None:
    client, resources, _ = ctx
    form = {"grant_type": "password", "client_id": "containerd-client", "username": "bob", "password": "bob-pw",
            "access_type": "offline", "scope": "repository:bob/app:pull"}
    response = await client.post("/token", data=form)
    assert response.status_code == 200, response.text
    refresh = response.json()["refresh_token"]
    grant = {"grant_type": "refresh_token", "client_id": "x", "refresh_token": refresh}
    assert (await client.post("/token", data={**grant, "service": "other"})).status_code == 400
    assert (await client.post("/token", data=grant)).status_code == 200
    await accounts.set_disabled(resources.db, "bob", True)
    assert (await client.post("/token", data=grant)).status_code == 401
    assert (await client.post("/token", data={**grant, "refresh_token": "agrt_unknown"})).status_code == 401


async def test_a_disabled_account_is_told_so_once_its_password_or_token_proves_who_asks(ctx: Ctx) -> None:
    client, resources, audit = ctx
    form = {"grant_type": "password", "client_id": "docker", "username": "bob", "password": "bob-pw",
            "access_type": "offline", "service": SERVICE}
    refresh = (await client.post("/token", data=form)).json()["refresh_token"]
    await accounts.set_disabled(resources.db, "bob", True)
    disabled = "the account bob is disabled; an administrator can enable it (`authgate user enable bob`)"
    refused = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "docker",
                                                "service": SERVICE, "refresh_token": refresh})
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["message"] == disabled, "not 'run docker login again', which fails too"
    failure = (await audit.events())[-1]
    assert (failure["action"], failure["actor"], failure["reason"]) == ("auth:login:failure", "user:bob", "user disabled"), \
        "a refused refresh token is attributed to its owner, not to anonymous"
    relogin = await client.get("/token", headers=basic("bob", "bob-pw"))
    assert (relogin.status_code, relogin.json()["errors"][0]["message"]) == (401, disabled)
    wrong = await client.get("/token", headers=basic("bob", "not-bobs-pw"))
    assert wrong.json()["errors"][0]["message"] == "invalid username or password", "a guess learns nothing"
    unknown = await client.post("/token", data={"grant_type": "refresh_token", "client_id": "docker",
                                                "refresh_token": "agrt_unknown"})
    assert unknown.json()["errors"][0]["message"].startswith("the refresh token is invalid")
    assert (await audit.events())[-1]["actor"] == "anonymous"


async def test_password_grant_without_offline_has_no_refresh_token(ctx: Ctx) -> None:
    client, resources, _ = ctx
    response = await client.post("/token", data={"grant_type": "password", "client_id": "c", "username": "alice",
                                                 "password": "alice-pw", "scope": "repository:alice/a:pull"})
    assert response.status_code == 200
    assert "refresh_token" not in response.json() and response.json()["scope"] == "repository:alice/a:pull"


@pytest.mark.parametrize(
    ("method", "params", "headers", "status"),
    [
        ("GET", "scope=repository:alice/app", {}, 400),
        ("GET", "scope=repository:alice//app:pull", {}, 400),
        ("GET", "scope=" + "repository:a/b:pull%20" * 500, {}, 400),
        ("GET", "scope=repository:alice/%ff:pull", {}, 400),
        ("GET", "service=other", {}, 400),
        ("GET", "service=a&service=b", {}, 400),
        ("GET", "account=bob", "alice", 400),
        ("GET", "account=alice", {}, 400),
        ("GET", "", {"Authorization": "Basic %%%"}, 400),
        ("GET", "", {"Authorization": "Bearer abc"}, 400),
        ("GET", "", "wrong", 401),
        ("POST", "grant_type=client_credentials&client_id=x", {}, 400),
        ("POST", "grant_type=password&username=alice&password=alice-pw", {}, 400),
        ("POST", "grant_type=password&client_id=x", {}, 400),
        ("POST", "grant_type=refresh_token&client_id=x", {}, 400),
        ("POST", "grant_type=password&client_id=x&username=alice&password=%ff", {}, 400),
        ("POST", "grant_type=password&client_id=x&username=alice&password=nope", {}, 401),
        ("POST", "grant_type=password&client_id=x&username=nobody&password=nope", {}, 401),
        ("POST", "grant_type=password&client_id=x&username=alice&password=" + "p" * 20000, {}, 400),
    ],
)
async def test_bad_input_is_a_4xx_json_that_echoes_no_secret(
    ctx: Ctx, method: str, params: str, headers: dict[str, str] | str, status: int
) -> None:
    client = ctx[0]
    if headers == "alice":
        headers = basic("alice", "alice-pw")
    elif headers == "wrong":
        headers = basic("alice", "Secret-Guess-42")
    if method == "GET":
        response = await client.get(f"/token?{params}", headers=headers)
    else:
        response = await client.post("/token", content=params,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["errors"][0]["code"] and body["error"]
    for secret in ("alice-pw", "Secret-Guess-42", "nope", "ppppp"):
        assert secret not in response.text


async def test_post_requires_a_form(ctx: Ctx) -> None:
    response = await ctx[0].post("/token", json={"grant_type": "password"})
    assert response.status_code == 400 and "x-www-form-urlencoded" in response.json()["error_description"]


async def test_repeated_failures_are_refused_with_429_and_retry_after(ctx: Ctx) -> None:
    client, resources, audit = ctx
    audit.record_every_failure()
    # Pings without credentials and anonymous token requests never count (gitlab#35617).
    for _ in range(15):
        assert (await client.get("/v2/")).status_code == 401
        assert (await client.get("/token", params={"scope": "repository:alice/app:pull"})).status_code == 200
    for i in range(9):
        assert (await client.get("/token", headers=basic("alice", f"guess-{i}"))).status_code == 401
    assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200
    for i in range(10):
        assert (await client.get("/token", headers=basic("alice", f"again-{i}"))).status_code == 401
    response = await client.get("/token", headers=basic("alice", "alice-pw"))
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    for _ in range(5):
        assert (await client.get("/v2/", headers=basic("alice", "alice-pw"))).status_code == 429
        assert (await client.get("/token", headers=basic("alice", "x"))).status_code == 429
    # 19 wrong passwords and the first locked-out try; later refusals of the same lockout are not
    # recorded one by one, so a client hammering a locked account cannot grow the audit log.
    assert (await audit.actions()).count("auth:login:failure") == 20
    assert (await client.get("/token", headers=basic("bob", "bob-pw"))).status_code == 200, "bob is not locked"


async def test_robots_log_in_with_their_secret_until_disabled_or_expired(ctx: Ctx) -> None:
    client, resources, _ = ctx
    secret = await accounts.create_robot(resources.db, "ci", timedelta(days=1))
    response = await client.get("/token", headers=basic("robot+ci", secret), params={"offline_token": "true"})
    assert response.status_code == 200
    assert auth_of(resources).tokens.verify(response.json()["token"]).subject == "robot:ci"
    assert "refresh_token" not in response.json()
    assert (await client.get("/token", headers=basic("robot+ci", secret + "x"))).status_code == 401
    await accounts.set_robot_disabled(resources.db, "ci", True)
    assert (await client.get("/token", headers=basic("robot+ci", secret))).status_code == 401
    expired = await accounts.create_robot(resources.db, "old", timedelta(seconds=-1))
    assert (await client.get("/token", headers=basic("robot+old", expired))).status_code == 401


async def test_deprecated_hash_is_upgraded_on_login(ctx: Ctx) -> None:
    client, resources, _ = ctx
    await accounts.create_user(resources.db, "carol", sha512_crypt.hash("carol-pw", rounds=1000))
    assert (await client.get("/token", headers=basic("carol", "carol-pw"))).status_code == 200
    user = await DatabaseAccounts(resources.db).user("carol")
    assert user is not None and user.password_hash.startswith("$2b$")
    assert (await client.get("/token", headers=basic("carol", "carol-pw"))).status_code == 200


async def test_identify_on_v2_accepts_issued_tokens_and_rejects_tampered_ones(ctx: Ctx) -> None:
    client, resources, audit = ctx
    token = (await client.get("/token", headers=basic("alice", "alice-pw"))).json()["token"]
    assert (await client.get("/v2/", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = await client.get("/v2/", headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert (await client.get("/v2/", headers=basic("alice", "alice-pw"))).status_code == 200
    assert (await client.get("/v2/", headers=basic("alice", "bad"))).status_code == 401
    assert (await client.get("/v2/", headers={"Authorization": "Basic Og=="})).status_code == 401, \
        "empty credentials are no login"
    failure = [e for e in (await audit.events()) if e["action"] == "auth:login:failure"][-1]
    assert (failure["actor"], failure["reason"]) == ("user:alice", "wrong password"), "curl -u with a bad password is audited"
    await accounts.set_disabled(resources.db, "alice", True)
    response = await client.get("/v2/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, "a disabled user's token stops working"


async def test_a_failed_login_logs_neither_password_nor_token(ctx: Ctx, caplog: pytest.LogCaptureFixture) -> None:
    client, resources, audit = ctx
    caplog.set_level(logging.DEBUG)
    password = "Very-Secret-Password-9"
    login = await client.get("/token", headers=basic("alice", "alice-pw"), params={"offline_token": "true"})
    token, refresh = login.json()["token"], login.json()["refresh_token"]
    caplog.clear()
    await client.get("/token", headers=basic("alice", password))
    await client.post("/token", data={"grant_type": "password", "client_id": "x", "username": "bob",
                                      "password": password})
    await client.post("/token", data={"grant_type": "refresh_token", "client_id": "x",
                                      "refresh_token": refresh + "x"})
    await client.get("/v2/", headers={"Authorization": f"Bearer {token}x"})
    await client.get("/v2/", headers=basic("bob", password))
    assert "login failed for 'alice'" in caplog.text, "failures are logged (without the secret)"
    everything = caplog.text + repr(await audit.events())
    for secret in (password, token, token[:40], refresh):
        assert secret not in everything


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted_and_audited(
    tmp_path: Path, database_url: str
) -> None:
    async with token_app(tmp_path, database_url, trusted_proxies=("192.0.2.0/24",)) as (client, resources, audit):
        await add_user(resources, "alice", "alice-pw")
        attacker, colleague = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "198.51.100.8"}
        for i in range(30):  # many names from one client: the per-address brake (3x the per-user one)
            response = await client.get("/token", headers={**basic(f"user{i}", "guess"), **attacker})
            assert response.status_code == 401
        assert (await audit.events())[-1]["address"] == "203.0.113.5"
        blocked = await client.get("/token", headers={**basic("alice", "alice-pw"), **attacker})
        assert blocked.status_code == 429
        allowed = await client.get("/token", headers={**basic("alice", "alice-pw"), **colleague})
        assert allowed.status_code == 200, "the proxy's other clients are not locked out"


async def test_hammering_one_wrong_password_costs_one_hash(ctx: Ctx) -> None:
    # The limiter counts a repeated wrong secret once (containerd retries POST as GET), so a client
    # repeating one wrong password was never slowed or refused, and each try cost a full bcrypt:
    # one address could keep every core busy. Now the failure is remembered like a success.
    client, resources, _ = ctx
    context = auth_of(resources).verifier.context
    hashes: list[str] = []
    real_verify, real_dummy = context.verify_and_update, context.dummy_verify

    def verify(secret: str, hashed: str) -> tuple[bool, str | None]:
        hashes.append("verify")
        result: tuple[bool, str | None] = real_verify(secret, hashed)
        return result

    def dummy() -> bool:
        hashes.append("dummy")
        result: bool = real_dummy()
        return result

    context.verify_and_update, context.dummy_verify = verify, dummy  # type: ignore[method-assign]
    for user in ("alice", "ghost"):
        for _ in range(30):
            response = await client.get("/token", headers=basic(user, "wrong"))
            assert response.status_code == 401
    assert hashes == ["verify", "dummy"]
    # The right password still works at once, and a different wrong one is checked (and counted).
    assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200
    assert (await client.get("/token", headers=basic("alice", "other"))).status_code == 401
    assert hashes == ["verify", "dummy", "verify", "verify"]
