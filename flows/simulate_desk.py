"""The simulated secretariat at its desk (the simulator's review and revision), through the same
flows.plan / flows.answers calls the web desk makes.

The review: the plan kept as data (examples/plan_2020.yaml, the seed's 2020 plans of GSWG, PSI and
LIO) is the plan the secretariat arrives at. A suggestion that matches one of its activities is
accepted as that activity the first time (with the seed's months, group and lead) and merged into it
after that (duplicates); the others are rejected with a reason; activities nobody suggested are added
directly. Then the checklist is signed off. The revision after a rejection does what the chairs asked.
"""

from datetime import datetime
from pathlib import Path

from sqlmodel import Session

from flows import answers, plan
from flows.state import CycleState
from models.tables import Cycle, PlanActivity, Step

DEMO_PLAN = Path(__file__).resolve().parents[1] / "examples" / "plan_2020.yaml"
# Which seed activity a simulated suggestion (flows.simulate.SUGGESTIONS) is, by a phrase in its text.
MATCHES = {"SDG 16": "gswg-sdg16-seminar", "documentation system": "gswg-capacity",
           "civil code": "lio-civil-code", "One Door": "psi-one-door"}
REJECTED = ("ບໍ່ຢູ່ໃນຂອບເຂດຂອງໜ່ວຍງານ: ສະເໜີເຂົ້າໃນແຜນຝຶກອົບຮົມຂອງກະຊວງພາຍໃນ — Outside the group's remit: "
            "proposed for the Ministry of Home Affairs' training plan instead.")
REVISED_SERVES = ("gswg-capacity", "sdg16")  # the chairs' rejection asks for SDG 16 (flows.simulate)


def _matching(title: str) -> str | None:
    return next((key for phrase, key in MATCHES.items() if phrase.lower() in title.lower()), None)


def review(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
           plan_path: Path = DEMO_PLAN) -> answers.Accepted:
    """Dispose of every suggestion, complete the plan, sign the checklist off."""
    cycle_id = session.get(Step, step_id).cycle_id
    if plan.signed_off(session, cycle_id):  # the task went to the whole secretariat: one of them did it
        raise answers.AnswerRefused("already-answered", "the review is already signed off")
    seed = _for_cycle(session, cycle_id, plan.load_plan(plan_path))
    pending = [row for row in plan.suggestions(session, cycle_id) if row.disposition is None]
    made: dict[str, int] = {}
    common = dict(session=session, member_id=member_id, now=now, channel=channel)
    for entry in seed:
        first = next((row for row in pending if _matching(row.suggestion.body) == entry["key"]), None)
        if first is not None:
            disposition = plan.dispose(**common, suggestion_id=first.suggestion.id, outcome="accepted",
                                       values=entry["values"])
            made[entry["key"]] = disposition.activity_id
            pending.remove(first)
        else:
            made[entry["key"]] = plan.add_activity(**common, cycle_id=cycle_id, values=entry["values"]).id
    for row in pending:
        key = _matching(row.suggestion.body)
        if key in made:
            plan.dispose(**common, suggestion_id=row.suggestion.id, outcome="merged", into=made[key])
        else:
            plan.dispose(**common, suggestion_id=row.suggestion.id, outcome="rejected", reason=REJECTED)
    return plan.close_review(**common, cycle_id=cycle_id)


def _for_cycle(session: Session, cycle_id: int, seed: list[dict]) -> list[dict]:
    """The seed plan for another group's cycle (a benchmark's G01 …): the seed's main group becomes the
    cycle's group, a sub-group the cycle lacks too."""
    codes = CycleState(session, session.get(Cycle, cycle_id)).group_codes
    for entry in seed:
        if entry["values"].group_code not in codes:
            entry["values"].group_code = codes[0]
    return seed


def revise(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
           revision: int) -> answers.Accepted:
    """After a rejection: tie the capacity activity to SDG 16 as asked, then send the revised plan."""
    cycle_id = session.get(Step, step_id).cycle_id
    key, extra = REVISED_SERVES
    seed = {entry["key"]: entry["values"] for entry in plan.load_plan(DEMO_PLAN)}
    target = next((a for a in plan.activities(session, cycle_id) if a.title_en == seed[key].title_en), None)
    if isinstance(target, PlanActivity) and extra not in target.serves:
        values = plan.ActivityFields(**{name: getattr(target, name) for name in plan.ActivityFields.names()
                                        if name not in ("serves",)}, serves=(*target.serves, extra))
        plan.edit_activity(session, member_id=member_id, activity_id=target.id, now=now, channel=channel,
                           values=values)
    return answers.record_revision(session=session, member_id=member_id, step_id=step_id, now=now, channel=channel,
                                   revision=revision)
