"""The outgoing webhook: push and delete events POSTed to `settings.webhook_url` as they are recorded.

It listens to the recorder (so it only ever sends events that are in the chain), batches them,
and retries with exponential backoff from its own task, so a slow or failing receiver never
blocks a push. Its queue is bounded: when the receiver is down for long, the oldest undelivered
events are dropped from the webhook (they stay in the audit log) with a warning.
When `webhook_secret` is set, `X-Authgate-Signature: sha256=<hex HMAC of the body>` signs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx

from authgate.audit.query import public_form
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

SENT_ACTIONS = ("push", "delete")
EVENTS_MEDIA_TYPE = "application/vnd.authgate.audit.events.v1+json"


def wanted(row: dict[str, Any]) -> bool:
    """Push and delete events that succeeded (`manifest:push`, `tag:delete`, …)."""
    parts = str(row.get("action", "")).split(":")
    return len(parts) >= 2 and parts[1] in SENT_ACTIONS and row.get("outcome") == "success"


class WebhookSender:
    def __init__(self, url: str, secret: str = "", *, max_pending: int = 10_000, batch_size: int = 100,
                 attempts: int = 6, first_delay: float = 0.5, max_delay: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.secret = secret
        self.batch_size = batch_size
        self.attempts = attempts
        self.first_delay = first_delay
        self.max_delay = max_delay
        self._pending: deque[dict[str, Any]] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(timeout=10.0, transport=transport, follow_redirects=False)
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self.delivered = 0
        self.failed = 0

    async def __call__(self, rows: Sequence[dict[str, Any]]) -> None:
        """The recorder's listener: queue what we send and return at once."""
        for row in rows:
            if wanted(row):
                if len(self._pending) == self._pending.maxlen:
                    log.warning("webhook: receiver too far behind; oldest event dropped from the webhook")
                self._pending.append(public_form(row))
        if self._pending:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-webhook")

    async def stop(self, timeout: float = 5.0) -> None:
        """Give queued events `timeout` seconds to go out, then stop."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self._drained(), timeout)
            except asyncio.TimeoutError:
                log.warning("webhook: %d events not delivered at shutdown", len(self._pending))
            await cancel_and_wait(self._task)
            self._task = None
        await self._client.aclose()

    async def _drained(self) -> None:
        while self._pending or self._busy:
            await asyncio.sleep(0.05)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
                self._busy = True
                try:
                    await self._deliver(batch)
                finally:
                    self._busy = False

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": batch}, default=str).encode()
        headers = {"Content-Type": EVENTS_MEDIA_TYPE, "User-Agent": "authgate-webhook"}
        if self.secret:
            signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers["X-Authgate-Signature"] = f"sha256={signature}"
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._client.post(self.url, content=body, headers=headers)
                if response.status_code < 300:
                    self.delivered += len(batch)
                    return
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    break  # the receiver refuses this batch; retrying will not change its mind
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.attempts:
                log.warning("webhook: delivery failed (%s); retry %d in %.1fs", problem, attempt, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
        self.failed += len(batch)
        log.error("webhook: gave up on %d events after %s", len(batch), problem)
