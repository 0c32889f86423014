"""The one door to the object store: a small typed wrapper over aiobotocore, and what its faults mean.

aiobotocore (botocore's data-driven client on aiohttp) is used because an upload session must be
continued by whichever process or replica receives the next chunk: S3 lets any client add parts to a
multipart upload by its id, and botocore exposes that (`upload_part(UploadId=...)`). Every call
goes through `_call`, which turns an unreachable, slow or refusing object store into one
`RegistryError(UNAVAILABLE)` (a 503 in the OCI format) and records the reason for `/readyz`.
Credentials come the usual AWS way (environment, shared files, `s3_profile`, instance role);
a bucket that cannot be reached with them stops `authgate serve` at start (`check`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from authgate.errors import ErrorCode, RegistryError
from authgate.readiness import Readiness
from authgate.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# "Found credentials in environment variables" on every start is noise; their warnings still show.
for _name in ("aiobotocore.credentials", "botocore.credentials"):
    logging.getLogger(_name).setLevel(logging.WARNING)

#: The name the object store reports under in `Readiness`.
NOT_READY_KEY = "object_store"
_MISSING = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_CREDENTIALS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                "ExpiredToken"}


class ObjectStoreSetupError(Exception):
    """The object store cannot be used with these settings; the message names the setting to fix."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: float


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3:
    """Keys relative to `s3_prefix` in `s3_bucket`; open with `async with S3(settings, readiness)`."""

    def __init__(self, settings: Settings, readiness: Readiness | None = None) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix
        self.readiness = Readiness() if readiness is None else readiness
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __aenter__(self) -> S3:
        settings = self.settings
        ca_bundle = os.environ.get("AWS_CA_BUNDLE")
        if ca_bundle and not os.path.isfile(ca_bundle):
            raise ObjectStoreSetupError(f"AWS_CA_BUNDLE={ca_bundle} is not a file (botocore would fail every request)")
        try:
            session = AioSession(profile=settings.s3_profile or None)
            config = AioConfig(connect_timeout=settings.s3_timeout, read_timeout=settings.s3_timeout,
                               retries={"max_attempts": 3, "mode": "standard"},
                               max_pool_connections=64, s3={"addressing_style": "path"})
            self._client = await self._stack.enter_async_context(session.create_client(
                "s3", region_name=settings.s3_region, endpoint_url=settings.s3_endpoint or None, config=config))
        except ProfileNotFound as exc:
            raise ObjectStoreSetupError(f"s3_profile {settings.s3_profile!r} is not in the AWS config files: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def key(self, relative: str) -> str:
        return self.prefix + relative

    async def _call(self, operation: Awaitable[T], what: str) -> T:
        """Await one S3 call; faults become 503 UNAVAILABLE, and success clears `/readyz`'s reason."""
        try:
            result = await operation
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise
            self._unavailable(what, exc)
        except (BotoCoreError, OSError) as exc:
            self._unavailable(what, exc)
        self.readiness.unblock(NOT_READY_KEY)
        return result

    def _unavailable(self, what: str, exc: Exception) -> None:
        reason = f"object store: {what} failed ({_describe(exc)})"
        log.warning("%s", reason)
        self.readiness.block(NOT_READY_KEY, reason)
        raise RegistryError(ErrorCode.UNAVAILABLE, "the object store is unavailable; try again shortly",
                            headers={"Retry-After": "5"}) from exc

    # -- whole objects -------------------------------------------------------------------------

    async def get(self, key: str, limit: int | None = None) -> bytes | None:
        """A small object whole; None when it does not exist (or is larger than `limit`)."""
        try:
            response = await self._call(self._client.get_object(Bucket=self.bucket, Key=self.key(key)), "read")
        except ClientError:
            return None
        async with response["Body"] as body:
            if limit is not None and response["ContentLength"] > limit:
                return None
            data: bytes = await self._call(body.read(), "read")
        return data

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            response = await self._call(self._client.head_object(Bucket=self.bucket, Key=self.key(key)), "stat")
        except ClientError:
            return None
        return ObjectInfo(key, int(response["ContentLength"]), response["LastModified"].timestamp())

    async def put(self, key: str, data: bytes) -> None:
        await self._call(self._client.put_object(Bucket=self.bucket, Key=self.key(key), Body=data), "write")

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object(Bucket=self.bucket, Key=self.key(key)), "delete")

    async def stream(self, key: str, start: int = 0, length: int | None = None,
                     chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """The object's bytes (a range of them) as they arrive; raises ClientError if it is missing."""
        extra = {}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            extra["Range"] = f"bytes={start}-{end}"
        response = await self._call(self._client.get_object(Bucket=self.bucket, Key=self.key(key), **extra), "read")
        async with response["Body"] as body:
            iterator = body.iter_chunks(chunk_size).__aiter__()
            while True:
                try:
                    chunk: bytes = await self._call(iterator.__anext__(), "read")
                except StopAsyncIteration:
                    return
                yield chunk

    async def list_objects(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under `prefix`, keys relative to `s3_prefix`, in key order."""
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call(self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self.key(prefix), **extra), "list")
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][len(self.prefix):], int(item["Size"]), item["LastModified"].timestamp())
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    async def presign(self, key: str, ttl: int) -> str:
        url: str = await self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(key)}, ExpiresIn=ttl)
        return url

    # -- multipart uploads ---------------------------------------------------------------------

    async def create_multipart(self, key: str) -> str:
        response = await self._call(self._client.create_multipart_upload(Bucket=self.bucket, Key=self.key(key)),
                                    "start upload")
        return str(response["UploadId"])

    async def upload_part(self, key: str, multipart: str, number: int, data: bytes) -> str:
        response = await self._call(self._client.upload_part(
            Bucket=self.bucket, Key=self.key(key), UploadId=multipart, PartNumber=number, Body=data), "upload part")
        return str(response["ETag"])

    async def complete_multipart(self, key: str, multipart: str, parts: list[tuple[int, str]]) -> None:
        await self._call(self._client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key(key), UploadId=multipart,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]}), "complete upload")

    async def abort_multipart(self, key: str, multipart: str) -> None:
        try:
            await self._call(self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key(key), UploadId=multipart), "abort upload")
        except ClientError:
            pass  # already gone

    # -- health --------------------------------------------------------------------------------

    async def ping(self) -> None:
        """One cheap authenticated call (list one key); raises RegistryError(UNAVAILABLE)."""
        await self._call(self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1), "ping")

    async def check(self) -> None:
        """At start: raise `ObjectStoreSetupError` naming the setting when the bucket cannot be used."""
        where = f"bucket {self.bucket!r} at {self.settings.s3_endpoint or 'AWS'}"
        try:
            await self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except NoCredentialsError as exc:
            raise ObjectStoreSetupError(
                "storage s3: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "or s3_profile)") from exc
        except ClientError as exc:
            code = _code(exc)
            if code in _CREDENTIALS:
                raise ObjectStoreSetupError(
                    f"storage s3: the object store refused the credentials for {where} ({_describe(exc)}); check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or s3_profile") from exc
            if code == "NoSuchBucket":
                raise ObjectStoreSetupError(f"storage s3: s3_bucket {self.bucket!r} does not exist at "
                                            f"{self.settings.s3_endpoint or 'AWS'}") from exc
            raise ObjectStoreSetupError(f"storage s3: {where}: {_describe(exc)}") from exc
        except (BotoCoreError, OSError) as exc:
            raise ObjectStoreSetupError(f"storage s3: cannot reach s3_endpoint for {where}: {_describe(exc)}") from exc
