"""The definition loader against broken files: every problem reads `FILE: FIELD.PATH: message`,
says what is known, and nothing but DefinitionError ever comes out."""

import copy
import random
import re
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from calendars.timeline import check_definition, compute_timeline
from models.definition import DefinitionError, load_definition, parse_time_expr

SEED = Path(__file__).resolve().parents[1] / "cycles" / "gswg.yaml"
SEED_DATA = yaml.safe_load(SEED.read_text(encoding="utf-8"))
STEP_KEYS = "call_for_suggestions, annual_review_meeting, secretariat_review, comment_round, approval, submission_to_mpi"
ROLES = "chair, co-chair, secretariat-head, secretariat, member, mpi-focal"
# A field path as people write it: steps[3].audience.roles[0], anchors.annual_meeting.time, (top level).
PATH = r"(\(top level\)|([A-Za-z0-9_-]+|'[^']*')(\[\d+\]|\.([A-Za-z0-9_-]+|'[^']*'))*|line \d+, column \d+)"


def write(tmp_path: Path, data, name: str = "cycle.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def mutated(change) -> dict:
    data = copy.deepcopy(SEED_DATA)
    change(data)
    return data


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        load_definition(path)
    problems = caught.value.problems
    assert problems and str(caught.value) == "\n".join(problems)
    for line in problems:
        assert_well_formed(line, str(path))
    return problems


def assert_well_formed(line: str, source: str) -> None:
    assert line.startswith(f"{source}: "), line
    rest = line[len(source) + 2:]
    if rest in ("file not found", "is a directory, not a definition file") or rest.startswith(("not UTF-8", "not valid YAML", "cannot read")):
        return
    assert re.match(rf"^{PATH}: \S", rest), f"odd path in {line!r}"


def the_problem(path: Path, field_path: str) -> str:
    """The message of the single problem, which must be about `field_path`."""
    problems = problems_of(path)
    assert len(problems) == 1, problems
    prefix = f"{path}: {field_path}: "
    assert problems[0].startswith(prefix), problems[0]
    return problems[0][len(prefix):]


def minimal(*steps: dict) -> dict:
    """A small definition with the seed's anchors and the given steps (collect steps unless told)."""
    base = {"kind": "collect", "title_lo": "ທົດລອງ", "title_en": "Test", "audience": {"roles": ["member"]}}
    return {"name": "test", "title_lo": "ທົດລອງ", "title_en": "Test", "group": "GSWG",
            "anchors": copy.deepcopy(SEED_DATA["anchors"]), "steps": [{**base, **s} for s in steps]}


# ---------------------------------------------------------------- the seed itself

def test_seed_loads_and_lao_titles_survive():
    definition = load_definition(SEED)
    assert [s.key for s in definition.steps] == STEP_KEYS.split(", ")
    assert definition.title_lo == "ຂັ້ນຕອນການສ້າງແຜນວຽກປະຈຳປີ ຂອງໜ່ວຍງານດ້ານການປົກຄອງ"
    assert definition.step("approval").title_lo == "ການຮັບຮອງໂດຍປະທານ ແລະ ປະທານຮ່ວມ"
    assert definition.step("annual_review_meeting").agenda[1].title_lo == "ພາກກ່າວເປີດກອງປະຊຸມ"
    for raw, step in zip(SEED_DATA["steps"], definition.steps):
        assert (step.title_lo, step.title_en) == (raw["title_lo"], raw["title_en"])
    check_definition(definition, str(SEED))


def test_lao_text_survives_in_a_file_with_a_lao_name_and_a_bom(tmp_path):
    path = tmp_path / "ວົງຈອນ.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.read_bytes())
    assert load_definition(path).step("comment_round").title_lo == "ສົ່ງອີເມວຂໍຄໍາເຫັນກ່ຽວກັບຮ່າງແຜນ"
    data = mutated(lambda d: d["steps"][0].update(kind="ເກັບກຳ"))
    message = the_problem(write(tmp_path, data, "ວົງຈອນ.yaml"), "steps[0].kind")
    assert "'ເກັບກຳ'" in message


# ---------------------------------------------------------------- references

def test_unknown_anchor_names_the_known_ones(tmp_path):
    data = mutated(lambda d: d["steps"][3].update(due="annual_meting + 10 business days"))
    path = write(tmp_path, data)
    assert problems_of(path) == [f"{path}: steps[3].due: unknown anchor 'annual_meting' (known: annual_meeting, review_meeting)"]


def test_a_step_used_as_an_anchor_gets_a_hint(tmp_path):
    data = mutated(lambda d: d["steps"][3].update(opens="secretariat_review + 8 business days"))
    message = the_problem(write(tmp_path, data), "steps[3].opens")
    assert "unknown anchor 'secretariat_review'" in message and "write 'secretariat_review closes'" in message


def test_unknown_kind(tmp_path):
    message = the_problem(write(tmp_path, mutated(lambda d: d["steps"][2].update(kind="reveiw"))), "steps[2].kind")
    assert message == ("unknown step kind 'reveiw' (did you mean 'review'? "
                       "known: approval, collect, meeting, review, submit, task)")


@pytest.mark.parametrize("where, change", [
    ("steps[0].audience.roles[0]", lambda d: d["steps"][0]["audience"].update(roles=["chiar", "member"])),
    ("steps[0].audience.roles[1]", lambda d: d["steps"][0]["audience"].update(roles=["chair", "members"])),
    ("steps[2].escalation.to[0]", lambda d: d["steps"][2]["escalation"].update(to=["boss"])),
])
def test_unknown_role(tmp_path, where, change):
    message = the_problem(write(tmp_path, mutated(change)), where)
    assert message.startswith("unknown role '") and f"(known: {ROLES})" in message


def test_unknown_step_in_after_and_in_expressions(tmp_path):
    def change(d):
        d["steps"][3]["after"] = ["secretariat_reveiw"]
        d["steps"][4]["opens"] = "5 business days after coment_round closes"
    path = write(tmp_path, mutated(change))
    assert problems_of(path) == [
        f"{path}: steps[3].after[0]: unknown step 'secretariat_reveiw' (known: {STEP_KEYS})",
        f"{path}: steps[4].opens: unknown step 'coment_round' (known: {STEP_KEYS})",
    ]


def test_a_point_the_step_does_not_have(tmp_path):
    data = mutated(lambda d: d["steps"][4].update(opens="comment_round.starts + 1 business day"))
    message = the_problem(write(tmp_path, data), "steps[4].opens")
    assert "step 'comment_round' has no 'starts' (it has: opens, due)" in message


def test_duplicate_step_keys(tmp_path):
    data = mutated(lambda d: d["steps"].append(copy.deepcopy(d["steps"][0])))
    assert the_problem(write(tmp_path, data), "steps[6].key") == "duplicate step key 'call_for_suggestions' (also steps[0])"


def test_duplicate_yaml_key_is_refused_with_its_line(tmp_path):
    text = SEED.read_text(encoding="utf-8").replace(
        "    due: annual_meeting - 2 business days\n",
        "    due: annual_meeting - 2 business days\n    due: annual_meeting - 5 business days\n", 1)
    path = tmp_path / "twice.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t == "    due: annual_meeting - 5 business days")
    assert problems_of(path) == [f"{path}: line {line}, column 5: not valid YAML (duplicate key 'due')"]


# ---------------------------------------------------------------- loops

def test_loop_between_two_steps(tmp_path):
    data = minimal({"key": "a", "opens": "b closes - 5 days", "due": "annual_meeting"},
                   {"key": "b", "opens": "annual_meeting", "due": "a opens + 3 days"})
    assert the_problem(write(tmp_path, data), "steps[0]") == "dependency loop: a.opens → b.due → a.opens"


def test_loop_through_after(tmp_path):
    data = minimal({"key": "a", "after": ["b"], "opens": "annual_meeting", "due": "opens + 5 days"},
                   {"key": "b", "opens": "a closes + 1 day", "due": "opens + 3 days"})
    assert the_problem(write(tmp_path, data), "steps[0]") == "dependency loop: a.due → a.opens → b.due → b.opens → a.due"


def test_steps_waiting_for_each_other(tmp_path):
    data = minimal({"key": "a", "after": ["b"], "opens": "annual_meeting", "due": "annual_meeting + 5 days"},
                   {"key": "b", "after": ["a"], "opens": "review_meeting", "due": "review_meeting + 5 days"})
    assert the_problem(write(tmp_path, data), "steps[0].after") == "steps wait for each other: a → b → a (via 'after')"
    data = minimal({"key": "a", "after": ["a"], "opens": "annual_meeting", "due": "annual_meeting + 5 days"})
    assert the_problem(write(tmp_path, data), "steps[0].after") == "steps wait for each other: a → a (via 'after')"


def test_a_point_defined_by_itself(tmp_path):
    data = minimal({"key": "a", "opens": "annual_meeting", "due": "due + 1 day"})
    assert the_problem(write(tmp_path, data), "steps[0]") == "dependency loop: a.due → a.due"


def test_loop_through_a_meetings_default_opening(tmp_path):
    # A meeting without `opens` opens 10 business days before it starts; starting from `opens` loops.
    data = mutated(lambda d: (d["steps"][1].pop("opens"), d["steps"][1].update(starts="opens + 1 day")))
    message = the_problem(write(tmp_path, data), "steps[1]")
    assert message == "dependency loop: annual_review_meeting.opens → annual_review_meeting.starts → annual_review_meeting.opens"


# ---------------------------------------------------------------- dates that contradict (check_definition)

def test_due_before_opens(tmp_path):
    path = write(tmp_path, mutated(lambda d: d["steps"][0].update(due="annual_meeting - 9 business days")))
    definition = load_definition(path)  # each expression is fine on its own
    with pytest.raises(DefinitionError) as caught:
        check_definition(definition, str(path))
    assert caught.value.problems == [
        f"{path}: steps[0].due: 2019-10-31 17:00 +0700 is before the step opens (2019-11-01 09:00 +0700) for planning year 2020"]


def test_meeting_ending_before_it_starts(tmp_path):
    path = write(tmp_path, mutated(lambda d: d["steps"][1].update(ends="annual_meeting at 08:00")))
    with pytest.raises(DefinitionError) as caught:
        check_definition(load_definition(path), str(path))
    assert caught.value.problems == [f"{path}: steps[1].ends: the meeting ends (2019-11-13 08:00 +0700) before it "
                                     "starts (2019-11-13 08:30 +0700) for planning year 2020"]


# ---------------------------------------------------------------- shape of each step

@pytest.mark.parametrize("where, change, expected", [
    ("steps[1].starts", lambda d: d["steps"][1].pop("starts"), "a meeting step needs 'starts'"),
    ("steps[1].ends", lambda d: d["steps"][1].pop("ends"), "a meeting step needs 'ends'"),
    ("steps[2].ends", lambda d: d["steps"][2].pop("ends"), "'starts' and 'ends' go together"),
    ("steps[0].due", lambda d: d["steps"][0].pop("due"), "a collect step needs 'due'"),
    ("steps[0].due", lambda d: d["steps"][0].update(due=None), "a collect step needs 'due'"),
    ("steps[0].approval", lambda d: d["steps"][0].update(approval={"rule": "all"}),
     "does not apply to a collect step"),
    ("steps[4].approval.k", lambda d: d["steps"][4].update(approval={"rule": "k-of-n"}),
     "rule 'k-of-n' needs k (how many must approve)"),
    ("steps[4].approval.k", lambda d: d["steps"][4].update(approval={"rule": "all", "k": 2}),
     "k only applies to rule 'k-of-n', not 'all'"),
    ("steps[4].approval.rule", lambda d: d["steps"][4].update(approval={"rule": "most"}),
     "Input should be 'all', 'any' or 'k-of-n', got text 'most'"),
    ("steps[4].approval.k", lambda d: d["steps"][4].update(approval={"rule": "k-of-n", "k": 0}),
     "Input should be greater than or equal to 1, got the number 0"),
    ("steps[0].key", lambda d: d["steps"][0].update(key="Call for suggestions"),
     "'Call for suggestions' is not a valid name: use lower-case letters, digits or '_', starting with a letter"),
    ("steps[0].audience.roles", lambda d: d["steps"][0]["audience"].update(roles=[]), "must not be empty"),
    ("steps", lambda d: d.update(steps=[]), "must not be empty"),
    ("anchors", lambda d: d.update(anchors={}), "must not be empty"),
    ("late_policy.call", lambda d: d["late_policy"].update(call="later"),
     "Input should be 'send_late', 'skip_if_stale' or 'fold', got text 'later'"),
])
def test_step_shape(tmp_path, where, change, expected):
    assert the_problem(write(tmp_path, mutated(change)), where) == expected


@pytest.mark.parametrize("where, text", [
    ("steps[0].opens", "next tuesday"),
    ("steps[0].opens", "annual_meeting -"),
    ("steps[0].opens", "annual_meeting + 3 fortnights"),
    ("steps[0].opens", "8 business days annual_meeting"),
    ("steps[0].opens", "Annual_Meeting - 8 business days"),
    ("steps[0].opens", ""),
    ("steps[0].due", "annual_meeting - 2.5 business days"),
    ("steps[0].reminders[1]", "due minus one day"),
    ("steps[0].escalation.after", "due + 1 business days later"),
    ("steps[1].agenda_at", "starts - three business days"),
    ("steps[1].minutes_due", "ends + 5 business days at noon"),
])
def test_unreadable_expressions(tmp_path, where, text):
    def change(d):
        step, _, field = where.partition(".")
        target = d["steps"][int(step[6:-1])]
        if field.startswith("reminders"):
            target["reminders"][1] = text
        elif field == "escalation.after":
            target["escalation"]["after"] = text
        else:
            target[field] = text
    message = the_problem(write(tmp_path, mutated(change)), where)
    assert message.startswith(f"cannot read time expression {text!r} (write e.g. 'annual_meeting - 8 business days'")


@pytest.mark.parametrize("where, change, expected", [
    ("anchors.annual_meeting.time", lambda d: d["anchors"]["annual_meeting"].update(time="25:00"),
     "time must be HH:MM (00:00 to 23:59), got '25:00'"),
    ("anchors.annual_meeting.time", lambda d: d["anchors"]["annual_meeting"].update(time="8.30"),
     "time must be HH:MM (00:00 to 23:59), got '8.30'"),
    ("anchors.review_meeting.time", lambda d: d["anchors"]["review_meeting"].update(time="12:60"),
     "time must be HH:MM (00:00 to 23:59), got '12:60'"),
    ("defaults.due_time", lambda d: d["defaults"].update(due_time="5pm"), "time must be HH:MM (00:00 to 23:59), got '5pm'"),
    ("steps[1].ends", lambda d: d["steps"][1].update(ends="annual_meeting at 24:00"),
     "bad time of day '24:00' in 'annual_meeting at 24:00'"),
    ("anchors.annual_meeting.day", lambda d: d["anchors"]["annual_meeting"].update(month=2, day=30), "February has no day 30"),
    ("anchors.annual_meeting.day", lambda d: d["anchors"]["annual_meeting"].update(month=2, day=29),
     "29 February is not in every year; use 28 February or 1 March"),
    ("anchors.annual_meeting.month", lambda d: d["anchors"]["annual_meeting"].update(month=13),
     "Input should be less than or equal to 12, got the number 13"),
    ("anchors.annual_meeting.year_offset", lambda d: d["anchors"]["annual_meeting"].update(year_offset=-2019),
     "Input should be greater than or equal to -5, got the number -2019"),
    ("anchors.Annual", lambda d: d["anchors"].update(Annual=d["anchors"]["annual_meeting"]),
     "anchor name 'Annual': use lower-case letters, digits and '_', starting with a letter"),
    ("anchors.due", lambda d: d["anchors"].update(due=d["anchors"]["annual_meeting"]),
     "anchor name 'due' is taken: it names a point of a step (opens, closes, due, starts, ends)"),
])
def test_bad_times_and_anchors(tmp_path, where, change, expected):
    assert the_problem(write(tmp_path, mutated(change)), where) == expected


def test_unquoted_time_read_by_yaml_as_a_number(tmp_path):
    path = tmp_path / "unquoted.yaml"
    path.write_text(SEED.read_text(encoding="utf-8").replace('time: "08:30"', "time: 12:15"), encoding="utf-8")
    assert the_problem(path, "anchors.annual_meeting.time") == 'YAML read 12:15 as the number 735: write it in quotes, "12:15"'


# ---------------------------------------------------------------- unknown fields, wrong types, nulls

@pytest.mark.parametrize("where, change, expected", [
    ("steps[0].reminder", lambda d: d["steps"][0].update(reminder=["due - 1 business days"]),
     "unknown field 'reminder'; did you mean 'reminders'?"),
    ("step", lambda d: d.update(step=[]), "unknown field 'step'; did you mean 'steps'?"),
    ("anchors.annual_meeting.mnth", lambda d: d["anchors"]["annual_meeting"].update(mnth=11),
     "unknown field 'mnth'; did you mean 'month'?"),
    ("steps[0].audience.roels", lambda d: d["steps"][0]["audience"].update(roels=["chair"]),
     "unknown field 'roels'; did you mean 'roles'?"),
    ("steps[1].agenda[0].speaker", lambda d: d["steps"][1]["agenda"][0].update(speaker="x"),
     "unknown field 'speaker' (known: time, title_lo, title_en, who_lo, who_en)"),
    ("steps[2]", lambda d: d["steps"].__setitem__(2, "secretariat_review"),
     "expected a mapping (name: value lines), got text 'secretariat_review'"),
    ("steps[2]", lambda d: d["steps"].__setitem__(2, None), "expected a mapping (name: value lines), got nothing (null)"),
    ("steps", lambda d: d.update(steps=None), "expected a list, got nothing (null)"),
    ("steps", lambda d: d.update(steps={"a": 1}), "expected a list, got a mapping"),
    ("steps[0].title_lo", lambda d: d["steps"][0].update(title_lo=None), "expected text, got nothing (null)"),
    ("steps[0].title_en", lambda d: d["steps"][0].update(title_en=2020), "expected text, got the number 2020; put it in quotes"),
    ("steps[0].opens", lambda d: d["steps"][0].update(opens=8), "expected text, got the number 8; put it in quotes"),
    ("steps[0].key", lambda d: d["steps"][0].update(key=5), "expected text, got the number 5; put it in quotes"),
    ("title_en", lambda d: d.update(title_en=date(2019, 11, 13)), "expected text, got the date 2019-11-13; put it in quotes"),
    ("steps[0].audience.roles", lambda d: d["steps"][0]["audience"].update(roles="chair"),
     "expected a list, got text 'chair' (write [chair])"),
    ("steps[0].audience", lambda d: d["steps"][0].update(audience=None), "expected a mapping (name: value lines), got nothing (null)"),
    ("steps[1].survey", lambda d: d["steps"][1].update(survey="maybe"), "expected true or false, got text 'maybe'"),
    ("anchors.annual_meeting.day", lambda d: d["anchors"]["annual_meeting"].update(day="13th"),
     "expected a whole number, got text '13th'"),
    ("steps[0].kind", lambda d: d["steps"][0].pop("kind"), "required, but missing"),
    ("group", lambda d: d.pop("group"), "required, but missing"),
    ("1", lambda d: d.update({1: 2}), "field names are text, got the number 1"),
])
def test_unknown_fields_wrong_types_and_nulls(tmp_path, where, change, expected):
    assert the_problem(write(tmp_path, mutated(change)), where) == expected


def test_every_problem_is_reported_at_once(tmp_path):
    def change(d):
        d["steps"][0]["kind"] = "colect"
        d["steps"][2]["reminder"] = []
        d["anchors"]["annual_meeting"]["time"] = "8h30"
    problems = problems_of(write(tmp_path, mutated(change)))
    assert [p.split(": ")[1] for p in problems] == ["anchors.annual_meeting.time", "steps[0].kind", "steps[2].reminder"]


# ---------------------------------------------------------------- huge offsets

@pytest.mark.parametrize("text, limit", [
    ("annual_meeting - 99999999 business days", "at most 2600 business days"),
    ("annual_meeting - 2601 business days", "at most 2600 business days"),
    ("annual_meeting - 3661 days", "at most 3660 days"),
    ("annual_meeting - 523 weeks", "at most 522 weeks"),
    ("annual_meeting - 87841 hours", "at most 87840 hours"),
    ("annual_meeting - " + "9" * 5000 + " days", "at most 3660 days"),
])
def test_huge_offsets_are_refused_quickly(tmp_path, text, limit):
    started = time.monotonic()
    message = the_problem(write(tmp_path, mutated(lambda d: d["steps"][0].update(opens=text))), "steps[0].opens")
    assert message.startswith("offset too large in") and message.endswith(limit)
    assert time.monotonic() - started < 2


def test_the_largest_offsets_still_compute(tmp_path):
    def change(d):
        d["steps"][0]["opens"] = "annual_meeting - 2600 business days"
        d["steps"][5]["due"] = "opens + 3660 days"
    definition = load_definition(write(tmp_path, mutated(change)))
    started = time.monotonic()
    dated = {s.key: s for s in compute_timeline(definition, 2020)}
    assert dated["call_for_suggestions"].opens_at.year == 2009
    assert dated["submission_to_mpi"].due_at.year == 2030
    assert time.monotonic() - started < 5


def test_a_long_chain_of_steps_computes_and_too_many_steps_are_refused(tmp_path):
    # Each step opens when the next one closes: computing the first walks the whole chain.
    chain = [{"key": f"s{i:03d}", "opens": f"s{i + 1:03d} closes - 2 business days", "due": "opens + 1 business day"}
             for i in range(99)] + [{"key": "s099", "opens": "annual_meeting", "due": "opens + 1 day"}]
    dated = compute_timeline(load_definition(write(tmp_path, minimal(*chain))), 2020)
    assert dated[-1].opens_at - dated[0].opens_at > timedelta(days=130)  # 100 business days and more
    chain.append({"key": "s100", "opens": "annual_meeting", "due": "opens + 1 day"})
    assert the_problem(write(tmp_path, minimal(*chain)), "steps") == "too many: at most 100"


def test_parse_time_expr_forms():
    expr = parse_time_expr("5 business days after comment_round closes")
    assert (expr.ref, expr.point, expr.amount, expr.unit) == ("comment_round", "due", 5, "bday")
    expr = parse_time_expr("  annual_meeting   −  8 business days  ")  # a typographic minus, extra spaces
    assert (expr.ref, expr.point, expr.amount, expr.unit) == ("annual_meeting", None, -8, "bday")
    expr = parse_time_expr("due - 3 business days at 10:00")
    assert (expr.ref, expr.point, expr.amount, expr.at.hour) == ("", "due", -3, 10)
    assert parse_time_expr("annual_meeting - 0003 days").amount == -3


# ---------------------------------------------------------------- files that are not definitions

@pytest.mark.parametrize("content, expected", [
    (b"", "(top level): the file is empty"),
    (b"# nothing but a comment\n", "(top level): the file is empty"),
    (b"- a\n- b\n", "(top level): a cycle definition is a mapping (name, title_lo, title_en, group, anchors, steps), got a list"),
    (b"just text\n", "(top level): a cycle definition is a mapping (name, title_lo, title_en, group, anchors, steps), got text 'just text'"),
    (b"42\n", "(top level): a cycle definition is a mapping (name, title_lo, title_en, group, anchors, steps), got the number 42"),
])
def test_not_a_mapping(tmp_path, content, expected):
    path = tmp_path / "odd.yaml"
    path.write_bytes(content)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: {expected}")


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    lines = SEED.read_text(encoding="utf-8").splitlines()
    index = next(i for i, t in enumerate(lines) if t.startswith("    audience: {roles: [chair, co-chair"))
    lines[index] = lines[index].replace("member]}", "member}")  # an unclosed bracket
    path = tmp_path / "broken.yaml"
    path.write_text("\n".join(lines), encoding="utf-8")
    (problem,) = problems_of(path)
    assert re.match(rf"^{re.escape(str(path))}: line {index + 1}, column \d+: not valid YAML \(", problem), problem


@pytest.mark.parametrize("content, expected", [
    ("name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 9); save the file as UTF-8"),
    ("name: gswg\n".encode("utf-16"), "not UTF-8 text (byte 0); save the file as UTF-8"),
    (b"name: gs\x00wg\n", "not valid YAML (unacceptable character #x0000"),
    (b"name: " + b"[" * 100_000 + b"]" * 100_000, "not valid YAML (nested too deeply)"),
    (b"\tname: gswg\n", "line 1, column 1: not valid YAML ("),
    (b"name: !!python/object:os.system x\n", "line 1, column 7: not valid YAML (could not determine a constructor"),
])
def test_bytes_that_are_not_yaml_text(tmp_path, content, expected):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(content)
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: {expected}"), problem


def test_missing_file_and_directory(tmp_path):
    assert problems_of(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]
    assert problems_of(tmp_path) == [f"{tmp_path}: is a directory, not a definition file"]


def test_recursive_yaml_is_a_definition_error(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text(SEED.read_text(encoding="utf-8") + "extra: &x [*x]\n", encoding="utf-8")
    assert the_problem(path, "extra") == "unknown field 'extra' (known: name, title_lo, title_en, group, anchors, defaults, late_policy, steps)"
    path.write_text(SEED.read_text(encoding="utf-8").replace("attachments: [draft_plan]", "attachments: &a [*a]"), encoding="utf-8")
    assert the_problem(path, "steps[3].attachments[0]") == "expected text, got a list"


# ---------------------------------------------------------------- random mutations

DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # writing is safe with libyaml, and quicker
JUNK = [None, 0, -1, 10**30, 3.5, float("inf"), True, "", "x", "ສະບາຍດີ", [], [None], {}, {"a": 1},
        date(2019, 11, 13), "annual_meeting - 99999999 business days", "due - 3 business days", "[{", "at 25:00"]


def _containers(node, out):
    if isinstance(node, dict):
        out.append(node)
        for value in node.values():
            _containers(value, out)
    elif isinstance(node, list):
        out.append(node)
        for value in node:
            _containers(value, out)
    return out


def _mutate(rng: random.Random, data: dict) -> None:
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(_containers(data, []))
        if not target:
            continue
        slot = rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
        action = rng.random()
        if action < 0.3:
            del target[slot]
        elif action < 0.8:
            target[slot] = copy.deepcopy(rng.choice(JUNK))
        elif isinstance(target, dict):
            target[rng.choice(["reminder", "kind", "due", "opens", "after", 7])] = copy.deepcopy(rng.choice(JUNK))
        else:
            target.append(copy.deepcopy(rng.choice(JUNK + [target[slot]])))


def _only_definition_errors(path: Path) -> None:
    try:
        definition = load_definition(path)
    except DefinitionError as exc:
        for line in exc.problems:
            assert_well_formed(line, str(path))
        return
    try:  # what loads must also compute, or say why not
        compute_timeline(definition, 2020, source=str(path))
    except DefinitionError as exc:
        for line in exc.problems:
            assert_well_formed(line, str(path))


def test_random_mutations_give_only_definition_errors(tmp_path):
    rng = random.Random(20191113)
    path = tmp_path / "mutant.yaml"
    for _ in range(300):
        data = copy.deepcopy(SEED_DATA)
        _mutate(rng, data)
        path.write_text(yaml.dump(data, Dumper=DUMPER, allow_unicode=True, sort_keys=False), encoding="utf-8")
        _only_definition_errors(path)


def test_truncated_and_garbled_files_give_only_definition_errors(tmp_path):
    rng = random.Random(1975)
    raw = SEED.read_bytes()
    path = tmp_path / "cut.yaml"
    for _ in range(250):
        cut = raw[: rng.randrange(len(raw))]
        if rng.random() < 0.4:  # splice in a few random bytes
            at = rng.randrange(len(cut) + 1)
            cut = cut[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))) + cut[at:]
        path.write_bytes(cut)
        _only_definition_errors(path)
