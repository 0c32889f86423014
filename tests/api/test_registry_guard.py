"""The guard, through HTTP: challenges name what would succeed; token AND live policy must allow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import httpx

from tests.api.registry_support import Registry, basic, bearer, registry_client

D = "sha256:" + "a" * 64
REALM = 'realm="http://localhost:5000/token",service="authgate"'


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Registry]:
    async with registry_client(tmp_path) as app:
        yield app


def _challenge(response: object) -> str:
    return response.headers["www-authenticate"]  # type: ignore[attr-defined, no-any-return]


async def test_base_without_credentials_is_a_challenge_without_scope(client: Registry) -> None:
    response = await client.http.get("/v2/")
    assert response.status_code == 401
    assert _challenge(response) == f"Bearer {REALM}"
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_base_with_any_valid_credential(client: Registry) -> None:
    http = client.http
    assert (await http.get("/v2/", headers=bearer(await client.token_for("bob")))).status_code == 200
    assert (await http.get("/v2/", headers=basic("alice", "alice-pw"))).status_code == 200
    bad = await http.get("/v2/", headers=bearer("forged"))
    assert bad.status_code == 401 and 'error="invalid_token"' in _challenge(bad)
    assert (await http.get("/v2/", headers=basic("alice", "wrong"))).status_code == 401


async def test_empty_basic_credentials_are_no_login(client: Registry) -> None:
    http = client.http
    response = await http.get("/v2/", headers={"Authorization": "Basic Og=="})
    assert response.status_code == 401, "docker would report an empty login as succeeded"
    assert _challenge(response) == f"Bearer {REALM}"
    anonymous_token = await http.get("/v2/", headers=bearer(await client.token_for(None)))
    assert anonymous_token.status_code == 200, "any valid token, an anonymous one included (distribution)"


async def test_anonymous_push_is_challenged_with_the_needed_scope(client: Registry) -> None:
    response = await client.http.post("/v2/alice/app/blobs/uploads/")
    assert response.status_code == 401
    assert _challenge(response) == f'Bearer {REALM},scope="repository:alice/app:pull,push"'
    detail = response.json()["errors"][0]["detail"]
    assert {d["Action"] for d in detail} == {"pull", "push"}


async def test_token_without_the_action_is_insufficient_scope(client: Registry) -> None:
    http = client.http
    token = await client.token_for("alice", ("repository", "alice/app", "pull"))
    response = await http.post("/v2/alice/app/blobs/uploads/", headers=bearer(token))
    assert response.status_code == 401
    message = "the token was issued without push on alice/app; docker asks for a new one by itself"
    # docker and podman show error_description (not the body) for insufficient_scope.
    assert _challenge(response) == (f'Bearer {REALM},scope="repository:alice/app:pull,push",error="insufficient_scope"'
                                    f',error_description="{message}"')
    assert (await client.actions()) == ["access:denied"]
    assert response.json()["errors"][0]["message"] == message


async def test_live_policy_limits_a_token_that_grants_more(client: Registry) -> None:
    # bob's token claims push on alice/app, but the policy (own namespace) says no: deny.
    token = await client.token_for("bob", ("repository", "alice/app", "pull,push"))
    response = await client.http.post("/v2/alice/app/blobs/uploads/", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in _challenge(response)
    # What docker shows the user, instead of "authentication required": which action, and who said no.
    assert response.json()["errors"][0]["message"] == "user:bob may not pull or push alice/app (the policy allows: nothing)"


async def test_delete_needs_delete(client: Registry) -> None:
    token = await client.token_for("alice", ("repository", "alice/app", "pull,push"))
    response = await client.http.delete(f"/v2/alice/app/manifests/{D}", headers=bearer(token))
    assert response.status_code == 401
    assert 'scope="repository:alice/app:delete",error="insufficient_scope"' in _challenge(response)


async def test_mount_without_pull_on_source(client: Registry) -> None:
    token = await client.token_for("alice", ("repository", "alice/app", "pull,push"))
    response = await client.http.post(f"/v2/alice/app/blobs/uploads/?mount={D}&from=bob/base", headers=bearer(token))
    assert response.status_code == 401
    assert ('scope="repository:alice/app:pull,push repository:bob/base:pull",error="insufficient_scope"'
            in _challenge(response))


async def test_catalog_challenges_anonymous_and_lists_for_any_valid_identity(
        client: Registry) -> None:
    http = client.http
    anonymous = await http.get("/v2/_catalog")
    assert anonymous.status_code == 401
    assert _challenge(anonymous) == f'Bearer {REALM},scope="registry:catalog:*"'
    # Non-admins' tokens carry no catalog grant (a stock registry's catalog is unfiltered); authgate's
    # own listing is filtered per caller, so the token only has to be valid.
    without_grant = await http.get("/v2/_catalog", headers=bearer(await client.token_for("alice")))
    assert without_grant.status_code == 200
    assert (await http.get("/v2/_catalog", headers=bearer("forged"))).status_code == 401
    assert (await http.get("/v2/_catalog", headers=basic("alice", "alice-pw"))).status_code == 200


async def test_basic_credentials_are_checked_against_the_policy(client: Registry) -> None:
    http = client.http
    assert (await http.get("/v2/alice/app/tags/list", headers=basic("bob", "bob-pw"))).status_code == 401
    # allowed by the policy: the request reaches the store (an unknown repository)
    assert (await http.get("/v2/alice/app/tags/list", headers=basic("alice", "alice-pw"))).status_code == 404


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/v2/Alice/app/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/alice/app/manifests/sha256:zz", 400, "DIGEST_INVALID"),
    ("POST", "/v2/alice/app/manifests/latest", 405, "UNSUPPORTED"),
    ("GET", "/v2/alice/app/nothing", 404, "NAME_UNKNOWN"),
])
async def test_malformed_requests_fail_before_auth(client: Registry, method: str, path: str,
                                             status: int, code: str) -> None:
    response = await client.http.request(method, path)
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code
