"""A local stand-in for `python:3.11-slim`: Debian bookworm with python3 and python3-venv, built with
debootstrap from this machine's Debian mirror (no image registry is reachable here).

debootstrap takes about a minute, so the root filesystem is cached under /var/cache/authgate-test-base
in a directory named by build date; a build younger than `MAX_AGE` is reused by later runs and CI.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.support.processes import Dockerd, require

CACHE = Path(os.environ.get("AUTHGATE_TEST_BASE_CACHE", "/var/cache/authgate-test-base"))
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MAX_AGE = dt.timedelta(days=30)
IMAGE = "authgate-test-base"
_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def debian_mirror() -> str:
    """The first `URIs:` of the configured Debian sources (deb822), else the classic sources.list."""
    for path in (_SOURCES, Path("/etc/apt/sources.list")):
        if path.exists():
            text = path.read_text()
            match = re.search(r"^URIs:\s*(\S+)", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.M)
            if match:
                return match.group(1)
    return "http://deb.debian.org/debian"


def _cached(today: dt.date) -> Path | None:
    prefix = f"{SUITE}-"
    found = []
    for entry in CACHE.glob(f"{prefix}*"):
        try:
            built = dt.datetime.strptime(entry.name.removeprefix(prefix), "%Y%m%d").date()
        except ValueError:
            continue
        if (entry / ".complete").exists() and today - built <= MAX_AGE:
            found.append((built, entry))
    return max(found)[1] if found else None


def rootfs() -> Path:
    """The cached root filesystem, built now when there is none recent enough."""
    require("debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(dt.timezone.utc).date()
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
        existing = _cached(today)
        if existing:
            return existing
        target = CACHE / f"{SUITE}-{today:%Y%m%d}"
        work = CACHE / f".building-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(work),
                 debian_mirror()],
                check=True, capture_output=True, text=True, timeout=1200,
            )
            subprocess.run(["chroot", str(work), "apt-get", "clean"], check=False, capture_output=True)
            shutil.rmtree(work / "var/lib/apt/lists", ignore_errors=True)
            (work / ".complete").write_text(f"{SUITE} {' '.join(PACKAGES)}\n")
            shutil.rmtree(target, ignore_errors=True)
            work.rename(target)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"debootstrap failed:\n{exc.stdout[-2000:]}\n{exc.stderr[-2000:]}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target


def import_base(docker: Dockerd, tag: str = IMAGE) -> str:
    """Import the root filesystem into `docker` as `tag`. This machine's CA bundle goes in (PyPI may sit
    behind a TLS-inspecting proxy here), and pip is pointed at it."""
    root = rootfs()
    if _BUNDLE.exists():
        shutil.copy(_BUNDLE, root / _BUNDLE.relative_to("/"))
    tar = subprocess.Popen(["tar", "-C", str(root), "--exclude=./.complete", "-c", "."], stdout=subprocess.PIPE)
    try:
        result = subprocess.run(
            ["docker", "import", "--change", f"ENV PIP_CERT={_BUNDLE}", "--change", 'CMD ["python3"]', "-", tag],
            stdin=tar.stdout, env=docker.env, capture_output=True, text=True, timeout=600,
        )
    finally:
        if tar.stdout:
            tar.stdout.close()
        tar.wait()
    if result.returncode != 0:
        raise RuntimeError(f"docker import failed: {result.stderr}")
    return tag
