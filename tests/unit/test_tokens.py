"""Token claims as distribution 2.8/3.x need them, and verification that pins everything."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from authgate.auth.keys import KeyRing
from authgate.auth.tokens import InvalidToken, TokenService
from authgate.scope import Scope
from authgate.subject import ANONYMOUS, Subject

ALICE = Subject("user", "alice")
PULL = Scope("repository", "alice/app", frozenset({"pull"}))


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    return KeyRing.load(tmp_path_factory.mktemp("keys"), "ES256")


@pytest.fixture
def service(ring: KeyRing) -> TokenService:
    return TokenService(ring, issuer="authgate-test", service="registry.test", ttl=300)


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def decode(part: str) -> dict[str, object]:
        loaded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return loaded

    header, payload, _ = token.split(".")
    return decode(header), decode(payload)


def test_claims_have_the_types_distribution_28_decodes(service: TokenService, ring: KeyRing) -> None:
    before = int(time.time())
    issued = service.issue(ALICE, [PULL])
    header, claims = _segments(issued.token)
    assert header["alg"] == "ES256" and header["kid"] == ring.signer.kid and header["x5c"] == ring.signer.x5c
    assert claims["iss"] == "authgate-test" and claims["sub"] == "alice"
    assert claims["aud"] == "registry.test", "aud must be one string, not a list"
    for name in ("exp", "nbf", "iat"):
        assert type(claims[name]) is int
    assert claims["nbf"] == claims["iat"] - 5  # type: ignore[operator]
    assert claims["exp"] == claims["iat"] + 300  # type: ignore[operator]
    assert int(claims["iat"]) >= before  # type: ignore[call-overload]
    assert claims["access"] == [{"type": "repository", "name": "alice/app", "actions": ["pull"]}]
    assert len(str(claims["jti"])) >= 20
    assert issued.issued_at_text.endswith("Z")
    assert issued.token not in repr(issued)


def test_anonymous_sub_is_empty_and_robots_are_prefixed(service: TokenService) -> None:
    assert _segments(service.issue(ANONYMOUS, []).token)[1]["sub"] == ""
    assert _segments(service.issue(Subject("robot", "ci"), []).token)[1]["sub"] == "robot:ci"
    assert _segments(service.issue(ANONYMOUS, []).token)[1]["access"] == []


def test_round_trip(service: TokenService) -> None:
    verified = service.verify(service.issue(ALICE, [PULL]).token)
    assert verified.subject == "alice"
    assert verified.access == {("repository", "alice/app"): frozenset({"pull"})}


def _forge(ring: KeyRing, claims: dict[str, object], **header: object) -> str:
    base = {"iss": "authgate-test", "sub": "alice", "aud": "registry.test", "iat": int(time.time()),
            "nbf": int(time.time()) - 5, "exp": int(time.time()) + 300, "jti": "x" * 24}
    base.update(claims)
    fields = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(fields, ring.signer.private_key, algorithm="ES256", headers={"kid": ring.signer.kid, **header})


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        # Times are offsets from the moment the test runs (not collection time: a long run would
        # otherwise drift an `nbf` back inside the leeway).
        (lambda now: {"exp": now - 90}, "expired beyond the 60 s leeway"),
        (lambda now: {"nbf": now + 120}, "not valid yet beyond the leeway"),
        (lambda now: {"aud": "other-registry"}, "another audience"),
        (lambda now: {"aud": ["registry.test"]}, "aud as a list"),
        (lambda now: {"iss": "someone-else"}, "another issuer"),
        (lambda now: {"exp": None}, "no exp"),
        (lambda now: {"jti": None}, "no jti"),
        (lambda now: {"iat": None}, "no iat"),
        (lambda now: {"exp": now + 300.5}, "float exp"),
        (lambda now: {"access": "repository:alice/app:pull"}, "access not a list"),
        (lambda now: {"access": [{"type": "repository", "name": "alice/app"}]}, "access entry without actions"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_rejected_claims(
    service: TokenService, ring: KeyRing, claims: Callable[[int], dict[str, object]], reason: str
) -> None:
    with pytest.raises(InvalidToken):
        service.verify(_forge(ring, claims(int(time.time()))))


def test_leeway_accepts_a_token_expired_30s_ago(service: TokenService, ring: KeyRing) -> None:
    assert service.verify(_forge(ring, {"exp": int(time.time()) - 30})).subject == "alice"


def test_tampered_payload_is_rejected(service: TokenService) -> None:
    header, payload, signature = service.issue(ALICE, [PULL]).token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(InvalidToken):
        service.verify(f"{header}.{forged}.{signature}")


def test_algorithm_comes_from_the_key_not_the_header(service: TokenService, ring: KeyRing) -> None:
    # HS256 with the public key as the shared secret: the classic algorithm-confusion forgery.
    claims = {"iss": "authgate-test", "sub": "admin", "aud": "registry.test", "iat": int(time.time()),
              "nbf": int(time.time()), "exp": int(time.time()) + 300, "jti": "y" * 24}
    forged = jwt.encode(claims, b"0123456789abcdef0123456789abcdef", algorithm="HS256", headers={"kid": ring.signer.kid})
    with pytest.raises(InvalidToken):
        service.verify(forged)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": ring.signer.kid})
    with pytest.raises(InvalidToken):
        service.verify(unsigned)


def test_unknown_kid_and_garbage_are_rejected(service: TokenService, ring: KeyRing, tmp_path: Path) -> None:
    other = KeyRing.load(tmp_path, "ES256")
    foreign = TokenService(other, issuer="authgate-test", service="registry.test", ttl=300).issue(ALICE, [PULL])
    with pytest.raises(InvalidToken, match="unknown key"):
        service.verify(foreign.token)
    for garbage in ["", "abc", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30."]:
        with pytest.raises(InvalidToken):
            service.verify(garbage)


def test_a_token_just_issued_with_the_same_contents_is_handed_out_again(service: TokenService,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    first = service.issue_recent(ALICE, [PULL], epoch="e1")
    assert service.issue_recent(ALICE, [PULL], epoch="e1").token == first.token
    # Anything the token says differs: a new token.
    push = Scope("repository", "alice/app", frozenset({"pull", "push"}))
    others = [service.issue_recent(ALICE, [push], epoch="e1"), service.issue_recent(ALICE, [PULL], epoch="e2"),
              service.issue_recent(Subject("user", "bob"), [PULL], epoch="e1"), service.issue_recent(ALICE, [], epoch="e1")]
    assert len({first.token, *(o.token for o in others)}) == 5
    # Later in the reuse window: the same token, with the life it has left.
    later = time.time() + service.reuse_seconds - 1
    monkeypatch.setattr("authgate.auth.tokens.time.time", lambda: later)
    again = service.issue_recent(ALICE, [PULL], epoch="e1")
    assert again.token == first.token and again.issued_at == first.issued_at
    assert again.expires_in == int(first.issued_at.timestamp()) + 300 - int(later) < 300
    # Past it: signed anew, a full life.
    monkeypatch.setattr("authgate.auth.tokens.time.time", lambda: later + 2)
    fresh = service.issue_recent(ALICE, [PULL], epoch="e1")
    assert fresh.token != first.token and fresh.expires_in == 300


def test_reuse_lasts_at_most_a_tenth_of_a_token_life_and_never_leaves_under_60_s(ring: KeyRing) -> None:
    # Clients treat an expires_in under 60 as 60 (docs/client-compat.md): they would use a dead token.
    assert TokenService(ring, issuer="i", service="s", ttl=60).reuse_seconds == 0
    assert TokenService(ring, issuer="i", service="s", ttl=65).reuse_seconds == 5
    assert TokenService(ring, issuer="i", service="s", ttl=120).reuse_seconds == 12
    assert TokenService(ring, issuer="i", service="s", ttl=3600).reuse_seconds == 30
    service = TokenService(ring, issuer="i", service="s", ttl=60)
    assert service.issue_recent(ALICE, [PULL]).token != service.issue_recent(ALICE, [PULL]).token
