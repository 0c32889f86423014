"""A second host for tests: a network namespace joined to this one by a veth pair.

Both addresses sit in a /30 that exists only on that veth, assigned here; the namespace has no other
interface and no default route, so nothing it sends can leave the pair (checked before use). Names
carry the pid (`ag-<pid>-<n>`) so parallel runs never collide, and a run sweeps the leftovers of
dead ones. dockerd runs inside with `nsenter --net=…` (`ip netns exec` remounts /sys, and dockerd then
fails with "Devices cgroup isn't mounted").
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import subprocess
from pathlib import Path

from tests.support.processes import missing_component, require

NETNS_DIR = Path("/var/run/netns")
#: The /30s are carved from here; a block that overlaps any address or route on this machine is skipped.
_POOL = ipaddress.IPv4Network("10.213.0.0/16")
_counter = itertools.count(1)
_NAME = re.compile(r"^ag-(\d+)-\d+$")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> None:
    """Delete `ag-<pid>-*` namespaces whose test run died without tearing down."""
    if not NETNS_DIR.is_dir():
        return
    for entry in NETNS_DIR.iterdir():
        match = _NAME.match(entry.name)
        if match and not _pid_alive(int(match.group(1))):
            _ip("netns", "del", entry.name, check=False)


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for info in item.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "default")
        try:
            used.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            pass  # "default" and the like
    return used


def _free_block() -> ipaddress.IPv4Network:
    used = _used_networks()
    blocks = list(_POOL.subnets(new_prefix=30))
    start = (os.getpid() * 7 + next(_counter)) % len(blocks)
    for block in blocks[start:] + blocks[:start]:
        if not any(block.overlaps(net) for net in used):
            return block
    raise RuntimeError(f"no free /30 in {_POOL}")


class SecondHost:
    """Namespace `name`, reached from here at `peer_address`; it reaches us at `host_address`."""

    def __init__(self) -> None:
        require("ip", "nsenter", "unshare")
        if os.geteuid() != 0:
            missing_component("network namespaces need root")
        sweep_stale()
        n = next(_counter)
        self.name = f"ag-{os.getpid()}-{n}"
        self.host_if = f"ag{os.getpid()}h{n}"[:15]
        self.peer_if = f"ag{os.getpid()}n{n}"[:15]
        block = _free_block()
        host, peer = list(block.hosts())
        self.host_address, self.peer_address = str(host), str(peer)
        self.prefix = block.prefixlen
        try:
            self._create()
            self._check_contained()
        except BaseException:
            self.close()
            raise

    @property
    def netns_path(self) -> Path:
        return NETNS_DIR / self.name

    def _create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.peer_if, "netns", self.name)
        for path in (f"/proc/sys/net/ipv6/conf/{self.host_if}/disable_ipv6",):
            Path(path).write_text("1\n")
        _ip("addr", "add", f"{self.host_address}/{self.prefix}", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        self.run("sh", "-c", f"echo 1 > /proc/sys/net/ipv6/conf/{self.peer_if}/disable_ipv6")
        _ip("-n", self.name, "addr", "add", f"{self.peer_address}/{self.prefix}", "dev", self.peer_if)
        _ip("-n", self.name, "link", "set", self.peer_if, "up")

    def _check_contained(self) -> None:
        """Refuse to go on unless the peer is reached through our veth and the namespace has no way out."""
        route = json.loads(_ip("-j", "route", "get", self.peer_address).stdout)[0]
        if route.get("dev") != self.host_if or "gateway" in route:
            raise RuntimeError(f"{self.peer_address} would not go through {self.host_if}: {route}")
        routes = json.loads(_ip("-n", self.name, "-j", "route", "show", "table", "all").stdout or "[]")
        outward = [r for r in routes if r.get("dst") == "default" or "gateway" in r]
        links = [link["ifname"] for link in json.loads(_ip("-n", self.name, "-j", "link").stdout)]
        if outward or sorted(links) != sorted(["lo", self.peer_if]):
            raise RuntimeError(f"namespace {self.name} is not closed: routes {outward}, links {links}")

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command on the second host (its network only; same files and processes)."""
        result = subprocess.run(["nsenter", f"--net={self.netns_path}", *argv], capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {self.name} exited {result.returncode}\n{result.stderr}")
        return result

    def close(self) -> None:
        _ip("netns", "del", self.name, check=False)  # takes the veth pair with it
        _ip("link", "del", self.host_if, check=False)

    def __enter__(self) -> SecondHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
