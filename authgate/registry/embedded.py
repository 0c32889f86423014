"""The embedded backend: answers the `/v2/` operations from the store in the data dir or on S3."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.auth.identity import Identity
from authgate.errors import RegistryError
from authgate.registry import blobs, listing, manifests, uploads
from authgate.registry.context import Handler, Stores
from authgate.registry.routes import Target
from authgate.settings import Settings
from authgate.storage.filesystem import FilesystemBlobStore
from authgate.storage.layout import Layout
from authgate.storage.manifests import FilesystemManifestStore
from authgate.storage.recovery import recover
from authgate.storage.shared_dir import hold_and_maybe_recover, release

log = logging.getLogger(__name__)


async def _base(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    return JSONResponse({})


class EmbeddedBackend:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self._handlers: dict[str, Handler] = {
            "base": _base, **blobs.HANDLERS, **uploads.HANDLERS, **manifests.HANDLERS, **listing.HANDLERS,
        }

    async def handle(self, request: Request, target: Target, identity: Identity) -> Response:
        return await self._handlers[target.route.handler](self.stores, request, target, identity)


def store_layout(settings: Settings) -> Layout:
    return Layout(settings.data / "registry")


class _Expiring(Protocol):
    async def expire_uploads(self) -> list[str]: ...


async def _expire_forever(store: _Expiring, every: float) -> None:
    while True:
        try:
            await store.expire_uploads()
        except (OSError, RegistryError):
            log.exception("could not expire abandoned uploads")
        await anyio.sleep(every)


@asynccontextmanager
async def open_embedded(settings: Settings,
                        not_ready: MutableMapping[str, str] | None = None) -> AsyncIterator[EmbeddedBackend]:
    """Recover the store (see `storage.recovery`), then serve it; abandoned uploads expire meanwhile."""
    if settings.storage == "s3":
        from authgate.registry.embedded_s3 import open_s3_stores

        async with open_s3_stores(settings, {} if not_ready is None else not_ready) as (stores, s3_store):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_expire_forever, s3_store, max(60.0, min(settings.upload_max_age / 4, 3600)))
                yield EmbeddedBackend(stores)
                tasks.cancel_scope.cancel()
        return
    layout = store_layout(settings)
    lock = await anyio.to_thread.run_sync(hold_and_maybe_recover, layout.root / "serving.lock",
                                          lambda: recover(layout))
    blob_store = FilesystemBlobStore(layout, max_blob_size=settings.max_blob_size,
                                     upload_max_age=settings.upload_max_age)
    stores = Stores(settings, blob_store, FilesystemManifestStore(layout, settings.max_manifest_size))
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_expire_forever, blob_store, max(1.0, min(settings.upload_max_age / 4, 3600)))
            yield EmbeddedBackend(stores)
            tasks.cancel_scope.cancel()
    finally:
        release(lock)
