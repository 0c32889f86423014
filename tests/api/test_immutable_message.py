"""The immutable-tag refusal names the policy rule, never the server's file path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import anyio
import pytest

from tests.api.registry_support import basic, registry_client


def _manifest(config: bytes) -> bytes:
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest,
                                  "size": len(config)}, "layers": []}).encode()


def test_the_immutable_tag_refusal_names_the_rule_not_the_path(tmp_path: Path) -> None:
    policies = tmp_path / "secret-server-dir"
    policies.mkdir()
    (policies / "p.yaml").write_text("rules:\n  - name: own\n    subjects: ['user:*']\n    repositories: ['${user}/**']\n"
                                     "    allow: ['*']\n  - name: releases-are-final\n    repositories: ['**']\n"
                                     "    immutable_tags: ['v*']\n")
    alice = {**basic("alice", "alice-pw"), "Content-Type": "application/vnd.oci.image.manifest.v1+json"}

    async def scenario() -> None:
        async with registry_client(tmp_path, policies=policies) as app:
            http = app.http
            for config in (b"{}", b'{"a":1}'):
                digest = "sha256:" + hashlib.sha256(config).hexdigest()
                started = await http.post(f"/v2/alice/app/blobs/uploads/?digest={digest}", content=config,
                                          headers=basic("alice", "alice-pw"))
                assert started.status_code == 201, started.text
            first = await http.put("/v2/alice/app/manifests/v1", content=_manifest(b"{}"), headers=alice)
            assert first.status_code == 201, first.text
            moved = await http.put("/v2/alice/app/manifests/v1", content=_manifest(b'{"a":1}'), headers=alice)
            assert moved.status_code == 403
            error = moved.json()["errors"][0]
            assert error["message"] == ("tag v1 is immutable (policy rule 'releases-are-final'); push a new tag "
                                        "instead")
            assert "secret-server-dir" not in moved.text and "p.yaml" not in moved.text

    anyio.run(scenario)
