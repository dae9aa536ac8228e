"""The one way in for every answer: web form, mail reply, CLI or simulator (DESIGN §3).

One function per answer kind. Each checks, before it writes anything:
  - the step exists, belongs to a live cycle and takes this kind of answer;
  - the step is open at `now` (an answer after the deadline but before the step closes is kept and
    marked late: `data["late"] = True` and `late` in the audit row);
  - the person is in the step's audience on the day of `now`;
  - the plan revision is the current one (when the caller names one: approval links carry it);
then writes the answer and one AnswerAudit row naming the channel. A refusal raises AnswerRefused and
writes nothing. Nothing here commits: the caller's session does.
"""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable

import yaml
from sqlalchemy import bindparam, insert, or_
from sqlmodel import Session, select

from flows.cycle import schedule_now
from flows.state import CycleState
from flows.steps.collect import RECEIPT
from models.audience import open_on, principals_of
from models.db import insert_row
from models.tables import (AnswerAudit, Cycle, Decision, Disposition, Document, Member, Membership, PlanActivity,
                           Response, Step, WorkingGroup)

CHANNELS = ("web", "mail", "cli", "simulator")
PARTSTATS = ("ACCEPTED", "TENTATIVE", "DECLINED")
DECISIONS = ("approve", "reject")
OUTCOMES = ("accepted", "merged", "rejected")  # what the review makes of a suggestion
SURVEY_DAYS = 14  # the satisfaction survey of a meeting takes answers this long after it ends
MAX_TEXT = 4000  # characters of one free-text field
MAX_MINUTES_BYTES = 20 * 1024 * 1024
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_DATA = Path(__file__).with_name("answer_lists.yaml")


class AnswerRefused(Exception):
    """An answer that cannot be taken. `code` is a short word a page or a reply can be chosen by:
    unknown-step, not-open, closed, not-in-audience, stale-revision, awaiting-revision, wrong-step,
    already-answered, deadline-passed, not-yours, invalid, not-live."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Accepted:
    """What a recording function hands back: the row written and whether it came late."""

    row: Any
    late: bool


def answer_lists() -> dict:
    """Lists kept as data: what a suggestion may serve, the survey's questions."""
    global _LISTS
    if _LISTS is None:
        _LISTS = yaml.safe_load(_DATA.read_text(encoding="utf-8"))
    return _LISTS


_LISTS: dict | None = None


# ----------------------------------------------------------------------------- the checks


@dataclass
class _Context:
    cs: CycleState
    step: Step
    late: bool


def _check(session: Session, *, member_id: int, step_id: int, now: datetime, channel: str,
           kinds: Iterable[str], window: str = "step", revision: int | None = None,
           audience: str = "step") -> _Context:
    _check_call(now, channel)
    step = session.get(Step, step_id)
    if step is None:
        raise AnswerRefused("unknown-step", f"no step {step_id}")
    cycle = _live_cycle(session, step.cycle_id)
    if step.kind not in kinds:
        raise AnswerRefused("wrong-step", f"step {step.key!r} ({step.kind}) takes no such answer")
    cs = CycleState(session, cycle)
    late = _window(step, now, window)
    if revision is not None and revision != cycle.plan_revision:
        raise AnswerRefused("stale-revision", f"revision {revision} of the plan has been replaced by "
                                              f"revision {cycle.plan_revision}")
    # Which groups: said as a condition on the group row, so that the check stays one query.
    if audience == "secretariat":
        roles, groups = ("secretariat-head", "secretariat"), ("group", cycle.group_id)
    else:
        wanted = cs.step_def(step.key).audience
        roles = wanted.roles
        groups = ("codes", list(wanted.groups)) if wanted.groups else ("own", cycle.group_id)
    if not _holds(session, member_id, roles, groups, now.astimezone(cs.zone).date()):
        raise AnswerRefused("not-in-audience", f"member {member_id} is not asked to answer {step.key!r} on "
                                               f"{now.astimezone(cs.zone):%Y-%m-%d}")
    return _Context(cs, step, late)


def _check_call(now: datetime, channel: str) -> None:
    """A caller's mistake, not a person's: a moment without a zone, a channel nobody answers by."""
    if now.tzinfo is None:
        raise ValueError("now must carry a zone")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")


def _live_cycle(session: Session, cycle_id: int) -> Cycle:
    cycle = session.get(Cycle, cycle_id)
    if cycle is None or cycle.state != "live":
        raise AnswerRefused("not-live", "this cycle is no longer running")
    return cycle


def _holds(session: Session, member_id: int, roles, groups: tuple[str, Any], day) -> bool:
    """Whether the member holds one of `roles` in a group matching `groups` (a key of _HOLDS, its value) on
    `day` (one narrow query, not the whole audience: the simulator records thousands of answers). Asked of the
    session's connection: memberships are not what an answer changes (no flush first), and no ORM rows come back."""
    condition, value = groups
    found = session.connection().execute(_HOLDS[condition], {"member_id": member_id, "roles": list(roles), "day": day,
                                                              "groups": value}).first()
    return found is not None


# _holds' query for each way of naming the groups, built once (building it cost more than answering it):
# "group" = the cycle's group, "own" = it and its sub-groups, "codes" = the groups named in the definition.
_HOLDING = (select(Membership.id).join(WorkingGroup, WorkingGroup.id == Membership.group_id)
            .where(Membership.member_id == bindparam("member_id"),
                   Membership.role.in_(bindparam("roles", expanding=True)))
            .where(*open_on(bindparam("day"))))
_HOLDS = {
    "group": _HOLDING.where(WorkingGroup.id == bindparam("groups")),
    "own": _HOLDING.where(or_(WorkingGroup.id == bindparam("groups"), WorkingGroup.parent_id == bindparam("groups"))),
    "codes": _HOLDING.where(WorkingGroup.code.in_(bindparam("groups", expanding=True))),
}


def _window(step: Step, now: datetime, window: str) -> bool:
    """Raise when the step takes no answer at `now`; else whether the answer is late."""
    if window == "after-meeting":  # the survey and the minutes: once the meeting has been held
        start = step.starts_at or step.opens_at
        if step.state == "skipped" or start is None or now < start:
            raise AnswerRefused("not-open", "the meeting has not taken place yet")
        if step.ends_at and now > step.ends_at + timedelta(days=SURVEY_DAYS):
            raise AnswerRefused("closed", "answers to this meeting are closed")
        return False
    if step.state == "planned":
        raise AnswerRefused("not-open", f"step {step.key!r} is not open yet")
    if step.state != "open":
        raise AnswerRefused("closed", f"step {step.key!r} is closed")
    return bool(step.due_at and now > step.due_at)


def open_for(step: Step, now: datetime) -> bool:
    """Whether edits (of suggestions, comments) are still allowed: before the deadline of an open step."""
    return step.state == "open" and not (step.due_at and now > step.due_at)


def _audit(session: Session, ctx: _Context, *, member_id: int, now: datetime, channel: str, kind: str,
           action: str, ref_id: int | None, detail: dict) -> None:
    # Every column named, and the row never changed nor read back in this session: one INSERT, no model.
    session.connection().execute(_INSERT_AUDIT, {
        "at": now, "member_id": member_id, "step_id": ctx.step.id, "cycle_id": ctx.step.cycle_id, "kind": kind,
        "action": action, "channel": channel, "late": ctx.late, "ref_id": ref_id, "detail": detail})


_INSERT_AUDIT = insert(AnswerAudit)


def _text(name: str, value: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    if required and not value:
        raise AnswerRefused("invalid", f"{name} is required")
    if len(value) > limit:
        raise AnswerRefused("invalid", f"{name} is longer than {limit} characters")
    return value


def _own(session: Session, row_id: int, member_id: int, step_id: int, kind: str) -> Response:
    row = session.get(Response, row_id)
    if row is None or row.step_id != step_id or row.kind != kind:
        raise AnswerRefused("invalid", f"no {kind} {row_id} in this step")
    if row.member_id != member_id:
        raise AnswerRefused("not-yours", f"{kind} {row_id} was filed by someone else")
    return row


def _save(session: Session, ctx: _Context, row: Response | Decision | None, new: Any, *, member_id: int,
          now: datetime, channel: str, kind: str, detail: dict) -> Accepted:
    """Insert `new` (row None) or the changed `row`; then the audit row."""
    action = "create" if row is None else "update"
    target = new if row is None else row
    if isinstance(target, Response) and ctx.late:
        target.data = {**target.data, "late": True}
    if row is None:
        insert_row(session, target)
    else:
        session.flush()
    _audit(session, ctx, member_id=member_id, now=now, channel=channel, kind=kind, action=action,
           ref_id=target.id, detail=detail)
    return Accepted(target, ctx.late)


# ----------------------------------------------------------------------------- suggestions, comments


def record_suggestion(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                      title: str, what: str = "", why: str = "", months: Iterable[int] = (), lead: str = "",
                      serves: Iterable[str] = (), serves_other: str = "", suggestion_id: int | None = None,
                      revision: int | None = None, receipt: bool = False) -> Accepted:
    """A suggested activity (a person may file several). `suggestion_id` edits one of theirs, which is
    allowed until the deadline. `serves` names entries of the list kept as data; `serves_other` is free.
    `receipt`: the person gets a copy of all they have filed by mail (the web form asks for one)."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("collect",),
                 revision=revision)
    title = _text("title", title, required=True, limit=300)
    months = sorted({int(m) for m in months})
    if any(not 1 <= m <= 12 for m in months):
        raise AnswerRefused("invalid", "months are 1 to 12")
    serves = checked_serves(serves, "unknown aim(s): {}")
    data = {"title": title, "what": _text("what", what), "why": _text("why", why), "months": months,
            "lead": _text("lead organisation", lead, limit=300), "serves": serves,
            "serves_other": _text("other aim", serves_other, limit=300)}
    accepted = _editable(session, ctx, "suggestion", suggestion_id, member_id=member_id, now=now, channel=channel,
                         body=title, data=data, detail={"title": title})
    if receipt:
        _schedule_receipt(session, ctx, member_id, now, accepted.row.id)
    return accepted


def _schedule_receipt(session: Session, ctx: _Context, member_id: int, now: datetime, suggestion_id: int) -> None:
    """The receipt, due now: the next tick writes it (flows/steps/collect.py lists the suggestions as they stand
    then) and sends it; `serve` wakes the tick after every answer. One per filing: the suggestion and the
    moment tell them apart."""
    schedule_now(ctx.cs, ctx.step, RECEIPT, f"{suggestion_id}-{now.strftime('%Y%m%dT%H%M%S%f')}",
                 session.get(Member, member_id), now)


def checked_serves(keys: Iterable[str], unknown: str) -> list[str]:
    """Keys of the list of what an activity may serve (answer_lists.yaml), each once and in order; AnswerRefused
    with `unknown` (a format naming the unknown ones) when one is not on it."""
    known = {item["key"] for item in answer_lists()["serves"]}
    serves = [key for key in dict.fromkeys(keys or ()) if key]
    missing = [key for key in serves if key not in known]
    if missing:
        raise AnswerRefused("invalid", unknown.format(", ".join(missing)))
    return serves


def withdraw_suggestion(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                        suggestion_id: int) -> None:
    """Take back one's suggestion before the deadline (the row goes; the audit keeps its title)."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("collect",))
    row = _own(session, suggestion_id, member_id, step_id, "suggestion")
    _before_deadline(session, ctx, now)
    _audit(session, ctx, member_id=member_id, now=now, channel=channel, kind="suggestion", action="withdraw",
           ref_id=row.id, detail={"title": row.body})
    session.delete(row)
    session.flush()


def _editable(session: Session, ctx: _Context, kind: str, row_id: int | None, *, member_id: int, now: datetime,
              channel: str, body: str, data: dict, detail: dict) -> Accepted:
    """A new suggestion or comment, or (row_id given) a change to one of the person's own before the deadline."""
    row = None
    if row_id is not None:
        row = _own(session, row_id, member_id, ctx.step.id, kind)
        _before_deadline(session, ctx, now)
        row.body, row.data, row.at = body, data, now
    new = Response(step_id=ctx.step.id, member_id=member_id, kind=kind, body=body, data=data, at=now)
    return _save(session, ctx, row, new, member_id=member_id, now=now, channel=channel, kind=kind, detail=detail)


def _before_deadline(session: Session, ctx: _Context, now: datetime) -> None:
    if not open_for(ctx.step, now):
        raise AnswerRefused("deadline-passed", "the deadline has passed: answers can no longer be changed")


def record_comment(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                   body: str, activity: str = "", comment_id: int | None = None,
                   revision: int | None = None) -> Accepted:
    """A comment on the draft plan, on one activity (its text) or in general (""); editable until the deadline."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("collect",),
                 revision=revision)
    body = _text("comment", body, required=True)
    data = {"activity": _text("activity", activity, limit=1000)}
    return _editable(session, ctx, "comment", comment_id, member_id=member_id, now=now, channel=channel,
                     body=body, data=data, detail={"activity": data["activity"]})


# ----------------------------------------------------------------------------- meetings


def record_rsvp(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                partstat: str, reason: str = "", ical: dict | None = None) -> Accepted:
    """Accept / tentative / decline, stored as an iTIP reply is (one rsvp Response per person, body =
    PARTSTAT, the reason as its comment); a later answer replaces the earlier one. `ical`: what a mailed
    iTIP reply carried (uid, sequence, ical_stamp), which orders later replies (calendars.rsvp.is_newer)."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel,
                 kinds=("meeting", "review"))
    partstat = (partstat or "").upper()
    if partstat not in PARTSTATS:
        raise AnswerRefused("invalid", f"answer must be one of {', '.join(PARTSTATS)}")
    reason = _text("reason", reason, limit=1000)
    row = session.exec(select(Response).where(Response.step_id == step_id, Response.member_id == member_id,
                                              Response.kind == "rsvp")).first()
    data = {"comment": reason, "stamp": now.isoformat(), "source": channel, **(ical or {})}
    if row is not None:
        row.body, row.data, row.at = partstat, data, now
    new = Response(step_id=step_id, member_id=member_id, kind="rsvp", body=partstat, data=data, at=now)
    return _save(session, ctx, row, new, member_id=member_id, now=now, channel=channel, kind="rsvp",
                 detail={"partstat": partstat})


def record_survey(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                  scores: dict[str, int], comment: str = "") -> Accepted:
    """The satisfaction survey of a meeting: 1–5 per question kept as data, and a comment; once a person."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("meeting",),
                 window="after-meeting")
    questions = [q["key"] for q in answer_lists()["survey"]]
    clean: dict[str, int] = {}
    for key in questions:
        try:
            value = int(scores.get(key))
        except (TypeError, ValueError):
            raise AnswerRefused("invalid", f"a score from 1 to 5 is needed for {key!r}") from None
        if not 1 <= value <= 5:
            raise AnswerRefused("invalid", f"score for {key!r} must be 1 to 5")
        clean[key] = value
    if set(scores) - set(questions):
        raise AnswerRefused("invalid", f"unknown question(s): {', '.join(sorted(set(scores) - set(questions)))}")
    if _exists(session, step_id, member_id, "survey"):
        raise AnswerRefused("already-answered", "this survey has already been answered")
    new = Response(step_id=step_id, member_id=member_id, kind="survey", body=_text("comment", comment),
                   data={"scores": clean}, at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="survey",
                 detail={"scores": clean})


def record_minutes(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                   filename: str, content: bytes) -> Accepted:
    """The minutes of a meeting (secretariat): a PDF or DOCX stored as a Document with its checksum."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("meeting",),
                 window="after-meeting", audience="secretariat")
    media_type = minutes_type(filename, content)
    if not content:
        raise AnswerRefused("invalid", "the file is empty")
    if len(content) > MAX_MINUTES_BYTES:
        raise AnswerRefused("invalid", f"the file is larger than {MAX_MINUTES_BYTES // (1024 * 1024)} MB")
    checksum = hashlib.sha256(content).hexdigest()
    name = Path(filename or "minutes").name[-200:]
    document = Document(cycle_id=ctx.step.cycle_id, kind="minutes", revision=1, checksum=checksum, filename=name,
                        media_type=media_type, content=content, created_at=now)
    session.add(document)
    session.flush()
    new = Response(step_id=step_id, member_id=member_id, kind="minutes", body=name,
                   data={"document_id": document.id, "checksum": checksum}, at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="minutes",
                 detail={"document_id": document.id, "checksum": checksum, "filename": name})


def minutes_type(filename: str, content: bytes) -> str:
    """PDF or DOCX by their bytes (the name alone proves nothing); anything else is refused."""
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"PK"):
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                if "word/document.xml" in archive.namelist():
                    return DOCX
        except zipfile.BadZipFile:
            pass
    raise AnswerRefused("invalid", f"{filename or 'the file'} is neither a PDF nor a Word (.docx) document")


# ----------------------------------------------------------------------------- secretariat, chairs, MPI


def record_checklist(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                     accepted: int, merged: int, rejected: int, note: str = "") -> Accepted:
    """The secretariat's review: how many suggestions were accepted, merged, rejected."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("review",))
    counts = {"accepted": accepted, "merged": merged, "rejected": rejected}
    if any(not isinstance(v, int) or v < 0 for v in counts.values()):
        raise AnswerRefused("invalid", "the counts are whole numbers, 0 or more")
    body = _text("note", note) or f"accepted {accepted}, merged {merged}, rejected {rejected}"
    new = Response(step_id=step_id, member_id=member_id, kind="checklist", body=body, data=counts, at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="checklist",
                 detail=counts)


def _decider(session: Session, *, member_id: int, step_id: int, now: datetime, channel: str,
             revision: int | None) -> tuple[_Context, int, Decision | None]:
    """Whom `member_id` decides for: themselves when they are an approver that day, else the first approver
    they deputise for (roster column deputy_for) who is one that day and has not decided this revision
    (else the first such approver). With the decision already taken for that approver, if any."""
    try:
        ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("approval",),
                     revision=revision)
        candidates = [(ctx, member_id)]
    except AnswerRefused as refused:
        if refused.code != "not-in-audience":
            raise
        step = session.get(Step, step_id)
        cs = CycleState(session, session.get(Cycle, step.cycle_id))
        groups = cs.step_def(step.key).audience.groups or cs.group_codes
        candidates = []
        for principal in principals_of(session, member_id, groups, now.astimezone(cs.zone).date()):
            try:
                candidates.append((_check(session, member_id=principal, step_id=step_id, now=now, channel=channel,
                                          kinds=("approval",), revision=revision), principal))
            except AnswerRefused as other:
                if other.code != "not-in-audience":
                    raise
        if not candidates:
            raise
    current = candidates[0][0].cs.cycle.plan_revision
    taken = [session.exec(select(Decision).where(Decision.step_id == step_id, Decision.member_id == principal,
                                                 Decision.plan_revision == current)).first()
             for _, principal in candidates]
    ctx, principal = next((c for c, t in zip(candidates, taken) if t is None), candidates[0])
    return ctx, principal, taken[candidates.index((ctx, principal))]


def decision_for(session: Session, *, member_id: int, step_id: int, now: datetime,
                 revision: int | None = None) -> Decision | None:
    """The decision already taken this revision for the approver this member's link decides for (their own,
    or their deputy's; a deputy's link shows the approver's), None when none or the link decides nothing."""
    try:
        return _decider(session, member_id=member_id, step_id=step_id, now=now, channel="web", revision=revision)[2]
    except AnswerRefused:
        return None


def record_decision(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                    decision: str, reason: str = "", revision: int | None = None) -> Accepted:
    """Approve or reject (reason required) the plan at its current revision; one decision an approver a revision.
    A deputy named in the roster decides for their approver: the first decision of either counts (Decision
    member_id = the approver, by_member_id = the deputy). A mail never decides (From can be forged): the mail
    channel is refused."""
    if channel == "mail":
        raise AnswerRefused("invalid", "a decision is taken on the confirm page, never by mail")
    ctx, principal, taken = _decider(session, member_id=member_id, step_id=step_id, now=now, channel=channel,
                                     revision=revision)
    cycle = ctx.cs.cycle
    if ctx.step.data.get("awaiting_revision"):
        raise AnswerRefused("awaiting-revision", "the plan is being revised: a new request will follow")
    if decision not in DECISIONS:
        raise AnswerRefused("invalid", f"decision must be one of {', '.join(DECISIONS)}")
    reason = _text("reason", reason, required=decision == "reject")
    if taken is not None:
        by = "" if taken.by_member_id is None else f" (by member {taken.by_member_id} for member {principal})"
        raise AnswerRefused("already-answered", f"already decided: {taken.decision}{by}")
    deputy = member_id if principal != member_id else None
    new = Decision(step_id=step_id, member_id=principal, by_member_id=deputy, decision=decision, reason=reason,
                   plan_revision=cycle.plan_revision, at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="decision",
                 detail={"decision": decision, "revision": cycle.plan_revision,
                         **({"for": principal} if deputy else {})})


def record_revision(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                    revision: int, note: str = "") -> Accepted:
    """The secretariat records the revised plan after a rejection (revision = the new plan revision)."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("approval",),
                 audience="secretariat")
    awaited = ctx.step.data.get("awaiting_revision")
    if not awaited or revision != awaited:
        raise AnswerRefused("stale-revision", f"no revision {revision} is awaited")
    new = Response(step_id=step_id, member_id=member_id, kind="revision", body=_text("note", note) or "revised plan",
                   data={"revision": revision}, at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="revision",
                 detail={"revision": revision})


def record_receipt(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                   note: str = "") -> Accepted:
    """MPI's focal point confirms that the work plan arrived (once; a second confirmation is refused)."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("submit",))
    if _exists(session, step_id, member_id, "receipt"):
        raise AnswerRefused("already-answered", "the receipt has already been confirmed")
    new = Response(step_id=step_id, member_id=member_id, kind="receipt", body=_text("note", note) or "received",
                   at=now)
    return _save(session, ctx, None, new, member_id=member_id, now=now, channel=channel, kind="receipt", detail={})


def record_disposition(*, session: Session, member_id: int, step_id: int, now: datetime, channel: str,
                       suggestion_id: int, outcome: str, reason: str = "", activity: PlanActivity | None = None,
                       activity_id: int | None = None) -> Accepted:
    """The secretariat's review of one suggestion: accepted (`activity`, a new plan activity built and
    checked by flows.plan), merged into the existing activity `activity_id`, or rejected (reason
    required; its author is told). A second disposition of the same suggestion replaces the first; an
    activity the first one created from it alone is removed."""
    ctx = _check(session, member_id=member_id, step_id=step_id, now=now, channel=channel, kinds=("review",),
                 audience="secretariat")
    cycle_id = ctx.step.cycle_id
    if _exists_kind(session, step_id, "checklist"):
        raise AnswerRefused("closed", "the review is signed off: its dispositions are final")
    suggestion = session.get(Response, suggestion_id)
    if suggestion is None or suggestion.kind != "suggestion" or \
            session.get(Step, suggestion.step_id).cycle_id != cycle_id:
        raise AnswerRefused("invalid", f"no suggestion {suggestion_id} in this cycle")
    if outcome not in OUTCOMES:
        raise AnswerRefused("invalid", f"outcome must be one of {', '.join(OUTCOMES)}")
    reason = _text("reason", reason, required=outcome == "rejected")
    if outcome == "accepted" and activity is None:
        raise AnswerRefused("invalid", "an accepted suggestion needs its activity")
    if outcome == "merged":
        target = session.get(PlanActivity, activity_id) if activity_id is not None else None
        if target is None or target.cycle_id != cycle_id or target.removed:
            raise AnswerRefused("invalid", f"no activity {activity_id} to merge into")
    row = session.exec(select(Disposition).where(Disposition.response_id == suggestion_id)).first()
    if row is not None and row.outcome == "accepted" and row.activity_id is not None:
        others = session.exec(select(Disposition.id).where(Disposition.activity_id == row.activity_id,
                                                           Disposition.id != row.id)).first()
        made = session.get(PlanActivity, row.activity_id)
        if others is None and made is not None and made.origin == "suggestion":
            made.removed, made.updated_at = True, now
    if outcome == "accepted":
        session.add(activity)
        session.flush()
        activity_id = activity.id
    elif outcome == "rejected":
        activity_id = None
    new = Disposition(cycle_id=cycle_id, response_id=suggestion_id, outcome=outcome, activity_id=activity_id,
                      reason=reason, member_id=member_id, at=now)
    if row is not None:
        row.outcome, row.activity_id, row.reason, row.member_id, row.at = outcome, activity_id, reason, member_id, now
    return _save(session, ctx, row, new, member_id=member_id, now=now, channel=channel, kind="disposition",
                 detail={"suggestion": suggestion_id, "outcome": outcome, "activity": activity_id, "reason": reason})


def secretariat_action(*, session: Session, member_id: int, cycle_id: int, now: datetime, channel: str) -> CycleState:
    """Check that the member is secretariat of the cycle's group on the day of `now` (plan edits, which
    are no answer to a step but the secretariat's own work); the caller writes with `audit_action`."""
    _check_call(now, channel)
    cycle = _live_cycle(session, cycle_id)
    cs = CycleState(session, cycle)
    if not _holds(session, member_id, ("secretariat-head", "secretariat"), ("group", cycle.group_id),
                  now.astimezone(cs.zone).date()):
        raise AnswerRefused("not-in-audience", f"member {member_id} is not secretariat of {cs.group.code}")
    return cs


def audit_action(session: Session, cs: CycleState, *, member_id: int, now: datetime, channel: str, kind: str,
                 action: str, ref_id: int | None, detail: dict) -> None:
    """The audit row of a secretariat action on the plan, filed under the cycle's review step."""
    step = next((s for s in cs.steps() if s.kind == "review"), None) or cs.steps()[0]
    _audit(session, _Context(cs, step, False), member_id=member_id, now=now, channel=channel, kind=kind,
           action=action, ref_id=ref_id, detail=detail)


def _exists_kind(session: Session, step_id: int, kind: str) -> bool:
    return session.exec(_ANSWERED, params={"step_id": step_id, "kind": kind}).first() is not None


def _exists(session: Session, step_id: int, member_id: int, kind: str) -> bool:
    return session.exec(_ANSWERED_BY, params={"step_id": step_id, "kind": kind, "member_id": member_id}).first() \
        is not None


# Built once, as _HOLDS: each review disposition asks whether the review is signed off.
_ANSWERED = select(Response.id).where(Response.step_id == bindparam("step_id"), Response.kind == bindparam("kind"))
_ANSWERED_BY = _ANSWERED.where(Response.member_id == bindparam("member_id"))
