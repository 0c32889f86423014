"""The gateway catalog's page size: what a client sends in `n` is a page size or a 400, never a 500."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.catalog import DEFAULT_PAGE, MAX_PAGE, page_size


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/v2/_catalog", "query_string": query, "headers": []})


@pytest.mark.parametrize(("query", "expected"), [
    (b"", DEFAULT_PAGE), (b"n=5", 5), (b"n=005", 5), (b"n=5000", MAX_PAGE), (b"n=" + b"9" * 5000, MAX_PAGE),
])
def test_page_sizes(query: bytes, expected: int) -> None:
    assert page_size(_request(query)) == expected


# 5000 digits once reached int() (ValueError past 4300 digits); "²" and "١" pass str.isdigit().
@pytest.mark.parametrize("n", [b"0", b"-1", b"abc", b"%C2%B2", b"%D9%A1", b"1e3"])
def test_bad_page_sizes_are_a_400(n: bytes) -> None:
    with pytest.raises(RegistryError) as info:
        page_size(_request(b"n=" + n))
    assert info.value.code is ErrorCode.PAGINATION_NUMBER_INVALID
