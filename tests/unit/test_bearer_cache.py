"""A bearer token verified once is answered from memory, but never past its expiry, and a token
that did not verify is never kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from authgate.auth.bearer_cache import VerifiedTokens
from authgate.auth.keys import KeyRing
from authgate.auth.tokens import InvalidToken, TokenService
from authgate.scope import Scope
from authgate.subject import Subject

ALICE = Subject("user", "alice")
PULL = Scope("repository", "alice/app", frozenset({"pull"}))


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing.load(tmp_path_factory.mktemp("keys"), "ES256")


def test_the_same_answer_as_verify_from_memory(ring: KeyRing) -> None:
    service = TokenService(ring, issuer="authgate-test", service="registry.test", ttl=300)
    cache = VerifiedTokens(service)
    token = service.issue(ALICE, [PULL]).token
    first = cache.verify(token)
    assert first == service.verify(token)
    assert cache.verify(token) is first, "the second verification came from memory"


def test_an_expired_token_is_refused_although_it_was_cached(ring: KeyRing) -> None:
    service = TokenService(ring, issuer="authgate-test", service="registry.test", ttl=1, leeway=0)
    cache = VerifiedTokens(service)
    token = service.issue(ALICE, [PULL]).token
    assert cache.verify(token).subject == "alice"
    time.sleep(2.1)  # `exp` is whole seconds: past it for sure
    with pytest.raises(InvalidToken, match="expired"):
        cache.verify(token)


def test_tampered_tokens_are_refused_every_time_and_the_cache_stays_bounded(ring: KeyRing, tmp_path: Path) -> None:
    service = TokenService(ring, issuer="authgate-test", service="registry.test", ttl=300)
    cache = VerifiedTokens(service, size=3)
    token = service.issue(ALICE, [PULL]).token
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(InvalidToken):
            cache.verify(tampered)
    other = TokenService(KeyRing.load(tmp_path / "other", "ES256"), issuer="authgate-test",
                         service="registry.test", ttl=300)
    with pytest.raises(InvalidToken):
        cache.verify(other.issue(ALICE, [PULL]).token)
    for _ in range(5):
        cache.verify(service.issue(ALICE, [PULL]).token)
    assert len(cache._verified) == 3
