"""One page per link purpose: what GET shows and what a POST records (through flows.answers).

A purpose's `show(session, action, csrf, query, refused=None)` renders its page; its
`answer(session, action, form, files)` records and returns (the `done` code shown after the redirect,
the answer kind), or raises AnswerRefused (the page comes back with the reason, nothing written).
"""

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from docx import Document as DocxDocument
from sqlalchemy import bindparam
from sqlmodel import Session, select

from calendars.rsvp import who_is_coming
from flows import answers
from flows.answers import AnswerRefused
from flows.documents import month_name
from flows.state import CycleState
from flows.steps import handler_for
from models.tables import Decision, Document, Member, Response
from roundtable.web.render import page

MULTI = {"months", "serves"}  # form fields with several values
ALL_KINDS = ("collect", "meeting", "review", "approval", "submit", "task")

LINK_PROBLEMS = {  # code -> (Lao, English)
    "invalid": ("ລິ້ງນີ້ບໍ່ຖືກຕ້ອງ ຫຼື ຖືກດັດແປງ. ກະລຸນາໃຊ້ລິ້ງໃນອີເມວຂອງທ່ານ ໂດຍບໍ່ດັດແກ້.",
                "This link is not valid or has been altered. Please use the link in your email as it is."),
    "expired": ("ລິ້ງນີ້ໝົດອາຍຸແລ້ວ: ຂັ້ນຕອນນີ້ໄດ້ປິດແລ້ວ. ກະລຸນາຕິດຕໍ່ກອງເລຂາ.",
                "This link has expired: the step is closed. Please contact the secretariat."),
    "wrong-purpose": ("ລິ້ງນີ້ບໍ່ແມ່ນສໍາລັບໜ້ານີ້.", "This link is not meant for this page."),
    "voided": ("ແຜນໄດ້ຖືກປັບປຸງໃໝ່: ລິ້ງນີ້ໃຊ້ບໍ່ໄດ້ອີກແລ້ວ. ທ່ານຈະໄດ້ຮັບອີເມວໃໝ່ສໍາລັບສະບັບປັບປຸງ.",
               "The plan has been revised: this link no longer works. A new email for the revised plan will follow."),
    "csrf": ("ແບບຟອມນີ້ໝົດອາຍຸ ຫຼື ບໍ່ແມ່ນຂອງລິ້ງນີ້. ກະລຸນາເປີດລິ້ງໃນອີເມວຄືນໃໝ່ ແລ້ວສົ່ງອີກຄັ້ງ. ບໍ່ມີຫຍັງຖືກບັນທຶກ.",
             "This form has expired or belongs to another link. Please open the link in your email again and "
             "resend. Nothing was recorded."),
    "read-only": ("ໜ້ານີ້ແມ່ນສໍາລັບອ່ານເທົ່ານັ້ນ.", "This page is read-only."),
    "bad-form": ("ແບບຟອມທີ່ສົ່ງມາບໍ່ຄົບຖ້ວນ. ບໍ່ມີຫຍັງຖືກບັນທຶກ.", "The form could not be read. Nothing was recorded."),
    "no-document": ("ບໍ່ພົບເອກະສານນີ້.", "This document was not found."),
}
REFUSALS = {  # AnswerRefused.code -> (Lao, English)
    "not-open": ("ຂັ້ນຕອນນີ້ຍັງບໍ່ທັນເປີດ.", "This step is not open yet."),
    "closed": ("ຂັ້ນຕອນນີ້ປິດແລ້ວ: ບໍ່ສາມາດຮັບຄໍາຕອບໄດ້ອີກ.", "This step is closed: answers are no longer taken."),
    "not-in-audience": ("ທ່ານບໍ່ໄດ້ຢູ່ໃນລາຍຊື່ຜູ້ຕອບຂອງຂັ້ນຕອນນີ້ໃນມື້ນີ້.",
                        "You are not among the people asked to answer this step today."),
    "stale-revision": ("ແຜນໄດ້ຖືກປັບປຸງໃໝ່ແລ້ວ.", "The plan has been revised since."),
    "awaiting-revision": ("ແຜນກໍາລັງຖືກປັບປຸງ: ທ່ານຈະໄດ້ຮັບຄໍາຮ້ອງຂໍໃໝ່.",
                          "The plan is being revised: a new request will follow."),
    "already-answered": ("ທ່ານໄດ້ຕອບແລ້ວ.", "You have already answered."),
    "deadline-passed": ("ກໍານົດເວລາໄດ້ຜ່ານໄປແລ້ວ: ບໍ່ສາມາດແກ້ໄຂໄດ້ອີກ.",
                        "The deadline has passed: answers can no longer be changed."),
    "not-yours": ("ລາຍການນີ້ບໍ່ແມ່ນຂອງທ່ານ.", "This entry is not yours."),
    "invalid": ("ກະລຸນາກວດເບິ່ງແບບຟອມຄືນ.", "Please check the form."),
    "wrong-step": ("ຂັ້ນຕອນນີ້ບໍ່ຮັບຄໍາຕອບແບບນີ້.", "This step takes no such answer."),
    "not-live": ("ຮອບວຽກນີ້ໄດ້ສິ້ນສຸດແລ້ວ.", "This cycle is over."),
    "unknown-step": ("ບໍ່ພົບຂັ້ນຕອນນີ້.", "This step was not found."),
}
DONE = {  # ?done= code -> (Lao, English); fixed texts, never echoed from the URL
    "saved": ("ບັນທຶກແລ້ວ. ຂອບໃຈ!", "Saved. Thank you!"),
    "withdrawn": ("ຖອນແລ້ວ.", "Withdrawn."),
    "decided": ("ບັນທຶກການຕັດສິນຂອງທ່ານແລ້ວ. ຂອບໃຈ!", "Your decision is recorded. Thank you!"),
    "uploaded": ("ອັບໂຫຼດບົດບັນທຶກແລ້ວ. ຂອບໃຈ!", "The minutes are uploaded. Thank you!"),
    "confirmed": ("ຢືນຢັນການໄດ້ຮັບແລ້ວ. ຂອບໃຈ!", "Receipt confirmed. Thank you!"),
}
PARTSTATS = {"ACCEPTED": ("ເຂົ້າຮ່ວມ", "Accept"), "TENTATIVE": ("ອາດຈະເຂົ້າຮ່ວມ", "Tentative"),
             "DECLINED": ("ບໍ່ເຂົ້າຮ່ວມ", "Decline")}
STATES = {"planned": ("ຍັງບໍ່ເປີດ", "not open yet"), "open": ("ເປີດຢູ່", "open"), "closed": ("ປິດແລ້ວ", "closed"),
          "done": ("ສໍາເລັດ", "done"), "skipped": ("ຂ້າມ", "skipped")}
MONTHS = [(month, month_name(month, "lo"), month_name(month, "en")) for month in range(1, 13)]  # Babel's names


@dataclass(frozen=True)
class Purpose:
    kinds: tuple[str, ...]
    show: Callable
    answer: Callable | None = None


# ----------------------------------------------------------------------------- shared


def _context(session: Session, action, csrf: str, query: dict, refused: AnswerRefused | None) -> dict:
    definition = action.definition
    done = DONE.get(query.get("done", ""))
    return {
        "bi": action.bi, "action": action, "member": action.member, "group": action.group,
        "zone": action.zone, "step": action.step, "title": _asked(definition, action.cycle.year),
        "definition": definition, "csrf": csrf, "url": action.url, "done": done,
        "refused": (REFUSALS.get(refused.code, REFUSALS["invalid"]), refused.message) if refused else None,
        "late": bool(action.step.due_at and action.now > action.step.due_at),
        "open": action.step.state == "open", "editable": answers.open_for(action.step, action.now),
    }


def _asked(definition, year: int) -> tuple[str, str]:
    """What the page asks its reader, in their words (the definition's ask), else the step's title."""
    return tuple((ask or title).replace("{year}", str(year)) for ask, title in
                 ((definition.ask_lo, definition.title_lo), (definition.ask_en, definition.title_en)))


def _render(name: str, ctx: dict, refused: AnswerRefused | None) -> object:
    return page(name, ctx, status=409 if refused is not None and refused.code != "invalid" else
                (422 if refused is not None else 200))


# A person's own answers of a kind in a step, oldest first (built once: a page reads it every time).
OWN = (select(Response).where(Response.step_id == bindparam("step_id"), Response.member_id == bindparam("member_id"),
                              Response.kind == bindparam("kind")).order_by(Response.at, Response.id))


def _own(session: Session, action, kind: str) -> list[Response]:
    return list(session.exec(OWN, params={"step_id": action.step.id, "member_id": action.member.id,
                                          "kind": kind}).all())


def _int(value, name: str) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        raise AnswerRefused("invalid", f"{name} must be a whole number") from None


def _id(form: dict) -> int | None:
    return _int(form["id"], "id") if form.get("id") else None


def _args(session: Session, action) -> dict:
    """The arguments every flows.answers function takes, for this link."""
    return {"session": session, "member_id": action.member.id, "step_id": action.step.id, "now": action.now,
            "channel": "web"}


def _latest_document(session: Session, action, kinds) -> Document | None:
    """The newest DOCX of these kinds for the cycle (columns only: the bytes stay in the database); the
    XLSX made beside it is not the one to show."""
    row = session.exec(select(Document.id, Document.kind, Document.filename, Document.revision, Document.checksum)
                       .where(Document.cycle_id == action.cycle.id, Document.kind.in_(list(kinds)),
                              Document.media_type == answers.DOCX)
                       .order_by(Document.revision.desc(), Document.id.desc())).first()
    return row


@lru_cache(maxsize=64)
def _table_of(checksum: str, content: bytes) -> tuple[tuple[str, ...], ...]:
    """The rows of the first table of a plan document (activities), read once per document version."""
    doc = DocxDocument(io.BytesIO(content))
    if not doc.tables:
        return ()
    return tuple(tuple(cell.text for cell in row.cells) for row in doc.tables[0].rows)


def _plan_table(session: Session, action, kinds) -> tuple[object, list, list]:
    """(document columns, header, rows) of the newest plan document, or the suggestions when none exists."""
    found = _latest_document(session, action, kinds)
    if found is not None:
        content = session.get(Document, found.id).content or b""
        try:
            table = _table_of(found.checksum, content)
        except Exception:  # noqa: BLE001 - a document we cannot read still downloads
            table = ()
        if table:
            return found, list(table[0]), [list(r) for r in table[1:]]
    return found, [], []


# ----------------------------------------------------------------------------- suggestions, comments


def show_respond(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    if ctx["definition"].response == "comment":
        document, header, rows = _plan_table(session, action, ("draft_plan", "work_plan"))
        ctx.update(document=document, header=header, rows=rows, mine=_own(session, action, "comment"),
                   editing=_editing(session, action, "comment", query))
        return _render("comments.html.j2", ctx, refused)
    lists = answers.answer_lists()
    ctx.update(mine=_own(session, action, "suggestion"), serves=lists["serves"], months=MONTHS,
               serves_names={s["key"]: (s["lo"], s["en"]) for s in lists["serves"]},
               editing=_editing(session, action, "suggestion", query))
    return _render("suggestions.html.j2", ctx, refused)


def _editing(session, action, kind, query) -> Response | None:
    if not query.get("edit", "").isdigit():
        return None
    row = session.get(Response, int(query["edit"]))
    if row is None or row.member_id != action.member.id or row.step_id != action.step.id or row.kind != kind:
        return None
    return row


def answer_respond(session, action, form, files):
    if action.definition.response == "comment":
        answers.record_comment(**_args(session, action), body=form.get("body", ""), activity=form.get("activity", ""),
                               comment_id=_id(form))
        return "saved", "comment"
    if form.get("op") == "withdraw":
        answers.withdraw_suggestion(**_args(session, action), suggestion_id=_id(form) or 0)
        return "withdrawn", "suggestion"
    answers.record_suggestion(
        **_args(session, action), title=form.get("title", ""), what=form.get("what", ""), why=form.get("why", ""),
        months=[_int(m, "month") for m in form.get("months", [])], lead=form.get("lead", ""),
        serves=form.get("serves", []), serves_other=form.get("serves_other", ""), suggestion_id=_id(form),
        receipt=True)
    return "saved", "suggestion"


# ----------------------------------------------------------------------------- meetings


def show_rsvp(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    mine = _own(session, action, "rsvp")
    ctx.update(mine=mine[-1] if mine else None, partstats=PARTSTATS)
    return _render("rsvp.html.j2", ctx, refused)


def answer_rsvp(session, action, form, files):
    answers.record_rsvp(**_args(session, action), partstat=form.get("partstat", ""), reason=form.get("reason", ""))
    return "saved", "rsvp"


def show_survey(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    mine = _own(session, action, "survey")
    ctx.update(mine=mine[0] if mine else None, questions=answers.answer_lists()["survey"])
    return _render("survey.html.j2", ctx, refused)


def answer_survey(session, action, form, files):
    scores = {q["key"]: form.get(f"score_{q['key']}") for q in answers.answer_lists()["survey"]}
    answers.record_survey(**_args(session, action), scores=scores, comment=form.get("comment", ""))
    return "saved", "survey"


def show_minutes(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    uploaded = session.exec(select(Response, Member).join(Member, Member.id == Response.member_id)
                            .where(Response.step_id == action.step.id, Response.kind == "minutes")
                            .order_by(Response.at)).all()
    ctx.update(uploaded=uploaded)
    return _render("minutes.html.j2", ctx, refused)


def answer_minutes(session, action, form, files):
    filename, content = files.get("file", ("", b""))
    answers.record_minutes(**_args(session, action), filename=filename, content=content)
    return "uploaded", "minutes"


# ----------------------------------------------------------------------------- secretariat, chairs, MPI


def show_checklist(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    ctx.update(done_lists=session.exec(select(Response, Member).join(Member, Member.id == Response.member_id)
                                       .where(Response.step_id == action.step.id, Response.kind == "checklist")
                                       .order_by(Response.at)).all())
    return _render("checklist.html.j2", ctx, refused)


def answer_checklist(session, action, form, files):
    answers.record_checklist(**_args(session, action), accepted=_int(form.get("accepted"), "accepted"),
                             merged=_int(form.get("merged"), "merged"),
                             rejected=_int(form.get("rejected"), "rejected"), note=form.get("note", ""))
    return "saved", "checklist"


def show_approve(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    # Their own decision, or the one their deputy (or, on a deputy's link, their approver) took first.
    decision = answers.decision_for(session, member_id=action.member.id, step_id=action.step.id, now=action.now)
    others = decision is not None and (decision.by_member_id or decision.member_id) != action.member.id
    ctx.update(decided_by=session.get(Member, decision.by_member_id or decision.member_id) if others else None,
               decided_for=session.get(Member, decision.member_id) if others and decision.by_member_id else None)
    document, header, rows = _plan_table(session, action, ("work_plan",))
    ctx.update(decision=decision, document=document, header=header, rows=rows, revision=action.cycle.plan_revision,
               revising=bool(action.step.data.get("awaiting_revision")))
    return _render("approve.html.j2", ctx, refused)


def answer_approve(session, action, form, files):
    answers.record_decision(**_args(session, action), decision=form.get("decision", ""), reason=form.get("reason", ""),
                            revision=action.revision)
    return "decided", "decision"


def show_receipt(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    mine = _own(session, action, "receipt")
    document, _, _ = _plan_table(session, action, ("work_plan",))
    ctx.update(mine=mine[0] if mine else None, document=document)
    return _render("receipt.html.j2", ctx, refused)


def answer_receipt(session, action, form, files):
    answers.record_receipt(**_args(session, action))
    return "confirmed", "receipt"


# ----------------------------------------------------------------------------- read-only


def show_documents(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    kinds = list(ctx["definition"].attachments) + ["agenda", "minutes"]
    ctx.update(documents=session.exec(
        select(Document.id, Document.kind, Document.filename, Document.revision, Document.created_at)
        .where(Document.cycle_id == action.cycle.id, Document.kind.in_(kinds))
        .order_by(Document.kind, Document.revision)).all())
    return _render("documents.html.j2", ctx, refused)


def show_status(session, action, csrf, query, refused=None):
    ctx = _context(session, action, csrf, query, refused)
    cs, step = CycleState(session, action.cycle), action.step
    expected, answered = handler_for(step.kind).progress(cs, step)
    late = [p for p in expected if p.member_id not in answered]
    decisions = session.exec(select(Decision, Member).join(Member, Member.id == Decision.member_id)
                             .where(Decision.step_id == step.id).order_by(Decision.at, Decision.id)).all()
    surveys = session.exec(select(Response.data).where(Response.step_id == step.id, Response.kind == "survey")).all()
    overall = [d["scores"]["overall"] for d in surveys if "overall" in d.get("scores", {})]
    ctx.update(expected=len(expected), answered=len(answered), late_people=late, decisions=decisions,
               surveys=len(surveys), satisfaction=round(100 * sum(overall) / (5 * len(overall))) if overall else None,
               rsvp=who_is_coming(session, step.id) if step.starts_at else {}, partstats=PARTSTATS,
               states=STATES)
    return _render("status.html.j2", ctx, refused)


PURPOSES = {
    "respond": Purpose(("collect",), show_respond, answer_respond),
    "rsvp": Purpose(("meeting", "review"), show_rsvp, answer_rsvp),
    "survey": Purpose(("meeting",), show_survey, answer_survey),
    "minutes": Purpose(("meeting",), show_minutes, answer_minutes),
    "checklist": Purpose(("review",), show_checklist, answer_checklist),
    "approve": Purpose(("approval",), show_approve, answer_approve),
    "receipt": Purpose(("submit",), show_receipt, answer_receipt),
    "documents": Purpose(ALL_KINDS, show_documents),
    "status": Purpose(ALL_KINDS, show_status),
}
