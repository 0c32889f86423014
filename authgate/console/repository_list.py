"""The repository names behind the console's list, kept fresh off the request path.

Walking the store for 10,000 repositories takes a few hundred milliseconds. A cache that expires
makes the next page view pay for that walk; here a background task walks instead, every
`LIST_TTL` seconds while the console is in use, and pages read the last list it made. So a
repository pushed now is listed within about `LIST_TTL` seconds (plus one walk), and no page view
waits for a walk, except the first one after the console has not been used for `IDLE_AFTER`
seconds: then the list could be old, so that view walks once (shared with any view arriving
meanwhile) and the background walks start again. An idle server does not walk its disk.

Bounded: one walk at a time per process; between two walks at least `LIST_TTL` seconds and at
least four times as long as the last walk took, so walking never takes more than a fifth of the
time, however large the store. In gateway mode the walk reads the upstream's catalog (pages of
1000 names), under the same rules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol
from weakref import WeakKeyDictionary

from authgate.registry.content import RegistryContent
from authgate.resources import Resources
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Pause between two walks while the console is in use: a push shows in the list within about this.
LIST_TTL = 2.0
#: No page asked for the list for this long: stop walking; the next page view walks once.
IDLE_AFTER = 60.0
#: At most this share of the time is spent walking (the pause grows with the walk).
_WALK_SHARE = 5


def content_of(resources: Resources) -> RegistryContent | None:
    """What the repository pages read: the embedded store, or the upstream through the gateway
    (None in token-server mode, where the registry is not behind authgate at all)."""
    return None if resources.backend is None else resources.backend.content


class Listable(Protocol):
    async def repositories(self) -> list[str]: ...


class RepositoryList:
    def __init__(self, store: Listable, ttl: float | None = None, idle_after: float | None = None) -> None:
        self.store = store
        self.ttl = LIST_TTL if ttl is None else ttl
        self.idle_after = IDLE_AFTER if idle_after is None else idle_after
        self._names: list[str] = []
        self._asked = 0.0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def _refreshing(self) -> bool:
        return self._task is not None and not self._task.done()

    async def names(self) -> list[str]:
        """Every repository name, sorted, as of the last walk (at most about `ttl` seconds old)."""
        self._asked = time.monotonic()
        if not self._refreshing():
            async with self._lock:  # views arriving together share one walk
                if not self._refreshing():
                    self._names = await self.store.repositories()  # an error here is this view's error
                    self._task = asyncio.create_task(self._keep_fresh(), name="console repository list")
        return self._names

    async def _keep_fresh(self) -> None:
        pause = self.ttl
        while True:
            await asyncio.sleep(pause)
            if time.monotonic() - self._asked > self.idle_after:
                return
            started = time.monotonic()
            try:
                self._names = await self.store.repositories()
            except Exception as exc:  # no one awaits this task: say so, stop; the next view retries
                log.warning("console: listing the repositories failed (%s); the next page view tries again", exc)
                return
            pause = max(self.ttl, (_WALK_SHARE - 1) * (time.monotonic() - started))

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)


#: The list of each store's repositories (one store per running app).
LISTS: WeakKeyDictionary[Listable, RepositoryList] = WeakKeyDictionary()


async def repository_names(store: Listable) -> list[str]:
    listing = LISTS.get(store)
    if listing is None:
        listing = LISTS[store] = RepositoryList(store)
    return await listing.names()


async def stop_refreshing(resources: Resources) -> None:
    """At shutdown, before the store closes: end the background walks."""
    content = content_of(resources)
    listing = LISTS.pop(content, None) if content is not None else None
    if listing is not None:
        await listing.stop()
