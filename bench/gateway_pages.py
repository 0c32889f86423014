"""The referrers API and the console's repository pages, embedded against gateway mode.

    python bench/gateway_pages.py                 # 50 tags, 10 referrers, 30 requests each
    python bench/gateway_pages.py --tags 200 --runs 20

The real app in-process (the console tests' support: create_app with its lifespan, httpx's ASGI
transport) with the embedded store, then in front of a stock distribution (`docker-registry`) on
loopback. One repository holds an image and `--tags` more tagged manifests, the first
`--referrers` of them referring to the image. Timed, median and maximum of `--runs` requests:
`GET /v2/<name>/referrers/<digest>` (embedded store, or authgate's index), the console's repository
page (in gateway mode one upstream manifest GET per tag, 8 at a time) and one tag page.
Bounded by the counts given; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.console.support import add_user, console_app, push_image, put_manifest, sign_in  # noqa: E402
from tests.support.processes import Distribution  # noqa: E402

ALICE = ("alice", "alice-password")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY = {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2}


async def _run(mode: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="authgate-bench-"))
    upstream = Distribution(tmp / "upstream") if mode == "gateway" else None
    try:
        settings = {"upstream": upstream.url} if upstream else {}
        async with console_app(tmp, **settings) as (client, resources):
            await add_user(resources, *ALICE)
            subject = await push_image(client, ALICE, "alice/app", "t0000")
            await push_image(client, ALICE, "alice/app", "empty", b"{}")
            refers = {"subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}
            for i in range(1, args.tags + 1):
                await put_manifest(client, ALICE, "alice/app", f"t{i:04d}", {
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY, "layers": [EMPTY],
                    "annotations": {"n": str(i)}, **(refers if i <= args.referrers else {})})
            await sign_in(client, *ALICE)
            for label, url in ((f"referrers ({args.referrers})", f"/v2/alice/app/referrers/{subject}"),
                               (f"repository page ({args.tags + 2} tags)", "/repositories/alice/app"),
                               ("tag page", "/repositories/alice/app/-/tags/t0000")):
                times = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    response = await client.get(url, auth=ALICE if url.startswith("/v2/") else None)
                    times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (url, response.status_code)
                print(f"  {mode:9s} {label:30s} median {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms")
    finally:
        if upstream is not None:
            upstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--referrers", type=int, default=10)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for mode in ("embedded", "gateway"):
        asyncio.run(_run(mode, args))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
