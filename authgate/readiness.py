"""`Readiness`: why the process is not ready, and what is degraded without stopping it.

Each subsystem that can stop the process from serving correctly (the policy at start, the upstream
registry in gateway mode) reports under its own name; `/readyz` fails while any reason is set.
Degraded is weaker (a stale policy: the last good one decides): shown by `/healthz` and the
metrics, never a `/readyz` failure, since one typo would take every replica out of a balancer.
"""

from __future__ import annotations

from collections.abc import Mapping


class Readiness:
    def __init__(self) -> None:
        self._not_ready: dict[str, str] = {}
        self._degraded: dict[str, str] = {}

    @property
    def not_ready(self) -> Mapping[str, str]:
        """Reasons by owner; empty when ready."""
        return self._not_ready

    @property
    def degraded(self) -> Mapping[str, str]:
        return self._degraded

    def block(self, owner: str, reason: str) -> None:
        """`owner` stops the process from being ready, for `reason` (replacing its previous one)."""
        self._not_ready[owner] = reason

    def unblock(self, owner: str) -> bool:
        """`owner` no longer stops readiness; True if it did."""
        return self._not_ready.pop(owner, None) is not None

    def degrade(self, owner: str, reason: str) -> None:
        self._degraded[owner] = reason

    def recover(self, owner: str) -> None:
        """`owner` is neither unready nor degraded any more."""
        self._not_ready.pop(owner, None)
        self._degraded.pop(owner, None)
