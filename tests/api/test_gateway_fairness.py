"""One user must not make the gateway answer 503 to everyone (hardening issue, item 5).

Against a real distribution: a user trickling upload bodies holds upstream connections; past
`upstream_max_per_user` they wait, then get 429, while other users are served and `/readyz` stays
green; a body that stops arriving is cancelled after `upstream_timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.registry_support import basic
from tests.api.test_gateway_faults import gateway
from tests.api.test_gateway_proxy import registry  # noqa: F401  (the upstream fixture)
from tests.support.processes import Distribution

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Trickle:
    """An upload body that sends one byte, then nothing until released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def body(self) -> AsyncIterator[bytes]:
        yield b"x"
        self.started.set()
        await self.release.wait()
        yield b"y"


async def _trickle(http: httpx.AsyncClient, repository: str, headers: dict[str, str]
                   ) -> tuple[Trickle, asyncio.Task[httpx.Response]]:
    start = await http.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
    assert start.status_code == 202, start.text
    trickle = Trickle()
    task = asyncio.create_task(http.patch(start.headers["location"], content=trickle.body(), headers=headers))
    await asyncio.wait_for(trickle.started.wait(), 10)
    return trickle, task


async def test_one_user_cannot_hold_every_upstream_connection(
        tmp_path: Path, registry: Distribution) -> None:
    async with gateway(tmp_path, upstream=registry.url, upstream_max_connections=2,
                       upstream_max_per_user=1, upstream_connect_timeout=0.5) as (http, backend):
        trickle, held = await _trickle(http, "alice/slow", ALICE)
        more = await http.get("/v2/alice/slow/tags/list", headers=ALICE)
        assert more.status_code == 429 and more.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert more.headers["retry-after"]
        other = await http.get("/v2/bob/app/tags/list", headers=BOB)
        assert other.status_code == 404 and other.json()["errors"][0]["code"] == "NAME_UNKNOWN"  # reached upstream
        assert await backend.upstream.check() and (await http.get("/readyz")).status_code == 200
        trickle.release.set()
        assert (await asyncio.wait_for(held, 10)).status_code == 202
        assert (await http.get("/v2/alice/slow/tags/list", headers=ALICE)).status_code != 429  # slot given back


async def test_readyz_is_about_the_upstream_not_the_pool(
        tmp_path: Path, registry: Distribution) -> None:
    """Even with every pooled connection held by clients, the health check reaches the upstream."""
    async with gateway(tmp_path, upstream=registry.url, upstream_max_connections=2,
                       upstream_max_per_user=2, upstream_connect_timeout=0.5) as (http, backend):
        held = [await _trickle(http, "alice/slow", ALICE) for _ in range(2)]
        assert await backend.upstream.check()
        assert (await http.get("/readyz")).status_code == 200
        for trickle, _task in held:
            trickle.release.set()
        for _trickle_, task in held:
            assert (await asyncio.wait_for(task, 10)).status_code == 202


async def test_a_silent_upload_body_is_cancelled(
        tmp_path: Path, registry: Distribution) -> None:
    async with gateway(tmp_path, upstream=registry.url, upstream_timeout=0.5) as (http, _):
        start = await http.post("/v2/alice/silent/blobs/uploads/", headers=ALICE)
        trickle = Trickle()
        response = await asyncio.wait_for(
            http.patch(start.headers["location"], content=trickle.body(), headers=ALICE), 10)
        trickle.release.set()
        assert response.status_code == 408 and response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
        status = await http.get(start.headers["location"], headers=ALICE)
        assert status.status_code == 404  # cancelled here and upstream: nothing half-written is kept
