"""Small OCI artifacts built by hand (no image can be downloaded) and a store consistency check."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer(name: str, content: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_oci_layout(directory: Path, tag: str, layers: int = 3) -> str:
    """An OCI image layout with `layers` gzip layers; returns the manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = sha256(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    layer_blobs = [_layer(f"file{i}.txt", f"layer {i}\n".encode() * (i + 1)) for i in range(layers)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(gzip.decompress(b)) for b in layer_blobs]},
        "config": {},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(b), "size": len(b)}
                   for b in layer_blobs],
    }).encode()
    digest = put(manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return digest


def check_store(data: Path) -> list[str]:
    """Everything wrong with an embedded store: corrupt blobs, dangling tags, leftovers in tmp/."""
    root = data / "registry"
    problems = []
    for blob in (root / "blobs").rglob("*"):
        if blob.is_file():
            algorithm = blob.parent.parent.name
            if hashlib.new(algorithm, blob.read_bytes()).hexdigest() != blob.name:
                problems.append(f"blob {blob.name} does not match its digest")
    for tag in (root / "repositories").rglob("_manifests/tags/*"):
        algorithm, _, hex_ = tag.read_text().strip().partition(":")
        repository = tag.parent.parent.parent
        if not (root / "blobs" / algorithm / hex_[:2] / hex_).is_file() or \
                not (repository / "_manifests" / "revisions" / algorithm / hex_).is_file():
            problems.append(f"tag {tag} points at a missing manifest")
    problems += [f"leftover {p}" for p in (root / "tmp").iterdir()] if (root / "tmp").exists() else []
    return problems
