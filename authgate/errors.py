"""One table of OCI error codes, one exception, one renderer.

Codes and statuses follow the OCI distribution spec ("Error Codes") and distribution's
`registry/api/errcode/register.go`. Routes raise `RegistryError`; `render_error` is the only
place that turns one into an HTTP response.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response


class ErrorCode(enum.Enum):
    """(HTTP status, default message) for every code authgate emits."""

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (404, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    TAG_INVALID = (400, "manifest tag did not match URI")
    RANGE_INVALID = (416, "invalid content range")
    TOO_LARGE = (413, "request body exceeds the configured maximum size")
    PAGINATION_NUMBER_INVALID = (400, "invalid number of results requested")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (405, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")
    INVALID_REQUEST = (400, "invalid request")
    UNAVAILABLE = (503, "service unavailable")
    UPSTREAM_TIMEOUT = (504, "the upstream registry did not answer in time")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def default_message(self) -> str:
        return self.value[1]


class RegistryError(Exception):
    """Raised anywhere below a route; rendered once by `render_error`.

    `headers` carries extras such as `WWW-Authenticate` or `Retry-After`; `status` overrides the
    table only where the spec pairs one code with several statuses (e.g. 416 for a bad range).
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        *,
        detail: Any = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.default_message
        self.detail = detail
        self.status = status or code.status
        self.headers = dict(headers or {})
        super().__init__(f"{code.name}: {self.message}")

    @property
    def code_name(self) -> str:
        """The `code` clients see; an error relayed from an upstream registry keeps the upstream's."""
        return self.code.name


def error_body(errors: Iterable[RegistryError]) -> bytes:
    return json.dumps(
        {"errors": [{"code": e.code_name, "message": e.message, "detail": e.detail} for e in errors]}
    ).encode()


def render_error(error: RegistryError, *, head: bool = False) -> Response:
    """The JSON error document of the spec, with the error's status and headers."""
    body = error_body([error])
    headers = {"Docker-Distribution-API-Version": "registry/2.0", **error.headers}
    if head:
        headers["Content-Length"] = str(len(body))
        return Response(status_code=error.status, headers=headers, media_type="application/json")
    return Response(body, status_code=error.status, headers=headers, media_type="application/json")
