"""The tokens authgate signs, checked by a stock distribution 2.8 registry: ES256 and RS256 keys in
one `rootcertbundle` (as during a rotation), scopes, audience and expiry (docs/client-compat.md §1)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from authgate.auth.keys import KeyRing, create_key
from authgate.auth.tokens import TokenService
from authgate.scope import Scope
from authgate.subject import Subject
from tests.support.processes import Distribution, token_auth_config

pytestmark = pytest.mark.e2e

SERVICE, ISSUER = "registry.compat", "authgate-compat"
ALICE = Subject("user", "alice")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    create_key(directory, "ES256")
    create_key(directory, "RS256")
    return directory


@pytest.fixture(scope="module")
def registry(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    workdir = tmp_path_factory.mktemp("distribution-compat")
    bundle = workdir / "bundle.pem"
    bundle.write_text(KeyRing.load(keys, "ES256", create=False).certificate_bundle())
    registry = Distribution(workdir, extra_config=token_auth_config("http://127.0.0.1:1/token", SERVICE, ISSUER,
                                                                     bundle))
    yield registry
    registry.stop()


def _get(registry: Distribution, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{registry.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_distribution_accepts_our_tokens_and_their_scopes(registry: Distribution, keys: Path, algorithm: str) -> None:
    ring = KeyRing.load(keys, algorithm, create=False)  # type: ignore[arg-type]
    tokens = TokenService(ring, ISSUER, SERVICE, ttl=300)
    pull = tokens.issue(ALICE, [Scope("repository", "alice/app", frozenset({"pull"}))]).token
    assert _get(registry, "/v2/", pull).status_code == 200
    # Authorized: the registry answers for the repository itself (unknown name), not with 401.
    assert _get(registry, "/v2/alice/app/tags/list", pull).status_code == 404
    other = _get(registry, "/v2/bob/app/tags/list", pull)
    assert other.status_code == 401 and 'error="insufficient_scope"' in other.headers["www-authenticate"]
    nothing = tokens.issue(ALICE, [Scope("repository", "alice/app", frozenset())]).token
    assert _get(registry, "/v2/alice/app/tags/list", nothing).status_code == 401
    catalog = tokens.issue(ALICE, [Scope("registry", "catalog", frozenset({"*"}))]).token
    assert _get(registry, "/v2/_catalog", catalog).status_code == 200


def test_distribution_refuses_other_audience_issuer_and_expired(registry: Distribution, keys: Path) -> None:
    ring = KeyRing.load(keys, "ES256", create=False)
    access = [Scope("repository", "alice/app", frozenset({"pull"}))]
    for service in (TokenService(ring, ISSUER, "another-registry", ttl=300),
                    TokenService(ring, "someone-else", SERVICE, ttl=300)):
        response = _get(registry, "/v2/", service.issue(ALICE, access).token)
        assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    expired = TokenService(ring, ISSUER, SERVICE, ttl=60).issue(ALICE, access, now=time.time() - 200).token
    assert _get(registry, "/v2/", expired).status_code == 401
    foreign = TokenService(KeyRing.load(keys.parent / "foreign-keys", "ES256"), ISSUER, SERVICE, ttl=300)
    assert _get(registry, "/v2/", foreign.issue(ALICE, access).token).status_code == 401
