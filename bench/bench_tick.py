"""Idle tick at 10k / 100k / 1M pending outbox rows: does a tick cost the same however much is planned?

An idle tick is one with nothing due: every planned message lies in the future. It still looks at every
live cycle's steps and asks the outbox for due rows; that question must be answered by the
(state, due_at) index without touching the pending rows, so its cost must not grow with them.

Setup: a real started cycle (GSWG seed people, cycles/gswg.yaml) ticked up to the opening of the call
for suggestions (two steps open, their first messages rendered), then N `scheduled` rows with future
due times spread over a year, built in one INSERT … SELECT (recursive CTE on SQLite, generate_series on
PostgreSQL). The sizes grow in one database: 10k, then +90k, then +900k.

Measured: the median (and p90) of ≥ 20 idle ticks per size, time.perf_counter() around tick(), a fresh
session per tick as the scheduler uses. Baseline side by side: the same ticks with the
ix_notification_state_due index dropped (the query plan falls back to a scan).

    .venv/bin/python bench/bench_tick.py            # SQLite 10k/100k/1M, PostgreSQL too if reachable
    .venv/bin/python bench/bench_tick.py --quick    # smoke run: 1k and 10k, SQLite only
    .venv/bin/python bench/bench_tick.py --no-pg --ticks 50
"""

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, machine, median_ms, p90_ms, pg_reachable, pg_schema, table  # noqa: E402

from sqlalchemy import event, func  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from flows.tick import tick  # noqa: E402
from models.db import make_engine, upgrade  # noqa: E402
from models.tables import Member, Notification, Step  # noqa: E402
from tests.engine_helpers import CONFIG, seed_people, start_gswg  # noqa: E402

GOAL_MS = 20.0
GOAL_GROWTH = 1.5
DUE_INDEX = "ix_notification_state_due"
DUE_QUERY_MARK = "FROM notification LEFT OUTER JOIN step"


@dataclass
class SizeResult:
    backend: str
    pending: int
    build_s: float
    indexed: list[float] = field(default_factory=list)
    dropped: list[float] = field(default_factory=list)
    statements: int = 0
    plan_indexed: str = ""
    plan_dropped: str = ""
    generic_ms: float | None = None


class Bench:
    def __init__(self, backend: str, url: str, ticks: int, baseline_ticks: int):
        self.backend, self.url, self.ticks, self.baseline_ticks = backend, url, ticks, baseline_ticks
        self.engine = make_engine(url)
        self.captured: list[tuple[str, object]] = []
        event.listen(self.engine, "before_cursor_execute", self._capture)

    def _capture(self, _conn, _cursor, statement, parameters, _context, _many):
        self.captured.append((statement, parameters))

    # ------------------------------------------------------------------ setup
    def start(self) -> None:
        upgrade(self.engine)
        with Session(self.engine, expire_on_commit=False) as session:
            seed_people(session)
            cycle = start_gswg(session)
            steps = session.exec(select(Step).where(Step.cycle_id == cycle.id).order_by(Step.position)).all()
            call = next(s for s in steps if s.key == "call_for_suggestions")
            opening = call.opens_at + timedelta(minutes=1)
            report = tick(session, opening, CONFIG)
            log(f"{self.backend}: cycle {cycle.id} started; tick at the call's opening {opening:%Y-%m-%d %H:%M}Z "
                f"opened {report.opened}, rendered {report.prepared} messages")
            self.cycle_id = cycle.id
            self.steps = [(s.id, s.key) for s in steps]
            self.members = [m for (m,) in session.execute(select(Member.id).order_by(Member.id)).all()]
            self.next_due = session.exec(select(func.min(Notification.due_at))
                                         .where(Notification.state == "scheduled")).one()
        # Idle: after the opening, before the first planned message (the agenda, the first reminder...).
        self.idle = opening + min(timedelta(hours=1), (self.next_due - opening) / 2)
        self.future = self.next_due  # synthetic rows start no earlier than the cycle's own next message
        log(f"{self.backend}: idle moment {self.idle:%Y-%m-%d %H:%M}Z, next planned message "
            f"{self.next_due:%Y-%m-%d %H:%M}Z")

    def add_pending(self, first: int, last: int) -> float:
        """Rows first..last (inclusive) as `scheduled` reminders due in the year after the next real message."""
        steps = ", ".join(f"({i}, {sid}, '{key}')" for i, (sid, key) in enumerate(self.steps))
        members = ", ".join(f"({i}, {mid})" for i, mid in enumerate(self.members))
        columns = ("key, cycle_id, step_id, step_key, member_id, recipient, cc, kind, slot, revision, policy, "
                   "state, due_at, attempts, last_error, message_id, subject, context, created_at")
        created = self.idle.astimezone(timezone.utc).replace(tzinfo=None)
        base = self.future.astimezone(timezone.utc).replace(tzinfo=None)
        if self.backend == "sqlite":
            sql = f"""
            WITH RECURSIVE seq(x) AS (SELECT {first} UNION ALL SELECT x + 1 FROM seq WHERE x < {last}),
                 s(n, id, key) AS (VALUES {steps}), m(n, id) AS (VALUES {members})
            INSERT INTO notification ({columns})
            SELECT 'bench/' || x, {self.cycle_id}, s.id, s.key, m.id, 'bench' || x || '@example.org', '[]',
                   'reminder', 'b' || x, 0, 'fold', 'scheduled',
                   strftime('%Y-%m-%d %H:%M:%S', '{base:%Y-%m-%d %H:%M:%S}',
                            '+' || ((x * 7919) % 525600) || ' minutes') || '.000000',
                   0, '', '', '', '{{}}', '{created:%Y-%m-%d %H:%M:%S}.000000'
            FROM seq JOIN s ON s.n = x % {len(self.steps)} JOIN m ON m.n = x % {len(self.members)}"""
        else:
            sql = f"""
            WITH s(n, id, key) AS (VALUES {steps}), m(n, id) AS (VALUES {members})
            INSERT INTO notification ({columns})
            SELECT 'bench/' || x, {self.cycle_id}, s.id, s.key, m.id, 'bench' || x || '@example.org', '[]'::json,
                   'reminder', 'b' || x, 0, 'fold', 'scheduled',
                   TIMESTAMPTZ '{base:%Y-%m-%d %H:%M:%S}+00' + mod(x::bigint * 7919, 525600) * INTERVAL '1 minute',
                   0, '', '', '', '{{}}'::json, TIMESTAMPTZ '{created:%Y-%m-%d %H:%M:%S}+00'
            FROM generate_series({first}, {last}) AS x
            JOIN s ON s.n = mod(x, {len(self.steps)}) JOIN m ON m.n = mod(x, {len(self.members)})"""
        started = time.perf_counter()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql)
            if self.backend == "postgresql":
                conn.exec_driver_sql("ANALYZE notification")
        return time.perf_counter() - started

    # ------------------------------------------------------------------ measuring
    def idle_ticks(self, count: int, label: str) -> list[float]:
        samples = []
        for i in range(count):
            with Session(self.engine, expire_on_commit=False) as session:
                now = self.idle + timedelta(seconds=i)
                started = time.perf_counter()
                report = tick(session, now, CONFIG)
                samples.append(time.perf_counter() - started)
            if report.prepared or report.skipped or report.folded or report.opened or report.closed:
                raise SystemExit(f"not an idle tick at {now}: {report}")
            if count >= 10 and (i + 1) % max(1, count // 4) == 0:
                log(f"  {label}: {i + 1}/{count} ticks, median so far {median_ms(samples):.2f} ms")
        return samples

    def one_tick_statements(self) -> tuple[int, tuple[str, object] | None]:
        self.captured.clear()
        with Session(self.engine, expire_on_commit=False) as session:
            tick(session, self.idle, CONFIG)
        due = next((c for c in self.captured if DUE_QUERY_MARK in c[0]), None)
        return len(self.captured), due

    def plan(self, due: tuple[str, object] | None) -> str:
        if due is None:
            return "(due query not seen)"
        statement, params = due
        # A unique comment: pysqlite caches prepared statements and would answer with a stale plan.
        statement = f"{statement} /* plan {time.perf_counter_ns()} */"
        with self.engine.connect() as conn:
            if self.backend == "sqlite":
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
                return " | ".join(row[-1] for row in rows)
            rows = conn.exec_driver_sql("EXPLAIN " + statement, params).all()
            return " | ".join(row[0].strip() for row in rows)

    def generic_plan_ms(self, due: tuple[str, object] | None) -> float | None:
        """PostgreSQL: the due query under a generic plan (what psycopg's prepared statement may switch to
        after five runs, and what the tick's SET LOCAL plan_cache_mode = force_custom_plan rules out)."""
        if self.backend != "postgresql" or due is None:
            return None
        statement, params = due
        names = re.findall(r"%\((\w+)\)s", statement)
        numbered = statement
        for i, name in enumerate(dict.fromkeys(names), start=1):
            numbered = numbered.replace(f"%({name})s", f"${i}")
        values = [params[name] for name in dict.fromkeys(names)]
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql("PREPARE bench_due AS " + numbered.replace("%%", "%"))
            literals = ", ".join(_literal(v) for v in values)  # EXECUTE takes no bound parameters
            rows = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE bench_due({literals})").all()
            conn.exec_driver_sql("DEALLOCATE bench_due")
            conn.exec_driver_sql("RESET plan_cache_mode")
            conn.rollback()
        plan = rows[0][0][0] if isinstance(rows[0][0], list) else json.loads(rows[0][0])[0]
        return float(plan["Execution Time"])

    def drop_index(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP INDEX {DUE_INDEX}")

    def create_index(self) -> float:
        started = time.perf_counter()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE INDEX {DUE_INDEX} ON notification (state, due_at)")
        return time.perf_counter() - started

    def run(self, sizes: list[int]) -> list[SizeResult]:
        self.start()
        results, have = [], 0
        for size in sizes:
            log(f"{self.backend}: adding {size - have:,} pending rows (total {size:,})")
            build = self.add_pending(have + 1, size)
            have = size
            log(f"{self.backend}: built in {build:.1f}s; {self.ticks} idle ticks with the index")
            result = SizeResult(self.backend, size, build)
            self.idle_ticks(3, "warm-up")
            result.indexed = self.idle_ticks(self.ticks, f"{size:,} indexed")
            result.statements, due = self.one_tick_statements()
            result.plan_indexed = self.plan(due)
            result.generic_ms = self.generic_plan_ms(due)
            if result.generic_ms is not None:
                log(f"{self.backend} {size:,}: the due query under a generic plan takes {result.generic_ms:.2f} ms "
                    f"(the tick plans it each time: SET LOCAL plan_cache_mode = force_custom_plan)")
            log(f"{self.backend} {size:,}: median {median_ms(result.indexed):.2f} ms, "
                f"{result.statements} SQL statements per tick; plan: {result.plan_indexed}")
            self.drop_index()
            try:
                result.plan_dropped = self.plan(due)
                self.idle_ticks(1, "warm-up")
                result.dropped = self.idle_ticks(self.baseline_ticks, f"{size:,} no index")
                log(f"{self.backend} {size:,} without {DUE_INDEX}: median {median_ms(result.dropped):.2f} ms; "
                    f"plan: {result.plan_dropped}")
            finally:
                log(f"{self.backend}: index rebuilt in {self.create_index():.1f}s")
            results.append(result)
        self.engine.dispose()
        return results


def _literal(value) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def report(results: list[SizeResult]) -> None:
    rows = []
    for r in results:
        rows.append([r.backend, f"{r.pending:,}", f"{r.build_s:.1f}", len(r.indexed), f"{median_ms(r.indexed):.2f}",
                     f"{p90_ms(r.indexed):.2f}", len(r.dropped), f"{median_ms(r.dropped):.2f}",
                     f"{median_ms(r.dropped) / median_ms(r.indexed):.1f}x",
                     "-" if r.generic_ms is None else f"{r.generic_ms:.2f}", r.statements])
    print()
    print(f"Idle tick — {machine()}")
    print(table(["backend", "pending", "build s", "ticks", "median ms", "p90 ms", "base ticks",
                 "no-index ms", "no-index/indexed", "generic-plan query ms", "SQL/tick"], rows))
    for backend in dict.fromkeys(r.backend for r in results):
        mine = [r for r in results if r.backend == backend]
        small, large = mine[0], mine[-1]
        growth = median_ms(large.indexed) / median_ms(small.indexed)
        base_growth = median_ms(large.dropped) / median_ms(small.dropped)
        if large.pending < 1_000_000:
            print(f"{backend}: {large.pending:,}/{small.pending:,} growth {growth:.2f}x, {median_ms(large.indexed):.2f} ms "
                  f"at {large.pending:,}; baseline without the index grows {base_growth:.1f}x "
                  f"(the goals — ≤ {GOAL_MS:.0f} ms, ≤ {GOAL_GROWTH}x — are for 10k → 1M)")
            continue
        print(f"{backend}: {large.pending:,}/{small.pending:,} growth {growth:.2f}x (goal ≤ {GOAL_GROWTH}x: "
              f"{'met' if growth <= GOAL_GROWTH else 'MISSED'}); {median_ms(large.indexed):.2f} ms at "
              f"{large.pending:,} (goal ≤ {GOAL_MS:.0f} ms: "
              f"{'met' if median_ms(large.indexed) <= GOAL_MS else 'MISSED'}); "
              f"baseline without the index grows {base_growth:.1f}x")
    print()
    for r in results:
        print(f"plan {r.backend} {r.pending:,} indexed : {r.plan_indexed}")
        print(f"plan {r.backend} {r.pending:,} no index: {r.plan_dropped}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1k and 10k rows, 5 ticks, SQLite only")
    parser.add_argument("--ticks", type=int, default=25, help="idle ticks measured per size (default 25)")
    parser.add_argument("--baseline-ticks", type=int, default=7, help="ticks without the index (default 7)")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="pending rows, ascending, comma-separated")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL even with --quick")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    ticks = 5 if args.quick else max(args.ticks, 20)
    baseline = 3 if args.quick else args.baseline_ticks
    log(f"idle tick benchmark: sizes {sizes}, {ticks} ticks per size, {baseline} baseline ticks — {machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="rt-bench-tick-") as tmp:
        results += Bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", ticks, baseline).run(sizes)
    if (args.pg or not args.quick) and not args.no_pg:
        problem = pg_reachable()
        if problem:
            log(f"PostgreSQL skipped: {problem}")
        else:
            with pg_schema() as url:
                results += Bench("postgresql", url, ticks, baseline).run(sizes)
    report(results)


if __name__ == "__main__":
    main()
