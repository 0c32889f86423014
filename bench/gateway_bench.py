#!/usr/bin/env python3
"""authgate as a gateway beside the registry behind it, measured in the same run: blob push and
pull (bytes moved by curl) and the small requests (rates by wrk), with the CPU each costs.

    python bench/gateway_bench.py [--size 256M] [--repeat 3] [--duration 3] [--rounds 2]
                                  [--connections 16] [--rss-size 1G] [--skip blobs|requests]
                                  [--baseline DIR]

Columns: `direct` is distribution 2.8 (`docker-registry`) on loopback with no auth; `gateway` is
`authgate serve` in gateway mode in front of that same registry (`upstream_auth none`, SQLite),
reached with a bearer token from its /token. Every ratio is gateway / direct, the two measured
seconds apart in the same round (rounds interleave them); on a shared machine absolute rates move
with the load, ratios much less. The load average is printed beside the figures.

CPU columns: CPU seconds the serving processes used (/proc), per GiB or per request. They explain
the ratios on a small machine: when curl or wrk, the registry and authgate share two cores, a
gateway request costs the registry's CPU *plus* authgate's, so the ratio tends to
registry / (registry + authgate) as the machine fills up. For blobs, `all` adds curl's CPU: on
loopback the kernel often does one side's TCP work (the receiver's half of a send, the sender's
transmit an ACK releases) in the other process's time, so the share of each process moves from run
to run (authgate's pull CPU reads 0.35 or 0.85 s/GiB for the same code) while their sum holds.

`--rss-size` also pushes and pulls one blob that large through the gateway and prints authgate's
peak RSS before and after: memory must stay flat whatever the blob size.
`--baseline DIR` adds a column `baseline`: the same gateway run from another version's `authgate`
package (DIR holds its `authgate/`, e.g. `git archive main authgate | tar -x -C DIR`), measured in
the same rounds, for the same load. Compare changes this way: a ratio moves by ±0.15 between
runs of one version on a shared 2-core machine, much less between columns of one run.
Needs curl, wrk and docker-registry (Debian packages `curl`, `wrk`, `docker-registry`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blob_throughput import (  # noqa: E402
    AuthgateServer, Direct, Gateway, Target, cpu_seconds, make_blob, parse_size, peak_rss_mib, pull, push,
)
from request_rate import (  # noqa: E402
    LAYER,
    MANIFEST,
    MANIFEST_TYPE,
    digest,
    head_rate,
    push_small_image,
    wrk,
)
from tests.support.processes import Distribution  # noqa: E402

REPOSITORY = "bench/small"


@dataclass(frozen=True)
class Row:
    name: str
    path: str
    method: str = "GET"


ROWS = [
    Row("manifest GET by tag", f"/v2/{REPOSITORY}/manifests/v1"),
    Row("manifest GET by digest", f"/v2/{REPOSITORY}/manifests/{digest(MANIFEST)}"),
    Row("manifest HEAD by tag", f"/v2/{REPOSITORY}/manifests/v1", "HEAD"),
    Row("manifest HEAD by digest", f"/v2/{REPOSITORY}/manifests/{digest(MANIFEST)}", "HEAD"),
    Row("blob HEAD", f"/v2/{REPOSITORY}/blobs/{digest(LAYER)}", "HEAD"),
    Row("blob GET 4 KiB", f"/v2/{REPOSITORY}/blobs/{digest(LAYER)}"),
    Row("tags/list", f"/v2/{REPOSITORY}/tags/list"),
]


class Baseline(Gateway):
    """The gateway column run from another checkout's `authgate` package (`--baseline`)."""

    name = "baseline"

    def __init__(self, checkout: Path) -> None:
        self.checkout = checkout

    def start(self, registry: Distribution, workdir: Path) -> None:
        server = AuthgateServer(workdir / "authgate", upstream=registry.url, log_level="WARNING")
        server.env = {**server.env, "PYTHONPATH": str(self.checkout)}
        self.launch(server)


def _cpu(pids: list[int | None]) -> list[float]:
    return [cpu_seconds(pid) or 0.0 for pid in pids]


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (each transfer's curl)."""
    times = os.times()
    return times.children_user + times.children_system


def measure_requests(targets: dict[str, Target], registry_pid: int, args: argparse.Namespace, workdir: Path
                     ) -> dict[str, dict[str, list[float]]]:
    """Per row: rates of each column, the ratios, and CPU ms per request of authgate and the registry."""
    figures: dict[str, dict[str, list[float]]] = {row.name: {} for row in ROWS}
    for number in range(args.rounds):
        order = list(targets.items()) if number % 2 == 0 else list(targets.items())[::-1]
        for row in ROWS:
            rates: dict[str, float] = {}
            for name, target in order:
                headers = {**target.headers(REPOSITORY), "Accept": MANIFEST_TYPE}
                before = _cpu([target.pid, registry_pid])
                if row.method == "HEAD":
                    rate, errors = head_rate(target.url + row.path, headers, args.duration, args.connections)
                else:
                    rate, errors = wrk(target.url + row.path, row.method, headers, "", args.duration,
                                       args.connections, workdir)
                after = _cpu([target.pid, registry_pid])
                if errors:
                    print(f"warning: {name} {row.name}: {errors} answers were not 2xx/3xx", file=sys.stderr)
                requests = max(rate * args.duration, 1)
                rates[name] = rate
                cell = figures[row.name]
                cell.setdefault(f"{name} rate", []).append(rate)
                if target.pid is not None:
                    cell.setdefault(f"{name} authgate ms", []).append((after[0] - before[0]) * 1000 / requests)
                cell.setdefault(f"{name} registry ms", []).append((after[1] - before[1]) * 1000 / requests)
            for name in targets.keys() - {"direct"}:
                if rates.get("direct"):
                    figures[row.name].setdefault(f"{name} ratio", []).append(rates[name] / rates["direct"])
    return figures


def measure_blobs(targets: dict[str, Target], registry_pid: int, size: int, args: argparse.Namespace,
                  workdir: Path) -> dict[str, dict[str, list[float]]]:
    blob = workdir / "blob"
    print(f"making a {size / 1024**2:.0f} MiB random blob …", flush=True)
    digest = make_blob(blob, size)
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
    try:
        for run in range(args.repeat):
            order = list(targets.items()) if run % 2 == 0 else list(targets.items())[::-1]
            for name, target in order:
                repository = f"bench/{name}-{run}"
                cell = figures[name]
                for op in ("push", "pull"):
                    os.sync()
                    before, curl_before = _cpu([target.pid, registry_pid]), _children_cpu()
                    seconds = (push(target, repository, blob, digest, workdir) if op == "push"
                               else pull(target, repository, digest, size))
                    after, curl = _cpu([target.pid, registry_pid]), _children_cpu() - curl_before
                    per_gib = [(end - start) * 1024**3 / size for start, end in zip(before, after)]
                    cell.setdefault(f"{op} MiB/s", []).append(size / seconds / 1024**2)
                    if target.pid is not None:
                        cell.setdefault(f"{op} authgate s/GiB", []).append(per_gib[0])
                    cell.setdefault(f"{op} registry s/GiB", []).append(per_gib[1])
                    cell.setdefault(f"{op} total s/GiB", []).append(sum(per_gib) + curl * 1024**3 / size)
            for op in ("push", "pull"):
                direct = figures["direct"][f"{op} MiB/s"][-1]
                for name in targets.keys() - {"direct"}:
                    figures[name].setdefault(f"{op} ratio", []).append(figures[name][f"{op} MiB/s"][-1] / direct)
    finally:
        blob.unlink(missing_ok=True)
    return figures


def big_blob_rss(target: Target, size: int, workdir: Path) -> tuple[float | None, float | None]:
    """authgate's peak RSS (MiB) before and after pushing and pulling one `size` blob through it."""
    before = peak_rss_mib(target.pid)
    blob = workdir / "big-blob"
    print(f"making a {size / 1024**3:.1f} GiB random blob for the memory check …", flush=True)
    digest = make_blob(blob, size)
    try:
        push(target, "bench/big", blob, digest, workdir)
        pull(target, "bench/big", digest, size)
    finally:
        blob.unlink()
    return before, peak_rss_mib(target.pid)


def _median(values: list[float] | None, fmt: str) -> str:
    return format(statistics.median(values), fmt) if values else "-"


def _loads() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", default="256M", help="blob size for push/pull (default 256M)")
    parser.add_argument("--repeat", type=int, default=3, help="blob rounds (median reported)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per small-request measurement")
    parser.add_argument("--rounds", type=int, default=2, help="small-request rounds (median reported)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rss-size", default="0", help="also move one blob this large through the gateway and "
                        "print authgate's peak RSS before and after (e.g. 1G; default 0: skip)")
    parser.add_argument("--skip", choices=("blobs", "requests"), action="append", default=[])
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also measure the gateway run from DIR/authgate (another "
                        "version), in the same rounds")
    args = parser.parse_args()
    for command in ("curl", "wrk", "docker-registry"):
        if shutil.which(command) is None:
            parser.error(f"{command} is not installed (Debian: apt-get install {command})")
    workdir = Path(tempfile.mkdtemp(prefix="authgate-gateway-bench-"))
    registry = Distribution(workdir / "registry")
    targets: dict[str, Target] = {"direct": Direct(), "gateway": Gateway()}
    if args.baseline:
        if not (args.baseline / "authgate" / "__init__.py").is_file():
            parser.error(f"{args.baseline} holds no authgate package")
        targets["baseline"] = Baseline(args.baseline.resolve())
    printed: list[str] = []
    try:
        for name, target in targets.items():
            target.start(registry, workdir / name)
        registry_pid = registry.daemon.process.pid
        push_small_image(targets["gateway"].url, targets["gateway"].headers(REPOSITORY), REPOSITORY)
        if "blobs" not in args.skip:
            size = parse_size(args.size)
            blobs = measure_blobs(targets, registry_pid, size, args, workdir)
            printed.append(f"\nblobs of {size / 1024**2:.0f} MiB, curl, median of {args.repeat}; load average "
                           f"{_loads()} (1, 5, 15 min) at the end")
            printed.append(f"{'':10}{'push MiB/s':>11}{'ratio':>7}{'CPU s/GiB':>10}{'registry':>9}{'all':>6}"
                           f"{'pull MiB/s':>12}{'ratio':>7}{'CPU s/GiB':>10}{'registry':>9}{'all':>6}")
            for name, cell in blobs.items():
                printed.append(f"{name:10}" + "".join(
                    f"{_median(cell.get(f'{op} MiB/s'), '.0f'):>{11 if op == 'push' else 12}}"
                    f"{_median(cell.get(f'{op} ratio'), '.2f'):>7}{_median(cell.get(f'{op} authgate s/GiB'), '.2f'):>10}"
                    f"{_median(cell.get(f'{op} registry s/GiB'), '.2f'):>9}{_median(cell.get(f'{op} total s/GiB'), '.2f'):>6}"
                    for op in ("push", "pull")))
            printed.append("CPU s/GiB: authgate's CPU per GiB moved; registry: distribution's, in the same transfers; "
                           "all: authgate, registry and curl together")
        if "requests" not in args.skip:
            rows = measure_requests(targets, registry_pid, args, workdir)
            printed.append(f"\nrequests/s, wrk -t1 -c{args.connections} (HEAD: a keep-alive socket loop), median of "
                           f"{args.rounds} rounds of {args.duration:g} s; load average {_loads()} at the end")
            gateways = [name for name in targets if name != "direct"]
            printed.append(f"{'request':26}{'direct':>8}" + "".join(f"{name:>9}{'ratio':>7}{'authgate ms':>13}"
                                                                    for name in gateways)
                           + f"{'registry ms':>12}{'(direct)':>9}")
            for row in ROWS:
                cell = rows[row.name]
                printed.append(
                    f"{row.name:26}{_median(cell.get('direct rate'), '.0f'):>8}" + "".join(
                        f"{_median(cell.get(f'{name} rate'), '.0f'):>9}{_median(cell.get(f'{name} ratio'), '.2f'):>7}"
                        f"{_median(cell.get(f'{name} authgate ms'), '.2f'):>13}" for name in gateways)
                    + f"{_median(cell.get('gateway registry ms'), '.2f'):>12}"
                    f"{_median(cell.get('direct registry ms'), '.2f'):>9}")
            printed.append("ms: CPU per request of authgate, and of the registry behind it (direct: serving wrk itself)")
        rss_size = parse_size(args.rss_size)
        if rss_size:
            before, after = big_blob_rss(targets["gateway"], rss_size, workdir)
            printed.append(f"\nauthgate peak RSS {before:.0f} MiB before, {after:.0f} MiB after pushing and pulling "
                           f"{rss_size / 1024**3:.1f} GiB through it")
        else:
            printed.append(f"\nauthgate peak RSS {peak_rss_mib(targets['gateway'].pid):.0f} MiB")
    finally:
        for target in targets.values():
            target.stop()
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(printed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
