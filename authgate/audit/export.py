"""Export formats: JSON lines (one event per line, hashes included, so a copy can be re-verified)
and CSV (for spreadsheets; `details` as a JSON cell)."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import Any, Literal, TextIO

from authgate.audit.chain import FIELDS

ExportFormat = Literal["jsonl", "csv"]
COLUMNS = ("seq", "time", "actor", *[f for f in FIELDS if f not in ("seq", "time")], "prev_hash", "hash")


async def write_export(events: AsyncIterator[dict[str, Any]], out: TextIO, fmt: ExportFormat) -> int:
    """Stream `events` to `out`; returns how many were written."""
    count = 0
    if fmt == "jsonl":
        async for event in events:
            out.write(json.dumps(event, default=str, ensure_ascii=False) + "\n")
            count += 1
        return count
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    async for event in events:
        row = []
        for column in COLUMNS:
            value = event.get(column)
            if column == "details" and value is not None:
                value = json.dumps(value, sort_keys=True)
            row.append("" if value is None else value)
        writer.writerow(row)
        count += 1
    return count
