"""The one function that builds `WWW-Authenticate` (docs/client-compat.md §7, distribution's
`accesscontroller.go`): a 401 says what would succeed."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from authgate.errors import ErrorCode, RegistryError
from authgate.scope import Scope, format_scopes

ChallengeError = Literal["invalid_token", "insufficient_scope"]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(realm: str, service: str, scopes: Iterable[Scope] = (), error: ChallengeError | None = None,
                     description: str | None = None) -> str:
    """`Bearer realm="…",service="…"[,scope="a b"][,error="…"[,error_description="…"]]`; no scope on the
    base route. docker and podman show `error_description` (RFC 6750 §3) as the error's message, and
    only it: the body's message is not shown for insufficient_scope."""
    params = [f"realm={_quote(realm)}", f"service={_quote(service)}"]
    scope_text = format_scopes(scopes)
    if scope_text:
        params.append(f"scope={_quote(scope_text)}")
    if error:
        params.append(f"error={_quote(error)}")
        if description:
            # RFC 6750: printable ASCII except `"` and `\`.
            text = "".join(c for c in description if 0x20 <= ord(c) < 0x7F and c not in '"\\')
            params.append(f"error_description={_quote(text)}")
    return "Bearer " + ",".join(params)


def unauthorized(
    realm: str,
    service: str,
    scopes: Iterable[Scope] = (),
    error: ChallengeError | None = None,
    message: str | None = None,
) -> RegistryError:
    """A 401 `UNAUTHORIZED` carrying the challenge; `detail` lists the access needed, as distribution does."""
    scopes = list(scopes)
    detail = [
        {"Type": s.type, "Class": "", "Name": s.name, "Action": action}
        for s in scopes
        for action in sorted(s.actions)
    ] or None
    return RegistryError(
        ErrorCode.UNAUTHORIZED,
        message,
        detail=detail,
        headers={"WWW-Authenticate": bearer_challenge(realm, service, scopes, error,
                                                      message if error == "insufficient_scope" else None)},
    )
