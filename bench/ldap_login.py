"""What an LDAP login costs at `/token`, cold and from the bind cache, against a real slapd.

    python bench/ldap_login.py [--requests 200] [--concurrency 8]

One `authgate serve` (SQLite) with the identity chain local -> LDAP (search-then-bind over
StartTLS, nested groups two levels, as tests/support/slapd.py sets up). Three rounds:
  ldap-cold    cache_ttl 0: service bind, user search, user bind, group searches per request
  ldap-cached  the same user again within cache_ttl: an HMAC lookup, no directory traffic
  /v2/ bearer  a token issued to the LDAP user, checked on /v2/ (the chain re-resolves the subject)
Loopback only; every loop is bounded. Note the load average beside any figure.
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

from tests.support.processes import AuthgateServer  # noqa: E402
from tests.support.slapd import Slapd  # noqa: E402


async def _round(url: str, headers: dict[str, str], requests: int, concurrency: int, path: str) -> list[float]:
    latencies: list[float] = []
    queue = list(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            queue.pop()
            started = time.perf_counter()
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, response.text
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies


def _report(name: str, latencies: list[float], wall: float) -> None:
    print(f"{name:12s} {len(latencies) / wall:8.1f} req/s   median {statistics.median(latencies) * 1000:7.2f} ms   "
          f"p95 {sorted(latencies)[int(len(latencies) * 0.95) - 1] * 1000:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="authgate-ldap-bench-"))
    slapd = Slapd(work / "slapd")
    basic = {"Authorization": "Basic " + base64.b64encode(b"carol:carol-pw").decode()}
    scope = "/token?service=authgate&scope=repository:backend/api:pull,push"
    try:
        print(f"load average {os.getloadavg()[0]:.2f}; {args.requests} requests, concurrency {args.concurrency}")
        for name, ttl in (("ldap-cold", 0), ("ldap-cached", 300)):
            identity = slapd.identity_file(work / f"identity-{ttl}.yaml", cache_ttl=ttl)
            (work / f"authgate-{ttl}").mkdir()
            server = AuthgateServer(work / f"authgate-{ttl}", identity=str(identity)).start()
            try:
                asyncio.run(_round(server.url, basic, 1, 1, scope))  # warm: the first bind fills the cache
                started = time.perf_counter()
                latencies = asyncio.run(_round(server.url, basic, args.requests, args.concurrency, scope))
                _report(name, latencies, time.perf_counter() - started)
                if ttl:
                    token = httpx.get(server.url + scope, headers=basic, timeout=30).json()["token"]
                    bearer = {"Authorization": f"Bearer {token}"}
                    started = time.perf_counter()
                    latencies = asyncio.run(_round(server.url, bearer, args.requests, args.concurrency, "/v2/"))
                    _report("/v2/ bearer", latencies, time.perf_counter() - started)
            finally:
                server.stop()
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        slapd.stop()


if __name__ == "__main__":
    main()
