"""gc frees exactly the unreferenced, old blobs; a young blob (a push in progress) survives."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from authgate.reference import Digest, RepositoryName, Tag
from authgate.storage.gc import collect
from authgate.storage.layout import Layout, write_atomic
from tests.support.processes import authgate_env, run_cli


def _blob(layout: Layout, data: bytes, age: float = 7200) -> Digest:
    digest = Digest("sha256", hashlib.sha256(data).hexdigest())
    path = layout.blob(digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (time.time() - age, time.time() - age))
    return digest


def _store(tmp_path: Path) -> tuple[Layout, dict[str, Digest]]:
    layout = Layout(tmp_path / "data" / "registry")
    layout.create()
    name = RepositoryName("alice/app")
    config, layer, orphan = _blob(layout, b"{}"), _blob(layout, b"layer"), _blob(layout, b"orphan")
    young = _blob(layout, b"pushing", age=10)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": str(config)}, "layers": [{"digest": str(layer)}]})
    top = _blob(layout, manifest.encode())
    index = _blob(layout, json.dumps({"schemaVersion": 2, "manifests": [{"digest": str(top)}]}).encode())
    for digest in (top, index):
        write_atomic(layout, layout.revision(name, digest), b"application/vnd.oci.image.manifest.v1+json")
    write_atomic(layout, layout.tag(name, Tag("v1")), str(index).encode())
    for digest in (config, layer, orphan, young):
        write_atomic(layout, layout.layer_link(name, digest), b"")
    return layout, {"config": config, "layer": layer, "orphan": orphan, "young": young, "top": top}


def test_gc_frees_only_old_unreferenced_blobs(tmp_path: Path) -> None:
    layout, blobs = _store(tmp_path)
    dry = collect(layout, dry_run=True)
    assert [d for d, _ in dry.freed] == [blobs["orphan"]] and layout.blob(blobs["orphan"]).exists()
    report = collect(layout)
    assert [d for d, _ in report.freed] == [blobs["orphan"]] and report.young == 1 and report.kept == 4
    assert not layout.blob(blobs["orphan"]).exists()
    assert not layout.layer_link(RepositoryName("alice/app"), blobs["orphan"]).exists()
    for kept in ("config", "layer", "young", "top"):
        assert layout.blob(blobs[kept]).exists(), kept


def test_gc_cli_prints_what_it_freed(tmp_path: Path) -> None:
    _layout, blobs = _store(tmp_path)
    env = authgate_env(tmp_path / "data")
    dry = run_cli(env, "gc", "--dry-run").stdout
    assert f"would free {blobs['orphan']} (6 bytes)" in dry
    out = run_cli(env, "gc", "--grace", "0").stdout
    assert f"freed {blobs['orphan']}" in out and f"freed {blobs['young']}" in out
    assert "freed 2 blobs" in out
