"""The real app in-process for console tests: real audit recorder, accounts via `accounts`, and a
browser-like client that keeps cookies and reads CSRF tokens out of the forms it is shown."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette

from authgate.app import create_app
from authgate.audit.recorder import AuditRecorder
from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.resources import Resources
from authgate.settings import Settings

_CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def console_app(tmp_path: Path, base_url: str = "http://localhost:5000", **settings: object
                      ) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    settings.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path / 'authgate.db'}")
    app: Starlette = create_app(Settings(data=tmp_path / "data", bcrypt_rounds=4, **settings))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        resources: Resources = app.state.resources
        auth_of(resources).limiter.delay = 0
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client, resources


def give_seal_key(first: Path, second: Path) -> None:
    """What every replica is given (docs/scale-out.md): the key sealing the signing keys in the shared
    database, copied from the `console_app` at `first` to the one about to start at `second`."""
    keys = second / "data" / "keys"
    keys.mkdir(parents=True, mode=0o700)
    shutil.copy2(first / "data" / "keys" / "seal.key", keys / "seal.key")


async def flush_audit(resources: Resources) -> None:
    assert isinstance(resources.audit, AuditRecorder)
    await resources.audit.flush()


async def add_user(resources: Resources, name: str, password: str, admin: bool = False) -> None:
    await accounts.create_user(resources.db, name, auth_of(resources).verifier.hash(password), admin)


def csrf_of(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    form = await client.get("/signin")
    return await client.post("/signin", data={"csrf": csrf_of(form.text), "username": name, "password": password,
                                              "next": "/repositories"})


async def push_image(client: httpx.AsyncClient, auth: tuple[str, str], repository: str, tag: str,
                     payload: bytes = b"layer") -> str:
    """Push a one-layer image with Basic credentials, as `curl -u` could; returns the manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    descriptors = []
    for body, media_type in ((config, "application/vnd.oci.image.config.v1+json"),
                             (payload, "application/vnd.oci.image.layer.v1.tar")):
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        start = await client.post(f"/v2/{repository}/blobs/uploads/", auth=auth)
        assert start.status_code == 202, start.text
        location = httpx.URL(start.headers["location"]).copy_merge_params({"digest": digest})  # keeps `_state`
        done = await client.put(location, content=body, auth=auth,
                                headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(body)})
    return await put_manifest(client, auth, repository, tag, {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0], "layers": descriptors[1:]})


async def put_manifest(client: httpx.AsyncClient, auth: tuple[str, str], repository: str, reference: str,
                       document: dict[str, object]) -> str:
    body = json.dumps(document).encode()
    response = await client.put(f"/v2/{repository}/manifests/{reference}", content=body, auth=auth,
                                headers={"Content-Type": str(document["mediaType"])})
    assert response.status_code == 201, response.text
    return str(response.headers["docker-content-digest"])
