"""Parse the `Authorization` header into typed credentials whose secrets cannot print.

`Secret` follows starlette's `datastructures.Secret`: `repr` and `str` show stars, so a password
or token that reaches a log line, an exception or a debugger shows nothing.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

#: Longer inputs are refused before any decoding or hashing work (bcrypt reads 72 bytes anyway).
MAX_USERNAME_LENGTH = 255
MAX_SECRET_LENGTH = 4096


class CredentialsError(ValueError):
    """Malformed credentials (bad base64, not UTF-8, overlong); the message never holds the secret."""


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    username: str
    password: Secret

    @property
    def empty(self) -> bool:
        """`Basic Og==` (":"), which some clients send when they have nothing: anonymous."""
        return not self.username and not self.password


@dataclass(frozen=True, slots=True)
class BearerCredentials:
    token: Secret


Credentials = BasicCredentials | BearerCredentials


def check_lengths(username: str, secret: str) -> None:
    if len(username) > MAX_USERNAME_LENGTH:
        raise CredentialsError("username is too long")
    if len(secret) > MAX_SECRET_LENGTH:
        raise CredentialsError("password or token is too long")


def parse_authorization(header: str | None) -> Credentials | None:
    """None when there is no header; `CredentialsError` when it is present but unusable."""
    if header is None or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        if len(value) > 2 * (MAX_USERNAME_LENGTH + MAX_SECRET_LENGTH):
            raise CredentialsError("Basic credentials are too long")
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise CredentialsError("Basic credentials are not valid base64 of UTF-8 text") from exc
        username, sep, password = decoded.partition(":")
        if not sep:
            raise CredentialsError("Basic credentials must be username:password")
        check_lengths(username, password)
        return BasicCredentials(username, Secret(password))
    if scheme.lower() == "bearer":
        if not value or len(value) > MAX_SECRET_LENGTH * 4:
            raise CredentialsError("Bearer token is empty or too long")
        return BearerCredentials(Secret(value))
    raise CredentialsError("unsupported authorization scheme (use Basic or Bearer)")
