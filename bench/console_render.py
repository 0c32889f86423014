"""Console benchmark: server-side render of the repository list with 10,000 repositories.

    python bench/console_render.py                    # SQLite and a store in a temp dir
    python bench/console_render.py --repositories 20000 --runs 100

The real app in-process (create_app, lifespan, a signed-in session cookie, httpx's ASGI transport,
so no sockets): an embedded store holding `--repositories` repositories (a third the user's own,
a third `shared/**` everyone may pull, a third another user's, hidden), and a policy file saying so.
Timed: `GET /repositories` (first page), a search with paging (`?q=lib&page=10`) and the htmx
fragment of a search; the median, 95th percentile and maximum of `--runs` requests each, after one
warm-up. The repository list is walked on disk by a background task (console/repository_list.py), so
the timed requests include refreshes happening beside them but never wait for one; the walk itself
is timed separately.
Target (issue #16): under 100 ms for the repository list with 10,000 repositories.
Everything is bounded by the counts given; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from authgate.app import create_app  # noqa: E402
from authgate.auth import accounts  # noqa: E402
from authgate.auth.services import auth_of  # noqa: E402
from authgate.console import repository_list  # noqa: E402
from authgate.console.sessions import start_session  # noqa: E402
from authgate.settings import Settings  # noqa: E402

POLICY = """\
rules:
  - name: own namespace
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: [pull, push, delete]
  - name: shared libraries
    subjects: ["*"]
    repositories: ["shared/**"]
    allow: [pull]
"""


def _make_store(data: Path, count: int) -> None:
    """Repository directories as the embedded store lays them out (a `_manifests` dir marks one)."""
    root = data / "registry" / "repositories"
    for i in range(count):
        owner = ("alice", "shared", "bob")[i % 3]
        os.makedirs(root / owner / f"lib-{i:05d}" / "_manifests" / "revisions", exist_ok=True)


async def _time(client: httpx.AsyncClient, url: str, runs: int, headers: dict[str, str] | None = None
                ) -> tuple[float, float, float, str]:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text[:500]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        response = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    samples.sort()
    count_line = next((line for line in response.text.splitlines() if "you may pull" in line), "").strip()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], samples[-1], count_line


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    if not 1 <= args.repositories <= 1_000_000 or not 1 <= args.runs <= 10_000:
        parser.error("--repositories 1..1000000, --runs 1..10000")
    with tempfile.TemporaryDirectory(prefix="authgate-console-bench-") as tmp:
        data = Path(tmp) / "data"
        policies = Path(tmp) / "policies"
        policies.mkdir()
        (policies / "bench.yaml").write_text(POLICY)
        _make_store(data, args.repositories)
        app = create_app(Settings(data=data, policies=policies, bcrypt_rounds=4,
                                  database_url=f"sqlite+aiosqlite:///{tmp}/authgate.db"))
        async with app.router.lifespan_context(app):
            resources = app.state.resources
            await accounts.create_user(resources.db, "alice", auth_of(resources).verifier.hash("pw"))
            cookie = await start_session(resources.db, "alice")
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000",
                                         cookies={"authgate_session": cookie}) as client:
                print(f"{args.repositories} repositories, {args.runs} runs each; load average "
                      f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
                for label, url, headers in (
                    ("list, first page", "/repositories", None),
                    ("search + page 10", "/repositories?q=lib&page=10", None),
                    ("htmx search fragment", "/repositories?q=lib-05", {"HX-Request": "true"}),
                ):
                    median, p95, worst, count = await _time(client, url, args.runs, headers)
                    print(f"  {label:24s} median {median:6.1f} ms   p95 {p95:6.1f} ms   max {worst:6.1f} ms   ({count})")
                store = repository_list.content_of(resources)
                assert store is not None
                start = time.perf_counter()
                await store.repositories()
                print(f"  walking the store (in the background, every {repository_list.LIST_TTL:.0f} s while the "
                      f"console is in use; no request waits for it): {(time.perf_counter() - start) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
