"""The embedded registry's stores on S3: open the client, check the bucket, keep `/readyz` current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from authgate.errors import RegistryError
from authgate.policy import Authorizer
from authgate.readiness import Readiness
from authgate.registry.context import Auditor, Stores
from authgate.settings import Settings
from authgate.storage.s3 import S3BlobStore
from authgate.storage.s3_client import NOT_READY_KEY, S3, ObjectStoreSetupError
from authgate.storage.s3_manifests import S3ManifestStore

log = logging.getLogger(__name__)

#: Seconds between pings of the object store while it is healthy, and while it is not.
HEALTH_INTERVAL = 10.0
RETRY_INTERVAL = 2.0


def s3_blob_store(s3: S3, settings: Settings) -> S3BlobStore:
    return S3BlobStore(s3, max_blob_size=settings.max_blob_size, upload_max_age=settings.upload_max_age,
                       part_size=settings.s3_part_size,
                       redirect_ttl=settings.s3_redirect_ttl if settings.s3_redirect else None)


async def _watch(s3: S3) -> None:
    """Ping the bucket so `/readyz` says why the object store is failing, and clears once it is back."""
    while True:
        try:
            await s3.ping()
        except RegistryError:
            pass  # the reason is in `readiness` already
        except Exception:  # a health loop that dies silently would leave /readyz stale
            log.exception("object store health check failed")
        await anyio.sleep(RETRY_INTERVAL if NOT_READY_KEY in s3.readiness.not_ready else HEALTH_INTERVAL)


@asynccontextmanager
async def open_s3_stores(settings: Settings, policy: Authorizer, audit: Auditor,
                         readiness: Readiness) -> AsyncIterator[tuple[Stores, S3BlobStore]]:
    async with S3(settings, readiness) as s3:
        await s3.check()  # wrong credentials or bucket: the app does not start (the message names the setting)
        blobs = s3_blob_store(s3, settings)
        stores = Stores(settings, blobs, S3ManifestStore(blobs, settings.max_manifest_size), policy, audit)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_watch, s3)
            yield stores, blobs
            tasks.cancel_scope.cancel()


def check_object_store(settings: Settings) -> str | None:
    """For `authgate serve` before it listens: why the bucket cannot be used, naming the setting; or None."""
    if settings.storage != "s3":
        return None

    async def check() -> None:
        async with S3(settings) as s3:
            await s3.check()

    try:
        asyncio.run(check())
    except ObjectStoreSetupError as exc:
        return str(exc)
    return None
