"""Parse and check a pushed manifest: OCI image manifest and index, Docker schema 2 manifest and list.

Only what the registry must know is read: the media type, the blobs and child manifests that must
already exist (OCI distribution spec "Pushing Manifests"), the `subject` for the referrers API and
the artifact type. Anything malformed is a 400 MANIFEST_INVALID saying what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
#: Generic types some clients send instead of the manifest's own; the body's `mediaType` then decides.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream"})


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    #: Blobs (config, layers) that must be in the repository.
    blobs: list[Descriptor] = field(default_factory=list)
    #: Child manifests (of an index) that must be in the repository.
    manifests: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None


def _invalid(message: str) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, f"manifest invalid: {message}")


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType must be a non-empty string")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    try:
        parsed = Digest.parse(digest)
    except RegistryError as exc:
        raise _invalid(f"{where}.digest: {exc.message}") from None
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{where}.urls must be a list of strings")
    artifact_type = value.get("artifactType")
    annotations = _annotations(value.get("annotations"), where)
    return Descriptor(media_type, parsed, size, tuple(urls), artifact_type if isinstance(artifact_type, str) else None,
                      annotations)


def _annotations(value: Any, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid(f"{where}.annotations must map strings to strings")
    return value


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _invalid("the body is not JSON") from None
    except RecursionError:  # `[[[[…` a few thousand deep fits in a manifest's size limit
        raise _invalid("the body nests too deeply") from None
    if not isinstance(document, dict):
        raise _invalid("the body must be a JSON object")
    if document.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2 (schema 1 manifests are not supported)")
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    header = media_type_of(content_type)
    if header not in _GENERIC_TYPES:
        if declared and declared != header:
            raise _invalid(f"Content-Type {header} does not match the manifest's mediaType {declared}")
        media_type = header
    elif declared:
        media_type = declared
    else:
        media_type = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported media type {media_type!r}; push one of {', '.join(sorted(MANIFEST_TYPES))}")
    subject = _descriptor(document["subject"], "subject") if document.get("subject") is not None else None
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = _annotations(document.get("annotations"), "manifest")
    if media_type in INDEX_TYPES:
        children = document.get("manifests")
        if not isinstance(children, list):
            raise _invalid("an index needs a manifests list")
        manifests = [_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)]
        return ParsedManifest(media_type, [], manifests, subject, artifact_type, annotations)
    config = _descriptor(document.get("config"), "config")
    layers_value = document.get("layers", [])
    if not isinstance(layers_value, list):
        raise _invalid("layers must be a list")
    layers = [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers_value)]
    # Foreign (non-distributable) layers live at their URLs, not in the registry.
    required = [config] + [layer for layer in layers if not layer.urls]
    return ParsedManifest(media_type, required, [], subject, artifact_type or config.media_type, annotations)
