"""Numbers that arrive in headers and queries — from clients, and in gateway mode from the upstream.

One parser for both modes, so embedded and gateway answer the same input the same way. Only ASCII
digits count: `str.isdigit` also takes "²" and other scripts' digits, which `int` then refuses (a
ValueError, so a 500); and at most 19 of them, so every value fits 63 bits and `int` never sees the
thousands of digits it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from authgate.errors import ErrorCode, RegistryError

_DECIMAL_RE = re.compile(r"[0-9]{1,19}")
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")
#: One `Range: bytes=START-END` (either may be empty, not both: RFC 9110 14.1.2); nothing else is served.
BYTE_RANGE_RE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")
#: The most results one listing page holds, whatever `n` asks (the spec lets a registry return fewer).
PAGE_LIMIT = 1000


def decimal(raw: str) -> int | None:
    """`raw` as a non-negative integer, or None unless it is 1 to 19 ASCII digits."""
    return int(raw) if _DECIMAL_RE.fullmatch(raw) else None


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The request's `Content-Length`, if any; anything but a number is 400 `SIZE_INVALID`."""
    raw = headers.get("content-length")
    if raw is None:
        return None
    value = decimal(raw.strip())
    if value is None:
        raise RegistryError(ErrorCode.SIZE_INVALID, f"Content-Length {raw[:40]!r} is not a number")
    return value


def content_range(headers: Mapping[str, str]) -> tuple[int, int] | None:
    """(start, end) of an upload chunk's `Content-Range` (inclusive), if any.

    Malformed or backwards is 416 `RANGE_INVALID`; a range whose length differs from
    `Content-Length` is 400 `SIZE_INVALID`. Whether `start` is where the upload stands is the
    store's question (it knows the size)."""
    raw = headers.get("content-range")
    if raw is None:
        return None
    found = _CONTENT_RANGE_RE.fullmatch(raw.strip())
    if not found or int(found.group(2)) < int(found.group(1)):
        raise RegistryError(ErrorCode.RANGE_INVALID, f"malformed Content-Range {raw[:80]!r}; send START-END",
                            status=416)
    start, end = int(found.group(1)), int(found.group(2))
    length = declared_length(headers)
    if length is not None and length != end - start + 1:
        raise RegistryError(ErrorCode.SIZE_INVALID, f"Content-Range {raw} is {end - start + 1} bytes but "
                            f"Content-Length is {length}")
    return start, end


def out_of_order(start: int, size: int) -> RegistryError:
    """416 for a chunk that does not start where the upload stands, with the `Range` to resume from."""
    return RegistryError(ErrorCode.RANGE_INVALID, f"chunk starts at {start} but the upload has {size} bytes; "
                         "resume from the Range this session reports", status=416,
                         headers={"Range": f"0-{max(size - 1, 0)}"})


def check_byte_range(header: str) -> None:
    """A blob `Range` that cannot be one range of bytes is 416, before anything is read."""
    found = BYTE_RANGE_RE.fullmatch(header.strip())
    if not found or found.groups() == ("", ""):
        raise RegistryError(ErrorCode.RANGE_INVALID, f"cannot serve range {header[:80]!r}; ask for one range "
                            "bytes=START-END", status=416)


def page_size(query: Mapping[str, str]) -> int:
    """`n` of a listing: absent means `PAGE_LIMIT`, 0 an empty page, more than `PAGE_LIMIT` is
    capped; anything but digits is 400 `PAGINATION_NUMBER_INVALID`."""
    raw = query.get("n")
    if raw is None:
        return PAGE_LIMIT
    if not raw.isascii() or not raw.isdigit():
        raise RegistryError(ErrorCode.PAGINATION_NUMBER_INVALID,
                            f"n must be a non-negative integer, not {raw[:40]!r}")
    digits = raw.lstrip("0") or "0"
    # A longer number is just "as many as you give": never hand int() thousands of digits.
    return min(int(digits), PAGE_LIMIT) if len(digits) <= 9 else PAGE_LIMIT
