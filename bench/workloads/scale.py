"""What the loaded database costs: the time to load it, and its data and index sizes."""

from __future__ import annotations

from bench.data import Database
from bench.measure import REPORT, Row, Run


async def scale_rows(db: Database, load_s: float, total: int) -> list[Row]:
    """What the loaded database costs: insert time, and the data and index sizes MongoDB reports."""
    stats = await db.command("collStats", "tasks")
    mb = 1024 * 1024
    rows = [Row(f"load {total:,} tasks with insert_many (time)", load_s, 0, "s", 0, REPORT, "raw driver")]
    for name, size in sorted(stats["indexSizes"].items()):
        rows.append(Row(f"index {name} ({total:,} tasks)", size / mb, stats["size"] / mb, "MB", size / stats["size"],
                        REPORT, "reference: data size"))  # fmt: skip
    return rows


async def measure(run: Run) -> list[Row]:
    return await scale_rows(run.db, run.load_s, run.total)
