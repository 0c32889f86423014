#!/usr/bin/env python3
"""What a gateway upload session that moves between replicas costs, side by side in one run.

Two `authgate serve --upstream` processes (one SQLite file, the same keys) in front of one
docker-registry (filesystem). The same blob is pushed as POST on A, two chunks, a final `PUT`:
  pinned    everything on A: A's running hash checks the digest
  recorded  chunks on A, PUT on B: B checks the digest A recorded (docker's one-PATCH push spread
            over replicas is this case)
  moved     chunk on A, chunk on B, PUT on A: the registry checks the digest, then authgate reads
            the blob back and hashes it
Interleaved rounds, medians of the whole upload's seconds; the load average before and after.

    python bench/gateway_moved_uploads.py [--size 128M] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.balancer import on  # noqa: E402
from tests.support.processes import AuthgateServer, Distribution  # noqa: E402

PASSWORD = "bench-password-123"
AUTH = ("bench", PASSWORD)


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def push(a: AuthgateServer, b: AuthgateServer, kind: str, blob: bytes, n: int) -> float:
    """POST on A, two PATCHes, PUT: on which processes depends on `kind`; seconds for all of it."""
    half = len(blob) // 2
    patches, put = {"pinned": ((a, a), a), "recorded": ((a, a), b), "moved": ((a, b), a)}[kind]
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    started = time.perf_counter()
    location = httpx.post(f"{a.url}/v2/bench/{kind}-{n}/blobs/uploads/", auth=AUTH).headers["location"]
    offset = 0
    for server, chunk in zip(patches, (blob[:half], blob[half:])):
        response = httpx.patch(on(server, location), content=chunk, auth=AUTH, timeout=300,
                               headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
        response.raise_for_status()
        offset += len(chunk)
        location = response.headers["location"]
    done = httpx.put(on(put, location), params={"digest": digest}, auth=AUTH, timeout=300)
    assert done.status_code == 201, done.text
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128M")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    blob = os.urandom(_size(args.size))
    workdir = Path(tempfile.mkdtemp(prefix="authgate-bench-moved-"))
    upstream = Distribution(workdir / "upstream")
    shared = {"upstream": upstream.url, "database_url": f"sqlite+aiosqlite:///{workdir / 'authgate.db'}",
              "log_level": "WARNING", "bcrypt_rounds": "4"}
    (workdir / "a").mkdir()
    a = AuthgateServer(workdir / "a", **shared).start()
    b = AuthgateServer(workdir / "b", **shared)
    b.data.mkdir(mode=0o700, parents=True)
    shutil.copytree(a.data / "keys", b.data / "keys")
    b.start()
    try:
        a.cli("user", "add", "bench", "--password-stdin", input=PASSWORD + "\n")
        print(f"load average before: {os.getloadavg()[0]:.2f}; blob {len(blob) / 1024**2:.0f} MiB")
        seconds: dict[str, list[float]] = {"pinned": [], "recorded": [], "moved": []}
        for n in range(args.rounds):
            for kind in seconds:
                seconds[kind].append(push(a, b, kind, blob, n))
        base = statistics.median(seconds["pinned"])
        for kind, values in seconds.items():
            median = statistics.median(values)
            print(f"{kind:8} {median:6.2f} s  {len(blob) / 1024**2 / median:7.1f} MiB/s  {median / base:5.2f}x")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        a.stop()
        b.stop()
        upstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
