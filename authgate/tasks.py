"""Background tasks: the one way authgate stops one."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it has finished its cleanup (its `finally` blocks ran).

    What the task failed with is not the stopper's concern: a poll that found the database gone
    must not turn a clean shutdown into a traceback (its own loop logged the failure already)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception as exc:
            log.debug("task %s ended with %s while stopping", task.get_name(), type(exc).__name__)
