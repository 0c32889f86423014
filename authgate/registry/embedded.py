"""The embedded backend: answers the `/v2/` operations from the store in the data dir or on S3."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.audit.events import AuditSink
from authgate.errors import RegistryError
from authgate.policy import Authorizer
from authgate.readiness import Readiness
from authgate.registry import blobs, listing, manifests, uploads
from authgate.registry.content import RegistryContent, StoreContent
from authgate.registry.context import Auditor, Stores
from authgate.registry.routes import Target
from authgate.settings import Settings
from authgate.storage.filesystem import FilesystemBlobStore
from authgate.storage.layout import Layout
from authgate.storage.manifests import FilesystemManifestStore
from authgate.storage.recovery import recover
from authgate.storage.shared_dir import hold_and_maybe_recover, release
from authgate.subject import Identity

log = logging.getLogger(__name__)


class EmbeddedBackend:
    """`routes.Backend` over the filesystem store; each operation is a function of `Stores` in the
    module named after what it handles (blobs, uploads, manifests, listing)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        #: What the console reads (the same store, without HTTP).
        self.content: RegistryContent = StoreContent(stores.manifests)

    async def base(self, request: Request, target: Target, identity: Identity) -> Response:
        return JSONResponse({})

    async def catalog(self, request: Request, target: Target, identity: Identity) -> Response:
        return await listing.catalog(self.stores, request, target, identity)

    async def tags_list(self, request: Request, target: Target, identity: Identity) -> Response:
        return await listing.tags_list(self.stores, request, target, identity)

    async def referrers(self, request: Request, target: Target, identity: Identity) -> Response:
        return await listing.referrers(self.stores, request, target, identity)

    async def manifest_get(self, request: Request, target: Target, identity: Identity) -> Response:
        return await manifests.manifest_get(self.stores, request, target, identity)

    async def manifest_put(self, request: Request, target: Target, identity: Identity) -> Response:
        return await manifests.manifest_put(self.stores, request, target, identity)

    async def manifest_delete(self, request: Request, target: Target, identity: Identity) -> Response:
        return await manifests.manifest_delete(self.stores, request, target, identity)

    async def blob_get(self, request: Request, target: Target, identity: Identity) -> Response:
        return await blobs.blob_get(self.stores, request, target, identity)

    async def blob_delete(self, request: Request, target: Target, identity: Identity) -> Response:
        return await blobs.blob_delete(self.stores, request, target, identity)

    async def upload_start(self, request: Request, target: Target, identity: Identity) -> Response:
        return await uploads.upload_start(self.stores, request, target, identity)

    async def upload_status(self, request: Request, target: Target, identity: Identity) -> Response:
        return await uploads.upload_status(self.stores, request, target, identity)

    async def upload_patch(self, request: Request, target: Target, identity: Identity) -> Response:
        return await uploads.upload_patch(self.stores, request, target, identity)

    async def upload_put(self, request: Request, target: Target, identity: Identity) -> Response:
        return await uploads.upload_put(self.stores, request, target, identity)

    async def upload_cancel(self, request: Request, target: Target, identity: Identity) -> Response:
        return await uploads.upload_cancel(self.stores, request, target, identity)


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
async def open_embedded(settings: Settings, policy: Authorizer, audit: AuditSink,
                        readiness: Readiness) -> AsyncIterator[EmbeddedBackend]:
    """Recover the store (see `storage.recovery`), then serve it; abandoned uploads expire meanwhile.
    `readiness` hears whether an object store answers."""
    auditor = Auditor(audit, settings)
    if settings.storage == "s3":
        from authgate.registry.embedded_s3 import open_s3_stores

        async with open_s3_stores(settings, policy, auditor, readiness) as (stores, s3_store):
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
    stores = Stores(settings, blob_store, FilesystemManifestStore(layout, settings.max_manifest_size), policy,
                    auditor)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_expire_forever, blob_store, max(1.0, min(settings.upload_max_age / 4, 3600)))
            yield EmbeddedBackend(stores)
            tasks.cancel_scope.cancel()
    finally:
        release(lock)
