"""The plan: from suggestions to the activities of the work plan, and its revisions.

The secretariat disposes of every suggestion (accepted -> a plan activity, merged into another
activity, rejected with a reason), adds activities directly (most of the seed's 2020 plan is such),
edits them, and closes the review when every suggestion has a disposition and it signs the checklist
off. Dispositions and the sign-off are answers and go through flows.answers (its checks, its audit);
adding and editing activities are checked and audited there too.

Revisions: a revision of the plan is frozen once a document of it has gone out (the draft to the
comment round, the work plan to the approvers); the first edit after that raises the revision, and
the approval requests not yet sent follow the new one. While the approvers hold the plan it cannot
change (a rejection hands it back, already one revision up); an approved plan is final.
"""

import hashlib
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path

import yaml
from sqlmodel import Session, select

from flows import answers
from flows.answers import AnswerRefused
from flows.cycle import schedule
from flows.state import CycleState
from flows.steps import handler_for
from models.tables import Cycle, Disposition, Document, Member, PlanActivity, Response, Step

PLAN_DOCUMENTS = ("draft_plan", "work_plan")
MAX_TITLE = 500


@dataclass
class ActivityFields:
    """What the secretariat sets on an activity (the work plan's columns)."""

    title_lo: str = ""
    title_en: str = ""
    start_month: int = 1
    end_month: int | None = None  # None: the start month
    group_code: str = ""  # "" = the cycle's own group
    lead: str = ""
    serves: tuple[str, ...] = ()
    serves_other: str = ""
    meeting: bool = False
    budget: float | None = None
    currency: str = "USD"
    budget_source: str = ""

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def reference() -> list[dict]:
    """What an activity may serve: NSEDP outcomes, SDGs, Round Table recommendations, PM Instruction
    items (flows/answer_lists.yaml, the list the suggestion form offers)."""
    return answers.answer_lists()["serves"]


def serves_label(key: str, lang: str = "en") -> str:
    found = next((item for item in reference() if item["key"] == key), None)
    return found[lang] if found else key


def _clean(cs: CycleState, values: ActivityFields) -> dict:
    """Checked column values, or AnswerRefused('invalid') naming the field."""
    title_lo, title_en = (values.title_lo or "").strip(), (values.title_en or "").strip()
    if not (title_lo or title_en):
        raise AnswerRefused("invalid", "title: a Lao or English title is required")
    if max(len(title_lo), len(title_en)) > MAX_TITLE:
        raise AnswerRefused("invalid", f"title: longer than {MAX_TITLE} characters")
    try:
        start = int(values.start_month)
        end = int(values.end_month if values.end_month not in (None, "") else start)
    except (TypeError, ValueError):
        raise AnswerRefused("invalid", "months: whole numbers 1 to 12") from None
    if not (1 <= start <= 12 and 1 <= end <= 12):
        raise AnswerRefused("invalid", "months: 1 to 12")
    if end < start:
        raise AnswerRefused("invalid", f"months: the end ({end}) is before the start ({start})")
    group = (values.group_code or cs.group.code).strip().upper()
    if group not in cs.group_codes:
        raise AnswerRefused("invalid", f"responsible group: {group} is not one of {', '.join(cs.group_codes)}")
    serves = answers.checked_serves(values.serves, "serves: unknown item(s) {}")
    budget = values.budget
    if budget in ("", None):
        budget = None
    else:
        try:
            budget = float(budget)
        except (TypeError, ValueError):
            raise AnswerRefused("invalid", f"budget: {budget!r} is not a number") from None
        if budget < 0:
            raise AnswerRefused("invalid", "budget: cannot be negative")
    return {"title_lo": title_lo, "title_en": title_en, "start_month": start, "end_month": end,
            "group_code": group, "lead": (values.lead or "").strip()[:300], "serves": serves,
            "serves_other": (values.serves_other or "").strip()[:300], "meeting": bool(values.meeting),
            "budget": budget, "currency": (values.currency or "USD").strip().upper()[:8],
            "budget_source": (values.budget_source or "").strip()[:300]}


# ----------------------------------------------------------------------------- reading


def activities(session: Session, cycle_id: int) -> list[PlanActivity]:
    """The plan's activities in plan order (removed ones left out)."""
    return list(session.exec(select(PlanActivity).where(PlanActivity.cycle_id == cycle_id,
                                                        PlanActivity.removed == False)  # noqa: E712
                             .order_by(PlanActivity.position, PlanActivity.id)).all())


@dataclass
class SuggestionRow:
    suggestion: Response
    author: Member
    disposition: Disposition | None


def suggestions(session: Session, cycle_id: int) -> list[SuggestionRow]:
    """Every suggestion of the cycle with its author and its disposition (None: not yet decided)."""
    rows = session.exec(select(Response, Member).join(Step, Step.id == Response.step_id)
                        .join(Member, Member.id == Response.member_id)
                        .where(Step.cycle_id == cycle_id, Response.kind == "suggestion")
                        .order_by(Response.at, Response.id)).all()
    decided = {d.response_id: d for d in session.exec(select(Disposition).where(Disposition.cycle_id == cycle_id))}
    return [SuggestionRow(r, m, decided.get(r.id)) for r, m in rows]


def authors(session: Session, cycle_id: int) -> set[int]:
    """Who filed suggestions in the cycle."""
    return set(session.exec(select(Response.member_id).join(Step, Step.id == Response.step_id)
                            .where(Step.cycle_id == cycle_id, Response.kind == "suggestion")).all())


def outcomes_by_author(session: Session, cycle_id: int) -> dict[int, list[dict]]:
    """What the review made of each author's suggestions (the review_outcome message's list), for every
    author at once: the tick tells hundreds of authors in one go."""
    from flows.documents import month_span  # flows.documents reads this module for the documents

    activities = {a.id: a for a in session.exec(select(PlanActivity).where(PlanActivity.cycle_id == cycle_id))}

    def months(activity: PlanActivity | None, lang: str) -> str:
        return month_span(activity.start_month, activity.end_month, lang) if activity else ""

    out: dict[int, list[dict]] = {}
    for row in suggestions(session, cycle_id):
        d = row.disposition
        activity = activities.get(d.activity_id) if d and d.activity_id else None
        out.setdefault(row.author.id, []).append({
            "title": (row.suggestion.data or {}).get("title") or row.suggestion.body,
            "outcome": d.outcome if d else "", "reason": d.reason if d else "",
            "activity_lo": activity.title_lo if activity else "", "activity_en": activity.title_en if activity else "",
            "months_lo": months(activity, "lo"), "months_en": months(activity, "en")})
    return out


def review_counts(session: Session, cycle_id: int) -> dict:
    """accepted / merged / rejected / left (suggestions without a disposition)."""
    return counts_of(suggestions(session, cycle_id))


def counts_of(rows: list[SuggestionRow]) -> dict:
    """review_counts of suggestions already read."""
    counts = {"accepted": 0, "merged": 0, "rejected": 0, "left": 0}
    for row in rows:
        counts[row.disposition.outcome if row.disposition else "left"] += 1
    return counts


def signed_off(session: Session, cycle_id: int) -> bool:
    """Whether the review's checklist has been signed off."""
    found = session.exec(select(Response.id).join(Step, Step.id == Response.step_id)
                         .where(Step.cycle_id == cycle_id, Step.kind == "review", Response.kind == "checklist")).first()
    return found is not None


def review_step(cs: CycleState) -> Step:
    found = [s for s in cs.steps() if s.kind == "review"]
    if not found:
        raise AnswerRefused("wrong-step", "this cycle has no review step")
    return found[0]


def approval_step(cs: CycleState) -> Step | None:
    return next((s for s in cs.steps() if s.kind == "approval"), None)


def approved(session: Session, cycle: Cycle) -> dict | None:
    """{'at', 'by': [Member]} once the plan is approved, else None."""
    cs = CycleState(session, cycle)
    step = approval_step(cs)
    if step is None or step.outcome != "approved":
        return None
    decisions = handler_for("approval").decisions(cs, step)
    by = [session.get(Member, d.member_id) for d in decisions if d.decision == "approve"]
    return {"at": step.closed_at, "by": by}


# ----------------------------------------------------------------------------- changing the plan


def _editable(cs: CycleState) -> None:
    step = approval_step(cs)
    if step is None:
        return
    if step.outcome == "approved" or step.state == "done":
        raise AnswerRefused("approved", "the plan is approved: it can no longer change")
    if step.state == "open" and not step.data.get("awaiting_revision"):
        raise AnswerRefused("with-approvers", "the plan is with the chair and co-chairs: it can change "
                                              "again if they send it back")


def _gone_out(cs: CycleState, revision: int) -> bool:
    return cs.session.exec(select(Document.id).where(Document.cycle_id == cs.cycle.id, Document.revision == revision,
                                                     Document.kind.in_(PLAN_DOCUMENTS))).first() is not None


def _revision_for_edit(cs: CycleState, now: datetime) -> int:
    """The revision an edit goes into: the current one, or the next when the current one has gone out.
    Raising it before the approval opens re-plans the approval requests for the new revision."""
    revision = cs.cycle.plan_revision
    if not _gone_out(cs, revision):
        return revision
    cs.cycle.plan_revision = revision + 1
    cs.session.add(cs.cycle)
    step = approval_step(cs)
    if step is not None and step.state == "planned":
        schedule(cs, step, handler_for(step.kind).plan(cs, step, cs.timeline[step.key]), now)
    return revision + 1


def _next_position(session: Session, cycle_id: int) -> int:
    positions = session.exec(select(PlanActivity.position).where(PlanActivity.cycle_id == cycle_id)).all()
    return max(positions, default=0) + 1


def new_activity(cs: CycleState, values: ActivityFields, now: datetime, origin: str, *,
                 raise_revision: bool = True) -> PlanActivity:
    """A checked activity, not yet added to the session. Added once the draft has gone out, it raises the plan
    revision; a suggestion accepted in the review (`raise_revision=False`) joins the current one."""
    _editable(cs)
    revision = _revision_for_edit(cs, now) if raise_revision else cs.cycle.plan_revision
    return PlanActivity(cycle_id=cs.cycle.id, position=_next_position(cs.session, cs.cycle.id), origin=origin,
                        revision=revision, created_at=now, updated_at=now, **_clean(cs, values))


def add_activity(session: Session, *, member_id: int, cycle_id: int, now: datetime, channel: str,
                 values: ActivityFields) -> PlanActivity:
    """An activity the secretariat adds directly."""
    cs = answers.secretariat_action(session=session, member_id=member_id, cycle_id=cycle_id, now=now,
                                    channel=channel)
    activity = new_activity(cs, values, now, "direct")
    session.add(activity)
    session.flush()
    answers.audit_action(session, cs, member_id=member_id, now=now, channel=channel, kind="activity",
                         action="create", ref_id=activity.id, detail={"title_en": activity.title_en,
                                                                      "title_lo": activity.title_lo})
    return activity


def edit_activity(session: Session, *, member_id: int, activity_id: int, now: datetime, channel: str,
                  values: ActivityFields | None = None, remove: bool = False) -> PlanActivity:
    """Change (or remove) an activity; raises the revision when the current one has gone out."""
    activity = session.get(PlanActivity, activity_id)
    if activity is None or activity.removed:
        raise AnswerRefused("invalid", f"no activity {activity_id}")
    cs = answers.secretariat_action(session=session, member_id=member_id, cycle_id=activity.cycle_id, now=now,
                                    channel=channel)
    _editable(cs)
    clean = _clean(cs, values) if values is not None else {}
    changed = {k: v for k, v in clean.items() if getattr(activity, k) != v}
    if not changed and not remove:
        return activity
    activity.revision = _revision_for_edit(cs, now)
    for key, value in changed.items():
        setattr(activity, key, value)
    activity.removed = remove
    activity.updated_at = now
    session.add(activity)
    session.flush()
    answers.audit_action(session, cs, member_id=member_id, now=now, channel=channel, kind="activity",
                         action="withdraw" if remove else "update", ref_id=activity.id,
                         detail={"changed": sorted(changed), "revision": activity.revision})
    return activity


def dispose(session: Session, *, member_id: int, suggestion_id: int, now: datetime, channel: str, outcome: str,
            reason: str = "", values: ActivityFields | None = None, into: int | None = None) -> Disposition:
    """Accept a suggestion as a new activity (`values`, defaulting to the suggestion's own title, months
    and lead), merge it into activity `into`, or reject it with a reason: through flows.answers."""
    suggestion = session.get(Response, suggestion_id)
    if suggestion is None or suggestion.kind != "suggestion":
        raise AnswerRefused("invalid", f"no suggestion {suggestion_id}")
    cycle_id = session.get(Step, suggestion.step_id).cycle_id
    # The review step: one narrow query (a review disposes of hundreds of suggestions one by one).
    step_id = session.exec(select(Step.id).where(Step.cycle_id == cycle_id, Step.kind == "review")).first()
    if step_id is None:
        raise AnswerRefused("wrong-step", "this cycle has no review step")
    activity = None
    if outcome == "accepted":
        cs = CycleState(session, session.get(Cycle, cycle_id))
        activity = new_activity(cs, values or from_suggestion(suggestion), now, "suggestion", raise_revision=False)
    accepted = answers.record_disposition(session=session, member_id=member_id, step_id=step_id, now=now,
                                          channel=channel, suggestion_id=suggestion_id, outcome=outcome,
                                          reason=reason, activity=activity, activity_id=into)
    return accepted.row


def from_suggestion(suggestion: Response) -> ActivityFields:
    """An activity's fields as the suggestion gave them (a title "ລາວ — English" is split in two)."""
    data = suggestion.data or {}
    title = data.get("title") or suggestion.body
    lo, sep, en = title.partition(" — ")
    if not sep:
        lo, en = (title, "") if any("\u0e80" <= c <= "\u0eff" for c in title) else ("", title)
    months = sorted(data.get("months") or []) or [1]
    return ActivityFields(title_lo=lo.strip(), title_en=en.strip(), start_month=months[0], end_month=months[-1],
                          lead=data.get("lead", ""), serves=tuple(data.get("serves", ())),
                          serves_other=data.get("serves_other", ""))


def close_review(session: Session, *, member_id: int, cycle_id: int, now: datetime, channel: str,
                 note: str = "") -> answers.Accepted:
    """The secretariat signs the checklist off: refused while a suggestion has no disposition."""
    cycle = session.get(Cycle, cycle_id)
    if cycle is None:
        raise AnswerRefused("unknown-step", f"no cycle {cycle_id}")
    counts = review_counts(session, cycle_id)
    if counts["left"]:
        raise AnswerRefused("invalid", f"{counts['left']} suggestion(s) still have no disposition")
    step = review_step(CycleState(session, cycle))
    return answers.record_checklist(session=session, member_id=member_id, step_id=step.id, now=now, channel=channel,
                                    accepted=counts["accepted"], merged=counts["merged"], rejected=counts["rejected"],
                                    note=note)


def upload_document(session: Session, *, member_id: int, cycle_id: int, now: datetime, channel: str, kind: str,
                    filename: str, content: bytes) -> Document:
    """A polished DOCX for the current revision: stored with its checksum, it is what goes out for this
    revision from now on (the generated one stays stored and downloadable)."""
    cs = answers.secretariat_action(session=session, member_id=member_id, cycle_id=cycle_id, now=now, channel=channel)
    if kind not in PLAN_DOCUMENTS:
        raise AnswerRefused("invalid", f"document kind must be one of {', '.join(PLAN_DOCUMENTS)}")
    if answers.minutes_type(filename, content) != answers.DOCX:
        raise AnswerRefused("invalid", f"{filename or 'the file'} is not a Word (.docx) document")
    if len(content) > answers.MAX_MINUTES_BYTES:
        raise AnswerRefused("invalid", "the file is larger than 20 MB")
    revision = cs.cycle.plan_revision
    # A generated DOCX of this revision is made when the first message carrying it is sent.
    if session.exec(select(Document.id).where(
            Document.cycle_id == cycle_id, Document.kind == kind, Document.revision == revision,
            Document.media_type == answers.DOCX, Document.source == "generated")).first() is not None:
        raise AnswerRefused("invalid", f"revision {revision} of the {kind.replace('_', ' ')} has gone out already: "
                                       "change an activity to start the next revision")
    checksum = hashlib.sha256(content).hexdigest()
    stem = f"{cs.group.code}-{cs.cycle.year}-{kind.replace('_', '-')}-r{revision}-edited.docx"
    document = Document(cycle_id=cycle_id, kind=kind, revision=revision, checksum=checksum, filename=stem,
                        media_type=answers.DOCX, content=content, source="uploaded", created_at=now,
                        path=Path(filename or "").name[-200:])
    session.add(document)
    session.flush()
    answers.audit_action(session, cs, member_id=member_id, now=now, channel=channel, kind="document",
                         action="create", ref_id=document.id,
                         detail={"kind": kind, "revision": revision, "checksum": checksum, "filename": document.path})
    return document


# ----------------------------------------------------------------------------- plans kept as data


def load_plan(path: Path) -> list[dict]:
    """Activities kept as data (examples/plan_2020.yaml: the seed's 2020 plans of GSWG, PSI and LIO).
    Each entry: key, group, months [start, end], title_lo, title_en, lead, serves, meeting."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = data.get("activities") or []
    names = ActivityFields.names()
    out = []
    for number, entry in enumerate(entries, start=1):
        unknown = set(entry) - names - {"key", "group", "months"}
        if unknown:
            raise ValueError(f"{path}: activity {number}: unknown field(s) {', '.join(sorted(unknown))}")
        months = entry.get("months") or [1]
        values = ActivityFields(**{k: v for k, v in entry.items() if k in names},
                                group_code=entry.get("group", ""), start_month=months[0], end_month=months[-1])
        values.serves = tuple(values.serves or ())
        out.append({"key": entry.get("key", f"a{number}"), "values": values})
    return out
