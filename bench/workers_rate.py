#!/usr/bin/env python3
"""Request rate of `authgate serve --workers 1` vs `--workers 2`, side by side in one run.

Both on SQLite in their own data dir, the audit recorder on. Two request kinds, each on fresh
batches of keep-alive connections spread over the workers:
  token   GET /token with Basic credentials (the per-process password cache warm): signs a JWT,
          appends an audit event
  v2      GET /v2/ with a bearer token: verifies the JWT, nothing written
Interleaved rounds, medians; the load average is printed before and after (2 shared cores).

    python bench/workers_rate.py [--rounds 3] [--requests 400] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import Daemon, authgate_env, free_port, run_cli  # noqa: E402

USER, PASSWORD = "bench", "bench-password-123"


def start(workdir: Path, workers: int) -> tuple[Daemon, str]:
    port = free_port()
    env = authgate_env(workdir / f"data-{workers}", port=str(port), log_level="WARNING", bcrypt_rounds="4")
    run_cli(env, "user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
    daemon = Daemon([sys.executable, "-m", "authgate", "serve", "--workers", str(workers)],
                    workdir / f"authgate-{workers}.log", env=env)
    url = f"http://127.0.0.1:{port}"
    daemon.wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, f"{workers} workers", 60)
    time.sleep(3)  # every worker up, not only the first
    return daemon, url


async def rate(url: str, requests: int, concurrency: int, **kwargs: object) -> float:
    async def worker(count: int) -> None:
        async with httpx.AsyncClient() as client:  # its own connection: the kernel spreads them over workers
            for _ in range(count):
                response = await client.get(url, **kwargs)  # type: ignore[arg-type]
                assert response.status_code == 200, response.text

    started = time.perf_counter()
    await asyncio.gather(*(worker(requests // concurrency) for _ in range(concurrency)))
    return (requests // concurrency * concurrency) / (time.perf_counter() - started)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results: dict[tuple[int, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="authgate-bench-workers-") as tmp:
        servers = {n: start(Path(tmp), n) for n in (1, 2)}
        try:
            before = load()
            for _ in range(args.rounds):
                for workers, (_, url) in servers.items():
                    query = {"service": "authgate", "scope": "repository:bench/app:pull"}
                    token = httpx.get(f"{url}/token", params=query, auth=(USER, PASSWORD)).json()["token"]
                    results.setdefault((workers, "token"), []).append(asyncio.run(rate(
                        f"{url}/token", args.requests, args.concurrency, params=query, auth=(USER, PASSWORD))))
                    results.setdefault((workers, "v2"), []).append(asyncio.run(rate(
                        f"{url}/v2/", args.requests, args.concurrency,
                        headers={"Authorization": f"Bearer {token}"})))
            after = load()
        finally:
            for daemon, _ in servers.values():
                daemon.stop()
    print(f"requests/s, median of {args.rounds} rounds of {args.requests} at concurrency {args.concurrency};"
          f" load average before {before}, after {after}")
    print(f"{'kind':8}{'1 worker':>12}{'2 workers':>12}{'ratio':>8}")
    for kind in ("token", "v2"):
        one, two = (statistics.median(results[(n, kind)]) for n in (1, 2))
        print(f"{kind:8}{one:12.0f}{two:12.0f}{two / one:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
