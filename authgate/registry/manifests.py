"""Manifest GET/HEAD/PUT/DELETE by tag or digest, with immutable tags and the audit trail of pushes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import ErrorCode, RegistryError
from authgate.policy import immutable_tag_rule
from authgate.reference import Digest, Tag
from authgate.registry.context import Stores, empty
from authgate.registry.manifest_format import parse_manifest
from authgate.registry.routes import Target
from authgate.registry.rules import IMMUTABLE_TAG, denied_immutable, failure_reason, read_manifest
from authgate.storage.base import StoredManifest
from authgate.subject import Identity


def _unknown(target: Target) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_UNKNOWN, f"manifest {target.reference} is not in {target.repository}",
                         detail={"reference": str(target.reference)})


async def manifest_get(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.reference
    manifest = await stores.manifests.get_manifest(target.repository, target.reference)
    if manifest is None:
        raise _unknown(target)
    headers = {
        "Docker-Content-Digest": str(manifest.digest),
        "ETag": f'"{manifest.digest}"',
        "Content-Length": str(len(manifest.body)),
        "Content-Type": manifest.media_type,
    }
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    if stores.settings.audit_pulls in ("manifests", "all"):
        await stores.audit(request, identity, target, "manifest:pull", reference=str(target.reference),
                    digest=str(manifest.digest), size=len(manifest.body))
    return Response(manifest.body, headers=headers)


def _immutable_rule(stores: Stores, target: Target, tag: Tag) -> str | None:
    """The name of the policy rule that makes `tag` immutable, if any."""
    return immutable_tag_rule(stores.policy, str(target.repository), str(tag))


async def _check_references(stores: Stores, target: Target, body: bytes, content_type: str | None
                            ) -> tuple[str, Digest | None]:
    assert target.repository
    parsed = parse_manifest(body, content_type)
    # Each digest once: 25 000 copies of one layer fit in 4 MiB and would cost two file-system calls each.
    for descriptor in {d.digest: d for d in parsed.blobs}.values():
        # `link` refreshes the blob's time, so gc's grace period covers it until the manifest is stored.
        if await stores.blobs.blob_size(target.repository, descriptor.digest) is None or \
                not await stores.blobs.link(target.repository, descriptor.digest):
            raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, f"blob {descriptor.digest} is not in "
                                f"{target.repository}; push it first", detail={"digest": str(descriptor.digest)})
    for descriptor in {d.digest: d for d in parsed.manifests}.values():
        if await stores.manifests.resolve(target.repository, descriptor.digest) is None:
            raise RegistryError(ErrorCode.MANIFEST_BLOB_UNKNOWN, f"manifest {descriptor.digest} is not in "
                                f"{target.repository}; push it first", detail={"digest": str(descriptor.digest)})
    return parsed.media_type, parsed.subject.digest if parsed.subject else None


async def manifest_put(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.reference
    tag = target.tag
    try:
        body = await read_manifest(request, stores.settings.max_manifest_size)
        if isinstance(target.reference, Digest):
            digest = Digest.of(body, target.reference.algorithm)
            if digest != target.reference:
                raise RegistryError(ErrorCode.DIGEST_INVALID, f"the manifest's digest is {digest}, not "
                                    f"{target.reference}", detail={"digest": str(target.reference)})
        else:
            digest = Digest.of(body)
        media_type, subject = await _check_references(stores, target, body, request.headers.get("content-type"))
        if tag is not None:
            current = await stores.manifests.resolve(target.repository, tag)
            rule = _immutable_rule(stores, target, tag) if current not in (None, digest) else None
            if rule:
                raise denied_immutable(str(tag), rule)
        previous = await stores.manifests.put_manifest(
            target.repository, StoredManifest(digest, media_type, body), tag, subject)
    except RegistryError as error:
        await stores.audit(request, identity, target, "manifest:push:failure", reference=str(target.reference),
                           reason=failure_reason(error))
        raise
    fields = {"reference": str(tag) if tag else None, "digest": str(digest), "size": len(body)}
    await stores.audit(request, identity, target, "manifest:push", **fields)
    if tag is not None and previous is not None and previous != digest:
        await stores.audit(request, identity, target, "tag:move", **fields, details={"from": str(previous)})
    headers = {"Location": f"/v2/{target.repository}/manifests/{digest}", "Docker-Content-Digest": str(digest)}
    if subject is not None:
        headers["OCI-Subject"] = str(subject)
    return empty(201, headers)


async def manifest_delete(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.reference
    name, reference = target.repository, target.reference
    if isinstance(reference, Tag):
        tags = [reference] if await stores.manifests.resolve(name, reference) else []
    else:
        tags = await stores.manifests.tags_pointing_at(name, reference)
    for tag in tags:
        rule = _immutable_rule(stores, target, tag)
        if rule:
            await stores.audit(request, identity, target, "manifest:delete:failure", reference=str(reference),
                        reason=IMMUTABLE_TAG)
            raise denied_immutable(str(tag), rule)
    if isinstance(reference, Tag):
        digest = await stores.manifests.resolve(name, reference)
        if digest is None or not await stores.manifests.delete_tag(name, reference):
            raise _unknown(target)
    else:
        digest = reference
        if await stores.manifests.delete_manifest(name, reference) is None:
            raise _unknown(target)
    await stores.audit(request, identity, target, "manifest:delete", reference=str(reference), digest=str(digest),
                details={"tags": [str(t) for t in tags]} if tags else None)
    return empty(202, {})
