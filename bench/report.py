"""The benchmark's output: one table on stdout and bench/results.json."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench.measure import Row

RESULTS = Path(__file__).parent / "results.json"


def print_table(rows: list[Row]) -> None:
    header = f"{'workload':58} {'gateway':>12} {'reference':>12} {'unit':>8} {'ratio':>7}  {'target':<26} met"
    print(header)
    print("-" * len(header))
    for row in rows:
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        print(
            f"{row.workload:58} {row.gateway:12.1f} {row.reference:12.1f} {row.unit:>8} {row.ratio:7.2f}  "
            f"{row.target.text():<26} {met}  {row.note}"
        )


def write_results(rows: list[Row]) -> None:
    """Print the table and keep it, with when and on what machine, in bench/results.json."""
    print()
    print_table(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results = {"when": datetime.now(UTC).isoformat(), "machine": machine, "rows": [row.as_json() for row in rows]}
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"\n{machine}; written to bench/results.json")
