"""The one parser of numbers from headers and queries (both modes): a value or a clear 4xx, never a 500."""

from __future__ import annotations

import pytest

from authgate.errors import ErrorCode, RegistryError
from authgate.registry.numbers import PAGE_LIMIT, check_byte_range, content_range, decimal, page_size

# "²" and "١" pass str.isdigit(), which int() then refuses; 5000 digits are past int()'s limit.
NOT_ASCII = ["\u00b2", "\u0661", "1\u00b2"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("0", 0), ("42", 42), ("007", 7), ("9" * 19, int("9" * 19)), ("9" * 20, None), ("9" * 5000, None),
    ("", None), ("-1", None), ("+1", None), (" 1", None), ("1.0", None), *[(raw, None) for raw in NOT_ASCII],
])
def test_decimal(raw: str, expected: int | None) -> None:
    assert decimal(raw) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ({}, PAGE_LIMIT), ({"n": "0"}, 0), ({"n": "5"}, 5), ({"n": "005"}, 5), ({"n": "5000"}, PAGE_LIMIT),
    ({"n": "9" * 5000}, PAGE_LIMIT),
])
def test_page_sizes(query: dict[str, str], expected: int) -> None:
    assert page_size(query) == expected


@pytest.mark.parametrize("n", ["", "-1", "abc", "1e3", *NOT_ASCII])
def test_bad_page_sizes_are_a_400(n: str) -> None:
    with pytest.raises(RegistryError) as info:
        page_size({"n": n})
    assert info.value.code is ErrorCode.PAGINATION_NUMBER_INVALID


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None), ({"content-range": "0-9"}, (0, 9)), ({"content-range": "bytes 10-19/*"}, (10, 19)),
    ({"content-range": "bytes=5-5/100", "content-length": "1"}, (5, 5)),
])
def test_content_ranges(headers: dict[str, str], expected: tuple[int, int] | None) -> None:
    assert content_range(headers) == expected


@pytest.mark.parametrize(("headers", "code"), [
    ({"content-range": "9-0"}, ErrorCode.RANGE_INVALID), ({"content-range": "abc"}, ErrorCode.RANGE_INVALID),
    ({"content-range": "0-" + "9" * 5000}, ErrorCode.RANGE_INVALID),
    *[({"content-range": f"0-{raw}"}, ErrorCode.RANGE_INVALID) for raw in NOT_ASCII],
    ({"content-range": "0-9", "content-length": "5"}, ErrorCode.SIZE_INVALID),
    ({"content-range": "0-9", "content-length": "\u00b2"}, ErrorCode.SIZE_INVALID),
])
def test_bad_content_ranges(headers: dict[str, str], code: ErrorCode) -> None:
    with pytest.raises(RegistryError) as info:
        content_range(headers)
    assert info.value.code is code


@pytest.mark.parametrize("header", ["bytes=0-9", "bytes=5-", "bytes=-5"])
def test_byte_ranges_served(header: str) -> None:
    check_byte_range(header)


@pytest.mark.parametrize("header", ["bytes=-", "bytes=0-1,5-6", "items=0-1", "bytes=\u00b2-", "bytes=0-" + "9" * 30])
def test_byte_ranges_refused(header: str) -> None:
    with pytest.raises(RegistryError) as info:
        check_byte_range(header)
    assert info.value.status == 416
