"""Authorization header parsing, secrets that cannot print, and the login limiter."""

from __future__ import annotations

import base64

import pytest

from authgate.auth.credentials import (
    BasicCredentials,
    BearerCredentials,
    CredentialsError,
    Secret,
    parse_authorization,
)
from authgate.auth.limiter import LoginLimiter, TooManyAttempts


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("header", "username", "password"),
    [
        (_basic(b"alice:s3cret"), "alice", "s3cret"),
        (_basic(b"alice:pa:ss:word"), "alice", "pa:ss:word"),
        (_basic("zoë:pässword".encode()), "zoë", "pässword"),
        ("basic " + base64.b64encode(b"bob:x").decode(), "bob", "x"),
        ("Basic Og==", "", ""),
    ],
)
def test_basic(header: str, username: str, password: str) -> None:
    parsed = parse_authorization(header)
    assert isinstance(parsed, BasicCredentials)
    assert parsed.username == username and parsed.password.reveal() == password
    assert parsed.empty == (not username and not password)


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!notbase64",
        _basic(b"\xff\xfe:\xff"),
        _basic(b"no-colon"),
        _basic(b"alice:" + b"x" * 5000),
        "Digest username=alice",
        "Bearer ",
    ],
)
def test_unusable_headers(header: str) -> None:
    with pytest.raises(CredentialsError) as info:
        parse_authorization(header)
    assert "x" * 50 not in str(info.value)


def test_bearer_and_absent() -> None:
    parsed = parse_authorization("Bearer abc.def.ghi")
    assert isinstance(parsed, BearerCredentials) and parsed.token.reveal() == "abc.def.ghi"
    assert parse_authorization(None) is None and parse_authorization("") is None


def test_secret_never_prints() -> None:
    secret = Secret("hunter2")
    creds = BasicCredentials("alice", secret)
    for text in (repr(secret), str(secret), repr(creds), f"{creds}", f"{secret!r}"):
        assert "hunter2" not in text


def test_limiter_slows_then_blocks_then_recovers() -> None:
    limiter = LoginLimiter(slow_after=2, block_after=4, window=100, lockout=50, address_factor=10, delay=1.0)
    assert limiter.check("alice", "10.0.0.1", now=0) == 0
    limiter.failure("alice", "10.0.0.1", "guess1", now=1)
    limiter.failure("alice", "10.0.0.1", "guess2", now=2)
    assert limiter.check("alice", "10.0.0.1", now=3) == 1.0
    limiter.failure("alice", "10.0.0.1", "guess3", now=3)
    limiter.failure("alice", "10.0.0.1", "guess4", now=4)
    with pytest.raises(TooManyAttempts) as info:
        limiter.check("alice", "10.0.0.2", now=5)
    assert info.value.retry_after == 49
    assert limiter.check("bob", "10.0.0.1", now=5) == 0, "another user on the same address is not locked"
    assert limiter.check("alice", "10.0.0.1", now=60) == 0


def test_limiter_counts_a_repeated_identical_attempt_once() -> None:
    # containerd POSTs, gets 401, then GETs with the same credentials (docs/client-compat.md §5).
    limiter = LoginLimiter(slow_after=2, block_after=3, window=100, lockout=50)
    for moment in (1.0, 1.1, 1.2, 1.3):
        limiter.failure("alice", "10.0.0.1", "same-guess", now=moment)
    assert limiter.check("alice", "10.0.0.1", now=2) == 0


def test_limiter_blocks_an_address_spraying_many_users() -> None:
    limiter = LoginLimiter(slow_after=2, block_after=3, window=100, lockout=50, address_factor=2)
    for i in range(6):
        limiter.failure(f"user{i}", "10.0.0.9", "guess", now=float(i))
    with pytest.raises(TooManyAttempts):
        limiter.check("someone-new", "10.0.0.9", now=7)


def test_success_clears_the_user_counter() -> None:
    limiter = LoginLimiter(slow_after=2, block_after=3, window=100, lockout=50, address_factor=10)
    limiter.failure("alice", "10.0.0.1", "a", now=1)
    limiter.failure("alice", "10.0.0.1", "b", now=2)
    limiter.success("alice")
    assert limiter.check("alice", "10.0.0.1", now=3) == 0


def test_limiter_state_stays_bounded() -> None:
    limiter = LoginLimiter(window=10, max_entries=50, dedupe_seconds=1)
    for i in range(200):
        limiter.failure(f"user{i}", f"10.0.{i // 250}.{i % 250}", "x", now=float(i))
    assert len(limiter._counters) <= 60 and len(limiter._recent) <= 60
