"""The one bounded body reader, and the registry rules both backends share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from authgate.bodies import BodyTooLarge, read_bounded
from authgate.errors import ErrorCode, RegistryError
from authgate.registry.rules import failure_reason

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _chunks(*parts: bytes, then_fail: bool = False) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if then_fail:
        raise AssertionError("read past the limit")


async def test_reads_up_to_the_limit() -> None:
    assert await read_bounded(_chunks(b"ab", b"cd"), 4) == b"abcd"


async def test_stops_at_the_first_chunk_past_the_limit() -> None:
    with pytest.raises(BodyTooLarge):
        await read_bounded(_chunks(b"abc", b"de", then_fail=True), 4)


@pytest.mark.parametrize(("code", "reason"), [
    (ErrorCode.DIGEST_INVALID, "digest mismatch"),
    (ErrorCode.DENIED, "immutable tag"),
    (ErrorCode.TOO_LARGE, "too big"),
])
def test_push_failures_are_audited_by_the_same_reason_in_both_modes(code: ErrorCode, reason: str) -> None:
    assert failure_reason(RegistryError(code, "too big")) == reason
