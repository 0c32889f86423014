"""Authorization header parsing and secrets that cannot print."""

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
