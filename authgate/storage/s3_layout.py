"""Where the S3 store keeps things (keys below `s3_prefix`), shared by every replica.

    blobs/<alg>/<hex>                 {"key": "data/<id>", "size": N}: the blob exists and was verified
    data/<id>                         the bytes (the target of one multipart upload)
    uploads/<id>/state                an upload session (JSON, see `s3_uploads.SessionState`)
    uploads/<id>/tail-<generation>    its last bytes, fewer than one part
    repositories/<name>/_layers/<alg>/<hex>                 the blob is part of <name>
    repositories/<name>/_manifests/revisions/<alg>/<hex>    holds the manifest's media type
    repositories/<name>/_manifests/tags/<tag>               holds the tagged digest
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  a manifest whose subject is <alg>:<hex>
    _catalog/<name>                   the repository has (or had) manifests

S3 has no rename, and copying a multi-gigabyte object server-side costs as much as the upload: so
a blob's bytes stay where the upload put them and the small `blobs/` record, written only after the
digest was verified, is what makes them visible. The record's time is refreshed by every link,
which is what gc's grace period reads.
"""

from __future__ import annotations

import json
import uuid

from authgate.reference import Digest, RepositoryName, Tag


def blob(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def new_data() -> str:
    return f"data/{uuid.uuid4()}"


def session(upload_id: str) -> str:
    return f"uploads/{upload_id}/state"


def tail(upload_id: str, generation: str) -> str:
    return f"uploads/{upload_id}/tail-{generation}"


def repository(name: RepositoryName) -> str:
    return f"repositories/{name.value}/"


def layer(name: RepositoryName, digest: Digest) -> str:
    return f"{repository(name)}_layers/{digest.algorithm}/{digest.hex}"


def revisions(name: RepositoryName) -> str:
    return f"{repository(name)}_manifests/revisions/"


def revision(name: RepositoryName, digest: Digest) -> str:
    return f"{revisions(name)}{digest.algorithm}/{digest.hex}"


def tags(name: RepositoryName) -> str:
    return f"{repository(name)}_manifests/tags/"


def tag(name: RepositoryName, value: Tag) -> str:
    return f"{tags(name)}{value.value}"


def referrers(name: RepositoryName, subject: Digest) -> str:
    return f"{repository(name)}_referrers/{subject.algorithm}/{subject.hex}/"


def referrer(name: RepositoryName, subject: Digest, manifest: Digest) -> str:
    return f"{referrers(name, subject)}{manifest.algorithm}-{manifest.hex}"


def catalog(name: RepositoryName) -> str:
    return f"_catalog/{name.value}"


def blob_record(data_key: str, size: int) -> bytes:
    return json.dumps({"key": data_key, "size": size}).encode()


def parse_blob_record(raw: bytes | None) -> tuple[str, int] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        return str(record["key"]), int(record["size"])
    except (ValueError, KeyError, TypeError):
        return None
