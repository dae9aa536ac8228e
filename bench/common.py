"""Helpers shared by the benchmarks: progress lines, timing statistics, memory, PostgreSQL schemas.

The benchmarks print figures, they do not pass or fail. Every line is flushed at once, because CI
has no terminal and buffered output would arrive only at the end (DESIGN §4, "Rich in CI").
"""

import os
import platform
import resource
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/bench_x.py` from the checkout, without installing
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PYTHONIOENCODING", "utf-8")

PG_URL = os.environ.get("ROUNDTABLE_BENCH_PG_URL",
                        os.environ.get("ROUNDTABLE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))

_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", flush=True)


def machine() -> str:
    return (f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · "
            f"SQLite {__import__('sqlite3').sqlite_version}")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p90_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))] * 1000


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain fixed-width table (no colours: it goes to CI logs and the README)."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pg_reachable(url: str = PG_URL) -> str | None:
    """None when PostgreSQL answers, else the reason."""
    from models.db import unreachable

    return unreachable(url)


@contextmanager
def pg_schema(url: str = PG_URL) -> Iterator[str]:
    """A throw-away schema on the test PostgreSQL; yields a URL whose search_path is that schema."""
    from models.db import scratch_schema

    with scratch_schema(url, prefix="bench") as scratch:
        yield scratch
