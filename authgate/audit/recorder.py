"""The audit recorder: `record()` only queues; one background writer appends batches to the chain.

Why this shape: a push must neither wait on a slow database nor fail because the audit log could
not be written, and no event may be lost. So `record()` puts the event on an in-process queue and
returns at once; the writer drains the queue in batches (one transaction each, which is what makes
thousands of events per second possible), retries with backoff when the database fails, and spills
to a JSON-lines file in the data dir when it cannot write (queue too long, or shutting down with
the database unreachable). That file is replayed into the chain at the next start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from authgate.audit.bounds import UnauthenticatedThrottle, bound_event
from authgate.audit.chain import append_rows, ensure_head, to_row
from authgate.audit.events import AuditEvent
from authgate.db.session import Database
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[dict[str, Any]]], Awaitable[None]]

SPILL_NAME = "audit-spill.jsonl"
#: Seconds between two batch writes: a quiet server writes an event at once, a busy one at most
#: 1 / WRITE_INTERVAL transactions a second. A transaction costs ~4 ms of CPU here (aiosqlite's
#: thread hops, the chain head), a row ~50 us: at 50 ms and ~1,300 tokens/s that was ~60 us of
#: every token; at 200 ms, ~15 us. Events are off the request path either way; in a burst the last
#: ones reach the database up to this much later (`flush()` and `stop()` wait for them).
WRITE_INTERVAL = 0.2
#: While running, a spill file is retried at most this often (seconds).
REPLAY_INTERVAL = 30.0


def row_to_json(row: dict[str, Any]) -> str:
    return json.dumps({**row, "time": row["time"].isoformat()}, default=str)


def row_from_json(line: str) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(line)
    row["time"] = datetime.fromisoformat(row["time"])
    for name in ("seq", "prev_hash", "hash"):
        row.pop(name, None)
    return row


def _write_private(path: Path, rows: Sequence[dict[str, Any]], append: bool) -> None:
    """Write rows as JSON lines to a 0600 file (events name users and addresses), fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "a" if append else "w", encoding="utf-8") as handle:
        handle.write("".join(row_to_json(r) + "\n" for r in rows))
        handle.flush()
        os.fsync(handle.fileno())


class AuditRecorder:
    """An `AuditSink` that never blocks and never raises into the caller."""

    def __init__(
        self,
        db: Database,
        spill_dir: Path,
        *,
        batch_size: int = 1000,
        max_pending: int = 100_000,
        retry_delays: Sequence[float] = (0.05, 0.2, 1.0, 2.0, 5.0),
        write_interval: float = WRITE_INTERVAL,
    ) -> None:
        self.db = db
        self.spill_path = spill_dir / SPILL_NAME
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.retry_delays = tuple(retry_delays)
        self.write_interval = write_interval
        self.listeners: list[Listener] = []
        self.throttle = UnauthenticatedThrottle()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._inflight: list[dict[str, Any]] = []
        self._stopping = False
        self._next_replay = 0.0
        self.written = 0
        self.spilled = 0

    # -- the AuditSink side -------------------------------------------------------------------------

    async def record(self, event: AuditEvent) -> None:
        """Queue `event`; returns without touching the database. Bounded first (audit/bounds.py):
        in size, and in number when an unauthenticated client made it."""
        for admitted in self.throttle.admit(bound_event(event)):
            self._queue_event(admitted)

    @staticmethod
    def row_of(event: AuditEvent) -> dict[str, Any]:
        """The row `record(event)` would queue for an authenticated event (bounded, not throttled):
        a template that `/token`'s answers from memory copy, changing only the time, user agent and
        request id, for a fraction of the cost of building and converting an event each time."""
        return to_row(bound_event(event))

    def _queue_event(self, event: AuditEvent) -> None:
        try:
            row = to_row(event)
        except Exception:  # a malformed event is logged, never raised into a push
            log.exception("audit event %r could not be converted; dropped", event.action)
            return
        self.record_row(row)

    def record_row(self, row: dict[str, Any]) -> None:
        """Queue a row made by `row_of` (with its own time, user agent and request id)."""
        if self._stopping or self._writer is None:
            self._spill([row])
            return
        if self._queue.qsize() >= self.max_pending:
            # The database is far behind: keep memory bounded, keep the event on disk.
            self._spill([row])
            return
        self._queue.put_nowait(row)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the chain head if needed, replay a spill file left by an earlier run, start writing."""
        await ensure_head(self.db)
        await self._replay()
        self._stopping = False
        self._writer = asyncio.create_task(self._write_loop(), name="audit-writer")

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event queued so far is in the database (or spilled)."""
        await asyncio.wait_for(self._queue.join(), timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Drain the queue within `timeout`; whatever is still unwritten goes to the spill file."""
        if self._writer is None:
            return
        try:
            await self.flush(timeout)
        except asyncio.TimeoutError:
            log.warning("audit: database too slow at shutdown; spilling %d events to %s",
                        self._queue.qsize() + len(self._inflight), self.spill_path)
        self._stopping = True
        await cancel_and_wait(self._writer)
        self._writer = None
        leftovers = list(self._inflight)
        self._inflight = []
        while not self._queue.empty():
            leftovers.append(self._queue.get_nowait())
            self._queue.task_done()
        if leftovers:
            self._spill(leftovers)

    # -- the writer -----------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._inflight = batch
            await self._write_with_retries(batch)
            self._inflight = []
            for _ in batch:
                self._queue.task_done()
            # Under load, let the next batch gather: each transaction costs far more than a row. Not
            # when a full batch is already waiting: the pause would cap the log at batch_size rows
            # per interval (5,000 a second), below what `/token` answers from memory, and the queue
            # would grow until it spilled to disk.
            if self._queue.qsize() < self.batch_size:
                await asyncio.sleep(self.write_interval)

    async def _write_with_retries(self, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            try:
                written = await append_rows(self.db, batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = self.retry_delays[min(attempt, len(self.retry_delays) - 1)]
                attempt += 1
                if attempt >= len(self.retry_delays) and self._queue.qsize() >= self.max_pending // 2:
                    log.error("audit: database write failing (%s); spilling %d events to %s",
                              exc, len(batch), self.spill_path)
                    self._spill(batch)
                    return
                log.warning("audit: database write failed (%s); retry %d in %.2fs", exc, attempt, delay)
                await asyncio.sleep(delay)
                continue
            self._inflight = []  # in the chain now: never spill these again, even if cancelled below
            self.written += len(written)
            await self._notify(written)
            if self.spilled and self.spill_path.exists() and time.monotonic() >= self._next_replay:
                self._next_replay = time.monotonic() + REPLAY_INTERVAL
                await self._replay()
            return

    async def _notify(self, written: Sequence[dict[str, Any]]) -> None:
        for listener in self.listeners:
            try:
                await listener(written)
            except Exception:
                log.exception("audit listener failed")

    # -- the spill file -------------------------------------------------------------------------------

    def _spill(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append rows to the spill file (0600), fsynced: the last resort that keeps them."""
        try:
            _write_private(self.spill_path, rows, append=True)
            self.spilled += len(rows)
        except Exception:
            log.exception("audit: cannot spill %d events to %s; they are lost", len(rows), self.spill_path)

    async def _replay(self) -> None:
        """Append the spill file's events to the chain, then remove it (renamed first, so events
        spilled while replaying land in a new file rather than being deleted unread)."""
        if not self.spill_path.exists():
            return
        replaying = self.spill_path.with_suffix(".replaying")
        if not replaying.exists():
            os.replace(self.spill_path, replaying)
        rows = []
        for number, line in enumerate(replaying.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(row_from_json(line))
            except (ValueError, KeyError) as exc:
                log.error("audit: %s line %d is unreadable (%s); skipped", replaying, number, exc)
        for start in range(0, len(rows), self.batch_size):
            try:
                written = await append_rows(self.db, rows[start:start + self.batch_size])
            except BaseException as exc:
                # Keep only what is not in the chain yet, so the next replay appends nothing twice.
                tmp = replaying.with_suffix(".tmp")
                _write_private(tmp, rows[start:], append=False)
                os.replace(tmp, replaying)
                if not isinstance(exc, Exception):
                    raise
                log.error("audit: replay of %s failed (%s); will retry", replaying, exc)
                return
            self.written += len(written)
            await self._notify(written)
        replaying.unlink()
        log.info("audit: replayed %d spilled events", len(rows))
