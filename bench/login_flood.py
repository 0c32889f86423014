"""A real login's latency while others flood `/token` with made-up names (the hardening issue: 0.3 s → 8.7 s).

    python bench/login_flood.py [--flood 60] [--rounds 3]

On a real `authgate serve` (bcrypt cost 12, the password cache off so every login hashes, clients
told apart by X-Forwarded-For from a trusted loopback proxy): the owner's login alone, then while
`--flood` parallel logins with random names come from one address, then from as many addresses.
The owner logged in once before, so their address is trusted. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import Daemon, authgate_env, free_port, run_cli, wait_for  # noqa: E402

USER, PASSWORD = "owner", "owner-password-123"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def _owner_login(client: httpx.AsyncClient, url: str) -> float:
    started = time.perf_counter()
    response = await client.get(url, headers={"Authorization": _basic(USER, PASSWORD),
                                              "X-Forwarded-For": "198.51.100.1"})
    if response.status_code != 200:
        raise RuntimeError(f"owner login: {response.status_code} {response.text[:200]}")
    return time.perf_counter() - started


async def _round(url: str, flood: int, addresses: int) -> float:
    limits = httpx.Limits(max_connections=flood + 4)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def guess(i: int) -> None:
            await client.get(url, headers={"Authorization": _basic(f"ghost{i}-{time.time_ns()}", "x"),
                                           "X-Forwarded-For": f"203.0.113.{i % addresses + 1}"})

        if not flood:
            return await _owner_login(client, url)
        started = time.perf_counter()
        tasks = [asyncio.create_task(guess(i)) for i in range(flood)]
        await asyncio.sleep(1.0)  # the flood is under way: its hashes have started
        latency = await _owner_login(client, url)
        await asyncio.gather(*tasks)
        print(f"  (the flood took {time.perf_counter() - started:.1f} s)")
        return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = authgate_env(Path(tmp) / "data", port=str(port), password_cache_ttl="0",
                           trusted_proxies="127.0.0.1", log_level="ERROR")
        run_cli(env, "user", "add", USER, "--password-stdin", input=PASSWORD + "\n")
        daemon = Daemon([sys.executable, "-m", "authgate", "serve"], Path(tmp) / "authgate.log", env=env)
        try:
            url = f"http://127.0.0.1:{port}/token"
            wait_for(lambda: httpx.get(url).status_code == 200, "authgate")
            for name, flood, addresses in (("alone", 0, 1), ("flood from one address", args.flood, 1),
                                           (f"flood from {args.flood} addresses", args.flood, args.flood)):
                latencies = [asyncio.run(_round(url, flood, addresses)) for _ in range(args.rounds)]
                print(f"{name:32s} owner login median {statistics.median(latencies):.2f} s "
                      f"(max {max(latencies):.2f} s, {args.rounds} rounds)")
        finally:
            daemon.stop()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
