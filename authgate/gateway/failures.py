"""An upstream registry's own failure (a 5xx), relayed as what it is.

The upstream answered, so it is not down and authgate is not saturated: the client gets 502 (or
503 when the upstream itself says it is unavailable) with the upstream's OCI error — its code,
message and detail — because that is what explains the failure (distribution answers 500
`UNKNOWN` with detail "invalid URL on layer" to a manifest with foreign layers). The upstream's
address is removed from what is relayed; a body that is not an OCI error is not relayed at all.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from authgate.errors import ErrorCode, RegistryError

#: An error document is small; more than this is not relayed (the log keeps the start of it).
MAX_ERROR_BODY = 16 * 1024
_MAX_TEXT = 500
_MAX_DETAIL = 2048
_RETRY_AFTER = "5"


class UpstreamFailure(RegistryError):
    """A 5xx from the upstream: status 502 or 503, the upstream's error code kept."""

    def __init__(self, code_name: str, message: str, detail: Any, status: int) -> None:
        super().__init__(ErrorCode.UNAVAILABLE, message, detail=detail, status=status,
                         headers={"Retry-After": _RETRY_AFTER} if status == 503 else None)
        self._code_name = code_name

    @property
    def code_name(self) -> str:
        return self._code_name


def relayed_failure(status: int, body: bytes, base: str) -> UpstreamFailure:
    """The client's view of an upstream `status` >= 500 with `body`."""
    mine = 503 if status == 503 else 502
    fallback = UpstreamFailure("UNKNOWN" if mine == 502 else "UNAVAILABLE",
                               f"the upstream registry failed with status {status}", None, mine)
    try:
        document = json.loads(body)
    except ValueError:
        return fallback
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return fallback
    first = errors[0]
    code, message = first.get("code"), first.get("message")
    if not isinstance(code, str) or not code.replace("_", "").isalnum() or len(code) > 64:
        return fallback
    text = _scrub(str(message) if message is not None else "", base)[:_MAX_TEXT]
    return UpstreamFailure(code, f"the upstream registry failed: {text}" if text else fallback.message,
                           _detail(first.get("detail"), base), mine)


def _scrub(text: str, base: str) -> str:
    """`text` without the upstream's URL or host (clients never see the upstream's address)."""
    for secret in (base, urlsplit(base).netloc):
        if secret:
            text = text.replace(secret, "upstream")
    return text


def _detail(detail: Any, base: str) -> Any:
    """The upstream's `detail`, its strings scrubbed; dropped when large."""
    if detail is None or len(json.dumps(detail)) > _MAX_DETAIL:
        return None
    if isinstance(detail, str):
        return _scrub(detail, base)
    if isinstance(detail, list):
        return [_detail(item, base) for item in detail]
    if isinstance(detail, dict):
        return {_scrub(str(key), base): _detail(value, base) for key, value in detail.items()}
    return detail
