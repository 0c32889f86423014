"""The console's repository list is walked off the request path: no page view waits for a walk while
the console is in use, a push shows within the refresh time, and an idle server stops walking."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest

from authgate.console import repository_list
from authgate.console.repository_list import RepositoryList
from authgate.storage.layout import Layout
from authgate.storage.manifests import FilesystemManifestStore
from tests.console.support import add_user, console_app, push_image, sign_in

pytestmark = pytest.mark.anyio
ALICE = ("alice", "alice-password")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class HeldStore(FilesystemManifestStore):
    """The real filesystem store; its walks are counted and can be held until `release` is set."""

    def __init__(self, root: Path) -> None:
        super().__init__(Layout(root), 4 << 20)
        self.walks = 0
        self.walking = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def repositories(self) -> list[str]:
        self.walks += 1
        self.walking.set()
        await self.release.wait()
        return await super().repositories()


def _repository(root: Path, name: str) -> None:
    (root / "repositories" / name / "_manifests").mkdir(parents=True)


async def test_a_page_view_never_waits_for_a_walk(tmp_path: Path) -> None:
    store = HeldStore(tmp_path)
    _repository(tmp_path, "alice/one")
    listing = RepositoryList(store, ttl=0.01)
    try:
        assert await listing.names() == ["alice/one"]  # the first view walks: there is nothing yet
        _repository(tmp_path, "alice/two")
        store.release.clear()
        store.walking.clear()
        with anyio.fail_after(10):
            await store.walking.wait()  # the background walk has started and is held
        # Returns the last list at once; a view that waited for the held walk would hang here.
        with anyio.fail_after(10):
            assert await listing.names() == ["alice/one"]
        store.release.set()  # the held walk ends and its list is what views see next
        with anyio.fail_after(10):
            while await listing.names() != ["alice/one", "alice/two"]:
                await anyio.sleep(0.01)
    finally:
        store.release.set()
        await listing.stop()


async def test_an_idle_console_stops_walking_and_the_next_view_is_current(tmp_path: Path) -> None:
    store = HeldStore(tmp_path)
    listing = RepositoryList(store, ttl=0.01, idle_after=0.05)
    try:
        assert await listing.names() == []
        with anyio.fail_after(10):
            while listing._refreshing():
                await anyio.sleep(0.02)
        walks = store.walks
        await anyio.sleep(0.1)
        assert store.walks == walks, "nobody looked: no more walks"
        _repository(tmp_path, "alice/new")
        assert await listing.names() == ["alice/new"], "after a pause the view walks rather than show an old list"
        assert listing._refreshing()
    finally:
        await listing.stop()


async def test_a_pushed_repository_is_listed_without_a_walk_on_the_request(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_list, "LIST_TTL", 0.2)
    async with console_app(tmp_path) as (client, resources):
        await add_user(resources, *ALICE)
        await push_image(client, ALICE, "alice/hello", "v1")
        await sign_in(client, *ALICE)
        assert "alice/hello" in (await client.get("/repositories")).text
        store = repository_list.content_of(resources)
        assert store is not None
        listing = repository_list.LISTS[store]
        assert listing.ttl == 0.2
        await push_image(client, ALICE, "alice/later", "v1")
        seen = False
        for _ in range(100):  # bounded: 100 x 0.05 s, many times the refresh time
            if "alice/later" in (await client.get("/repositories")).text:
                seen = True
                break
            await anyio.sleep(0.05)
        assert seen, "a push is listed once the background walk has run"
    assert listing._task is not None and listing._task.done(), "the walks end with the server"
