"""What a client can make the audit log hold: bounded per event, and per unauthenticated client.

The security test grew the log by 14 KB per anonymous `GET /token` (25 long scopes in
`details`), ~5.7 GB an hour from one client; repeated wrong passwords, bad refresh tokens and
anonymous upload attempts each wrote a row. So:

- `bound_event` cuts `details` to `MAX_DETAILS_BYTES`: strings to `MAX_DETAIL_TEXT` characters,
  lists to `MAX_DETAIL_ITEMS` items, and, if still too large, to a note of the size dropped.
  (The columns are cut to the schema's limits by `audit.chain.to_row`.)
- `UnauthenticatedThrottle` records at most `per_key` events a minute per (address, action) from
  clients that did not authenticate (failed logins, anonymous actors), and at most `total` a minute
  of those overall. The rest are counted; the next event admitted for that key is preceded by one
  `audit:suppressed` event saying how many were not recorded (and a warning is logged when the
  suppression starts, so a flood is visible even if it stops for good).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authgate.audit.events import AuditEvent, flat_json_bound, flat_text

log = logging.getLogger(__name__)

MAX_DETAILS_BYTES = 4096
MAX_DETAIL_TEXT = 512
MAX_DETAIL_ITEMS = 32


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_DETAIL_TEXT else value[:MAX_DETAIL_TEXT] + f"…(+{len(value) - MAX_DETAIL_TEXT})"
    if isinstance(value, list | tuple):
        items = [_cut(v) for v in value[:MAX_DETAIL_ITEMS]]
        if len(value) > MAX_DETAIL_ITEMS:
            items.append(f"…(+{len(value) - MAX_DETAIL_ITEMS} more)")
        return items
    if isinstance(value, dict):
        return {str(k)[:MAX_DETAIL_TEXT]: _cut(v) for k, v in list(value.items())[:MAX_DETAIL_ITEMS]}
    return value


def bound_event(event: AuditEvent) -> AuditEvent:
    """`event` with `details` no larger than `MAX_DETAILS_BYTES` of JSON."""
    if not event.details:
        return event
    if flat_text(event.details) and flat_json_bound(event.details) <= MAX_DETAILS_BYTES:
        return event  # small for sure: no JSON text needed to know it
    size = len(json.dumps(event.details, default=str))
    if size <= MAX_DETAILS_BYTES:
        return event
    details = _cut(event.details)
    if len(json.dumps(details, default=str)) > MAX_DETAILS_BYTES:
        details = {"truncated": f"{size} bytes of details dropped (more than {MAX_DETAILS_BYTES})"}
    return dataclasses.replace(event, details=details)


def unauthenticated(event: AuditEvent) -> bool:
    """Made by a client that proved nothing: a failed login names whoever the client claimed."""
    return event.action == "auth:login:failure" or (event.actor.is_anonymous and event.actor_type is None)


@dataclass
class _Window:
    start: float
    admitted: int = 0
    suppressed: int = 0


class UnauthenticatedThrottle:
    def __init__(self, per_key: int = 10, total: int = 600, window: float = 60.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_key = per_key
        self.total = total
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._all = _Window(0.0)

    def admit(self, event: AuditEvent) -> list[AuditEvent]:
        """The events to record for `event`: none, the event, or a count of suppressed ones and the event."""
        if not unauthenticated(event):
            return [event]
        now = self.clock()
        key = (event.address or "unknown", event.action)
        window = self._windows.get(key)
        before: list[AuditEvent] = []
        if window is None or now - window.start >= self.window:
            if window is not None and window.suppressed:
                before.append(self._summary(event, key, window.suppressed))
            window = _Window(now)
            self._windows[key] = window
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        if now - self._all.start >= self.window:
            self._all = _Window(now)
        if window.admitted >= self.per_key or self._all.admitted >= self.total:
            if not window.suppressed:
                log.warning("more than %d %s audit events a minute from %s (or %d from everyone): counting, "
                            "not recording, the rest of this minute", self.per_key, key[1], key[0], self.total)
            window.suppressed += 1
            return before
        window.admitted += 1
        self._all.admitted += 1
        return [*before, event]

    @staticmethod
    def _summary(event: AuditEvent, key: tuple[str, str], count: int) -> AuditEvent:
        return AuditEvent(
            action="audit:suppressed", outcome="failure", address=event.address,
            reason=f"{count} {key[1]} event(s) from this address were counted, not recorded (a minute's limit)",
            details={"action": key[1], "count": count},
        )
