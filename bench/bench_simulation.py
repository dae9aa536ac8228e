"""A whole planning cycle for 10 groups × 300 members (3,000 people), to the submission to MPI, mail as .eml.

Input is generated in a temp dir: a groups YAML with ten groups (G01 … G10), a roster CSV with 300
people per group (a chair, two co-chairs, a secretariat head, three secretariat staff, an MPI focal
point, 292 members; Lao and English names), and ten cycle definitions: cycles/gswg.yaml with `group:`
(and the audiences that name GSWG) set to each group. flows.simulate.simulate_cycles runs the ten cycles
on one SQLite database and one virtual clock, as one deployment would: every tick advances all live
cycles, one outbox writes every message to DIR/mail/*.eml and DIR/messages.jsonl, exactly as
`roundtable simulate` does for one cycle.

Reported: wall time, messages, messages/s, peak RSS (ru_maxrss of the process that ran the simulation:
each run is its own subprocess), and where the time goes (wrapped calls: planning, the tick's rendering
split into templates / iCalendar / MIME composition, delivery to files). Baseline side by side: the
one-group demo (`roundtable demo`: examples/roster.csv, 51 people) and its time per message.

    .venv/bin/python bench/bench_simulation.py             # baseline demo + 10 × 300
    .venv/bin/python bench/bench_simulation.py --quick     # smoke run: baseline demo + 2 × 30
    .venv/bin/python bench/bench_simulation.py --groups 10 --members 300 --profile   # + cProfile top 30
    .venv/bin/python bench/bench_simulation.py --keep DIR  # keep the output (mail, messages.jsonl, db)
"""

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, log, machine, peak_rss_mb, table  # noqa: E402

import yaml  # noqa: E402

GOAL_SECONDS = 30.0
GOAL_RSS_MB = 400.0
YEAR = 2020
ANNUAL_MEETING = datetime(2019, 11, 13, 8, 30, tzinfo=ZoneInfo("Asia/Vientiane"))
DEFINITION = ROOT / "cycles" / "gswg.yaml"
DEMO_ROSTER = ROOT / "examples" / "roster.csv"
DEMO_GROUPS = ROOT / "examples" / "groups.yaml"

# Roles per group, in this order; the rest of the group are members.
OFFICERS = [("chair", "ປະທານ", "Chair"), ("co-chair", "ປະທານຮ່ວມ", "Co-chair"), ("co-chair", "ປະທານຮ່ວມ", "Co-chair"),
            ("secretariat-head", "ຫົວໜ້າກອງເລຂາ", "Head of secretariat"),
            ("secretariat", "ກອງເລຂາ", "Secretariat"), ("secretariat", "ກອງເລຂາ", "Secretariat"),
            ("secretariat", "ກອງເລຂາ", "Secretariat"), ("mpi-focal", "ຜູ້ປະສານງານ MPI", "MPI focal point")]
ORGANISATIONS = ["ກະຊວງພາຍໃນ", "ກະຊວງຍຸຕິທຳ", "ກະຊວງການເງິນ", "ສະພາແຫ່ງຊາດ", "UNDP", "SDC", "EU", "GIZ"]


# ---------------------------------------------------------------------------------------------- inputs
def write_inputs(directory: Path, groups: int, members: int) -> tuple[Path, Path, list[Path]]:
    """groups.yaml, roster.csv and one definition per group; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    codes = [f"G{n:02d}" for n in range(1, groups + 1)]
    groups_yaml = directory / "groups.yaml"
    groups_yaml.write_text(yaml.safe_dump({"groups": [
        {"code": code, "name_lo": f"ໜ່ວຍງານຂະແໜງ {code}", "name_en": f"Sector Working Group {code}",
         "timezone": "Asia/Vientiane", "closed_days": []} for code in codes]}, allow_unicode=True, sort_keys=False),
        encoding="utf-8")
    roster = directory / "roster.csv"
    with roster.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "email", "organisation", "role", "group", "language"])
        for code in codes:
            for n in range(members):
                role, lo, en = OFFICERS[n] if n < len(OFFICERS) else ("member", "ສະມາຊິກ", "Member")
                language = "en" if n % 4 == 3 else "lo"
                name = f"{en} {n + 1} ({code})" if language == "en" else f"{lo} {n + 1} ({code})"
                writer.writerow([name, f"{code.lower()}.p{n + 1:03d}@example.org",
                                 ORGANISATIONS[n % len(ORGANISATIONS)], role, code, language])
    base = yaml.safe_load(DEFINITION.read_text(encoding="utf-8"))
    definitions = []
    for code in codes:
        data = json.loads(json.dumps(base))  # a deep copy
        data["name"], data["group"] = f"{base['name']}-{code.lower()}", code
        for step in data["steps"]:
            audience = step.get("audience") or {}
            if audience.get("groups"):
                audience["groups"] = [code if g == base["group"] else g for g in audience["groups"]]
        path = directory / f"cycle-{code}.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        definitions.append(path)
    return groups_yaml, roster, definitions


# ---------------------------------------------------------------------------------------------- timing
class Timers:
    """Wall time spent inside a few engine functions, found by wrapping them (nested calls are
    counted in both, e.g. compose inside tick)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.order: list[str] = []

    def wrap(self, module, name: str, label: str) -> None:
        inner = getattr(module, name)
        self.order.append(label)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        setattr(module, name, timed)

    def install(self) -> None:
        import flows.messages
        import flows.simulate
        import flows.tick

        self.wrap(flows.simulate, "start_cycle", "start cycles (plan every message)")
        self.wrap(flows.simulate, "tick", "tick (all)")
        self.wrap(flows.tick, "prepare", "  prepare a message (render+ics+compose)")
        self.wrap(flows.messages, "render_message", "    templates (notifications/render.py)")
        self.wrap(flows.messages, "calendar_part", "    iCalendar part (calendars/ics.py)")
        self.wrap(flows.messages, "build_message", "    MIME composition (notifications/compose.py)")
        self.wrap(flows.messages, "documents_for", "    attachments (flows/documents.py)")
        self.wrap(flows.simulate, "_deliver", "deliver (outbox -> .eml, messages.jsonl)")


# ---------------------------------------------------------------------------------------------- one run
def child(args) -> None:
    """Run one simulation in this process and print its figures as a RESULT line of JSON."""
    import flows.steps  # noqa: F401 - the step kinds register themselves; a definition names them
    from models.definition import load_definition

    out = Path(args.out)
    if args.scenario == "demo":
        groups_yaml, roster, definition_paths = DEMO_GROUPS, DEMO_ROSTER, [DEFINITION]
    else:
        groups_yaml, roster, definition_paths = write_inputs(out / "input", args.groups, args.members)
    definitions = [load_definition(path) for path in definition_paths]
    timers = Timers()
    timers.install()
    import flows.simulate

    last = [time.perf_counter()]

    def progress(message: str) -> None:
        if args.scenario != "demo" or time.perf_counter() - last[0] > 5:
            log(f"{args.scenario}: {message}")
            last[0] = time.perf_counter()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    result = flows.simulate.simulate_cycles(
        definitions, roster, groups_yaml, YEAR, {"annual_meeting": ANNUAL_MEETING}, out / "sim",
        respond_rate=0.6, seed=1, definition_paths=[str(p) for p in definition_paths], progress=progress)
    wall = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        profiler.dump_stats(out / "profile.pstats")
        print(f"--- cProfile of {args.scenario} (top 30 by own time; all of it in {out / 'profile.pstats'}) ---",
              flush=True)
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)
    files = sum(1 for _ in (out / "sim" / "mail").glob("*.eml"))
    mail_mb = sum(p.stat().st_size for p in (out / "sim" / "mail").glob("*.eml")) / 2**20
    figures = {
        "scenario": args.scenario, "cycles": len(definitions), "people": sum(1 for _ in roster.open()) - 1,
        "wall_s": wall, "messages": result.messages, "files": files, "mail_mb": mail_mb, "ticks": result.ticks,
        "finished": result.finished, "peak_rss_mb": peak_rss_mb(),
        "answers": dict(result.answers), "by_kind": _by_kind(result.by_step_kind),
        "timers": {label: [timers.seconds[label], timers.calls[label]] for label in timers.order},
    }
    print("RESULT " + json.dumps(figures), flush=True)


def _by_kind(by_step_kind) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for (_step, kind), n in by_step_kind.items():
        counts[kind] += n
    return dict(sorted(counts.items()))


def run_child(scenario: str, out: Path, groups: int, members: int, profile: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, "--out", str(out),
               "--groups", str(groups), "--members", str(members)] + (["--profile"] if profile else [])
    log(f"running {scenario} in a subprocess ({' '.join(command[2:])})")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, encoding="utf-8", cwd=ROOT)
    figures = None
    for line in process.stdout:
        if line.startswith("RESULT "):
            figures = json.loads(line[len("RESULT "):])
        else:
            print(line, end="", flush=True)
    if process.wait() != 0 or figures is None:
        raise SystemExit(f"{scenario} failed (exit {process.returncode})")
    return figures


def report(baseline: dict, big: dict) -> None:
    def row(label, f):
        per = f["wall_s"] / max(f["messages"], 1) * 1000
        return [label, f["cycles"], f"{f['people']:,}", f"{f['wall_s']:.1f}", f"{f['messages']:,}",
                f"{f['messages'] / f['wall_s']:.0f}", f"{per:.1f}", f"{f['peak_rss_mb']:.0f}", f"{f['mail_mb']:.0f}",
                f["ticks"], "yes" if f["finished"] else "NO"]

    print()
    print(f"Simulation to the submission — {machine()}")
    print(table(["run", "cycles", "people", "wall s", "messages", "msgs/s", "ms/msg", "peak RSS MB", "mail MB",
                 "ticks", "finished"], [row("baseline: demo", baseline), row("groups × members", big)]))
    ratio = (big["wall_s"] / big["messages"]) / (baseline["wall_s"] / baseline["messages"])
    print(f"time per message, big / demo: {ratio:.2f}x   messages, big / demo: {big['messages'] / baseline['messages']:.1f}x")
    if big["people"] >= 3000 and big["cycles"] >= 10:
        print(f"goal wall ≤ {GOAL_SECONDS:.0f} s: {'met' if big['wall_s'] <= GOAL_SECONDS else 'MISSED'} "
              f"({big['wall_s']:.1f} s);  goal peak RSS ≤ {GOAL_RSS_MB:.0f} MB: "
              f"{'met' if big['peak_rss_mb'] <= GOAL_RSS_MB else 'MISSED'} ({big['peak_rss_mb']:.0f} MB)")
    else:
        print(f"(the goals — ≤ {GOAL_SECONDS:.0f} s, ≤ {GOAL_RSS_MB:.0f} MB — are for 10 groups × 300 members)")
    print()
    print("Where the time goes (wrapped calls; indented rows are inside the row above them):")
    labels = list(big["timers"])
    rows = []
    for label in labels:
        cells = [label]
        for f in (baseline, big):
            seconds, calls = f["timers"].get(label, [0.0, 0])
            cells += [f"{seconds:.2f}", f"{seconds / f['wall_s'] * 100:.0f}%",
                      f"{seconds / calls * 1000:.2f}" if calls else "-"]
        rows.append(cells)
    print(table(["", "demo s", "demo %", "demo ms/call", "big s", "big %", "big ms/call"], rows))
    print("messages by kind (big): " + ", ".join(f"{k} {v}" for k, v in big["by_kind"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 groups × 30 members")
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top 30 of the big run")
    parser.add_argument("--keep", type=Path, help="write into this directory and keep it")
    parser.add_argument("--child", choices=("demo", "big"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.scenario = args.child
        child(args)
        return
    groups, members = (2, 30) if args.quick else (args.groups, args.members)
    log(f"simulation benchmark: baseline demo, then {groups} groups × {members} members — {machine()}")
    with tempfile.TemporaryDirectory(prefix="rt-bench-sim-") as tmp:
        where = args.keep or Path(tmp)
        baseline = run_child("demo", where / "demo", groups, members, False)
        log(f"demo: {baseline['messages']} messages in {baseline['wall_s']:.1f}s")
        big = run_child("big", where / "big", groups, members, args.profile)
        log(f"big: {big['messages']} messages in {big['wall_s']:.1f}s")
    report(baseline, big)


if __name__ == "__main__":
    main()
