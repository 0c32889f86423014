"""Parsing a `/token` request, and the one error it raises: rendered as JSON in both dialects (the
registry's `errors` list and OAuth2's `error`), never echoing a secret; only bad credentials give 401."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse, Response

from authgate.scope import Scope, ScopeError, parse_scopes

MAX_SCOPES = 64


class TokenRequestError(Exception):
    """Rendered as JSON in both dialects: the registry `errors` list and OAuth2 `error`."""

    def __init__(self, status: int, oauth_error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.oauth_error = oauth_error
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(self.status, "INVALID_REQUEST")
        body = {
            "errors": [{"code": code, "message": self.message, "detail": None}],
            "error": self.oauth_error,
            "error_description": self.message,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def bad(message: str, oauth_error: str = "invalid_request") -> TokenRequestError:
    return TokenRequestError(400, oauth_error, message)


def denied(message: str = "invalid username or password") -> TokenRequestError:
    return TokenRequestError(401, "invalid_grant", message)


def parse_pairs(raw: bytes, limit: int, what: str) -> list[tuple[str, str]]:
    """The query string's or form's pairs, bounded in size and number (a 400 past either)."""
    if len(raw) > limit:
        raise bad(f"{what} is too long (at most {limit} bytes)")
    try:
        return parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                         encoding="utf-8", errors="strict", max_num_fields=MAX_SCOPES + 16)
    except (UnicodeDecodeError, ValueError):
        raise bad(f"{what} must be URL-encoded UTF-8 with at most {MAX_SCOPES + 16} fields") from None


def single(pairs: Sequence[tuple[str, str]], name: str) -> str:
    """The one value of `name` ("" when absent): given twice it is a 400, not a guess at which one counts."""
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise bad(f"parameter {name} given more than once")
    return values[0] if values else ""


def requested_scopes(values: list[str]) -> list[Scope]:
    try:
        found = parse_scopes(values)
    except ScopeError as exc:
        raise bad(f"{exc}; scopes look like repository:NAME:pull,push", "invalid_scope") from None
    if len(found) > MAX_SCOPES:
        raise bad(f"at most {MAX_SCOPES} scopes per request", "invalid_scope")
    return found


def check_service(expected: str, service: str) -> None:
    if service and service != expected:
        raise bad(f"unknown service {service[:100]!r}: this token server issues tokens for {expected!r}")
