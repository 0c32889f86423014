"""Audit log benchmark: recording throughput at concurrency, and query time over a large log.

    python bench/audit_bench.py                       # SQLite in a temp dir
    python bench/audit_bench.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

1. Recording: `--concurrency` tasks call `AuditRecorder.record()` (what a push does) for `--events`
   events in all; we time until every event is in the chain. Baseline, same run: one transaction
   per event (`record_now`), the naive way. Also the time a `record()` call takes (what a push waits),
   and how fast `audit verify` walks the chain just written.
2. Query: `--rows` events (1,000,000 by default, 1,000 repositories) bulk-inserted straight through
   the driver; then the admin/CLI query (newest 100) for one repository, with and without a time
   window, for an actor and an action prefix: the median of several runs.
Targets (issue #6): >= 2,000 events/s recorded; repository query under 200 ms.
Everything is bounded by the counts given; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, update  # noqa: E402

from authgate.audit.chain import HEAD_ID, ensure_head, record_now  # noqa: E402
from authgate.audit.events import AuditEvent  # noqa: E402
from authgate.audit.query import AuditFilter, list_events  # noqa: E402
from authgate.audit.recorder import AuditRecorder  # noqa: E402
from authgate.audit.verify import verify  # noqa: E402
from authgate.db.models import AuditChainHead  # noqa: E402
from authgate.db.session import Database, sync_url  # noqa: E402
from authgate.subject import Subject  # noqa: E402

REPOSITORIES = 1000


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        "manifest:push", Subject("user", f"user{i % 200}"), f"team{i % 50}/app{i % REPOSITORIES}", f"v{i}",
        "sha256:" + f"{i:064x}", 1000 + i, address="192.0.2.10", user_agent="docker/20.10.24 go/go1.19",
        request_id=f"{i:032x}", details={"media_type": "application/vnd.oci.image.manifest.v1+json"},
    )


async def bench_recording(db: Database, spill_dir: Path, events: int, concurrency: int, baseline_events: int
                          ) -> dict[str, float]:
    await ensure_head(db)
    start = time.perf_counter()
    for i in range(baseline_events):
        await record_now(db, _event(i))
    baseline_rate = baseline_events / (time.perf_counter() - start)

    recorder = AuditRecorder(db, spill_dir)
    await recorder.start()
    call_times: list[float] = []
    per_task = events // concurrency

    async def push(task: int) -> None:
        for j in range(per_task):
            t0 = time.perf_counter()
            await recorder.record(_event(task * per_task + j))
            call_times.append(time.perf_counter() - t0)
            await asyncio.sleep(0)  # a request does other work between events

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(push(t) for t in range(concurrency)))
    await recorder.flush()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await recorder.stop()
    call_times.sort()
    return {
        "rate": per_task * concurrency / elapsed,
        "cpu_rate": per_task * concurrency / cpu,
        "baseline_rate": baseline_rate,
        "call_p50_us": call_times[len(call_times) // 2] * 1e6,
        "call_p99_us": call_times[int(len(call_times) * 0.99)] * 1e6,
    }


_COLUMNS = ("seq", "time", "actor_type", "actor_name", "action", "repository", "reference", "digest", "size",
            "outcome", "address", "user_agent", "request_id", "prev_hash", "hash")


def bulk_generate(url: str, rows: int, batch: int = 50_000) -> float:
    """Insert `rows` events straight through the driver, spread evenly over 2025, after the chain's
    head. Their hashes are placeholders: this part measures queries, not the chain."""
    engine = create_engine(sync_url(url))
    sqlite = engine.dialect.name == "sqlite"
    marks = ", ".join("?" if sqlite else "%s" for _ in _COLUMNS)
    sql = f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) VALUES ({marks})"
    start = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=timezone.utc)
    step = timedelta(days=365) / rows
    with engine.begin() as connection:
        first = connection.execute(AuditChainHead.__table__.select().where(AuditChainHead.id == HEAD_ID)).one().seq
    placeholder = "0" * 64
    done = 0
    while done < rows:
        chunk = []
        for i in range(done, min(done + batch, rows)):
            moment = base + step * i
            chunk.append((
                first + i + 1, moment.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment, "user",
                f"user{i % 200}", "manifest:push" if i % 4 else "token:issue", f"team{i % 50}/app{i % REPOSITORIES}",
                f"v{i}", f"sha256:{i:064x}", 1000 + i, "success", "192.0.2.10", "docker/20.10.24", f"{i:032x}",
                placeholder, placeholder,
            ))
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, chunk)
        done += len(chunk)
    with engine.begin() as connection:
        connection.execute(update(AuditChainHead).where(AuditChainHead.id == HEAD_ID).values(seq=first + rows))
        connection.exec_driver_sql("ANALYZE audit_events" if not sqlite else "ANALYZE")
    engine.dispose()
    return time.perf_counter() - start


async def bench_queries(db: Database, repeats: int) -> tuple[dict[str, float], dict[str, int]]:
    filters = {
        "repository": AuditFilter(repository="team7/app7"),
        "repository, March": AuditFilter(repository="team7/app7", since=datetime(2025, 3, 1, tzinfo=timezone.utc),
                                         until=datetime(2025, 4, 1, tzinfo=timezone.utc)),
        "repository, 1 day": AuditFilter(repository="team7/app7", since=datetime(2025, 6, 1, tzinfo=timezone.utc),
                                         until=datetime(2025, 6, 2, tzinfo=timezone.utc)),
        "actor": AuditFilter(actor="user:user42"),
        "action prefix": AuditFilter(action="token"),
    }
    results: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, flt in filters.items():
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            found = await list_events(db, flt, 100)
            timings.append(time.perf_counter() - start)
        results[name] = statistics.median(timings) * 1000
        counts[name] = len(found)
    return results, counts


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    parser.add_argument("--events", type=int, default=20_000, help="events recorded through the recorder")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--baseline-events", type=int, default=500, help="events for the one-per-transaction baseline")
    parser.add_argument("--rows", type=int, default=1_000_000, help="events bulk-generated for the query test")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        db = Database(url)
        await db.upgrade()
        backend = "SQLite" if db.is_sqlite else "PostgreSQL"
        rec = await bench_recording(db, Path(tmp), args.events, args.concurrency, args.baseline_events)
        print(f"[{backend}] recording, {args.concurrency} concurrent tasks, {args.events} events:")
        print(f"  recorder (batched, background): {rec['rate']:>9,.0f} events/s   (target >= 2,000)")
        print(f"  baseline (1 transaction/event): {rec['baseline_rate']:>9,.0f} events/s   "
              f"ratio {rec['rate'] / rec['baseline_rate']:.1f}x")
        print(f"  recorder per CPU-second of this process: {rec['cpu_rate']:,.0f} events (the machine is shared)")
        print(f"  record() call as a push sees it: p50 {rec['call_p50_us']:.0f} us, p99 {rec['call_p99_us']:.0f} us")

        start = time.perf_counter()
        checked = await verify(db)
        took = time.perf_counter() - start
        print(f"  verify: {checked.checked:,} chained events in {took:.2f} s ({checked.checked / took:,.0f} events/s), "
              f"ok={checked.ok}")

        seconds = bulk_generate(url, args.rows)
        print(f"[{backend}] bulk-generated {args.rows:,} events in {seconds:.1f} s")
        query, counts = await bench_queries(db, args.repeats)
        for name, ms in query.items():
            print(f"  query newest 100, {name:<18} median {ms:7.1f} ms, {counts[name]:>3} found   (target < 200 ms)")
        await db.close()
        ok = rec["rate"] >= 2000 and all(ms < 200 for ms in query.values())
        print("targets met" if ok else "TARGETS MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
