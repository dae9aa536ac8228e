"""The secretariat's desk: sign-in by a one-time link, the dashboard of a cycle, the review of the
suggestions into the plan, the plan's documents and revisions, and the calendar feeds over HTTP.

Sign-in: /login mails a link to an address that is secretariat, secretariat-head or chair of some
group (15 minutes, used once, confirmed by POST like every link); the POST sets a signed session
cookie (HttpOnly, SameSite=Lax, Secure when the base URL is https). No passwords. A person sees only
the cycles of their own groups; the secretariat acts, a chair views. Every change goes through
flows.plan / flows.desk / flows.answers (their checks, their audit rows, channel "web").
"""

import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from typing import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func
from sqlmodel import Session, select

from calendars.feeds import UnknownGroup, UnknownMember, group_feed, member_feed
from flows import desk, plan
from flows.answers import AnswerRefused, record_revision
from flows.desk import SIGN_IN_SALT, desk_roles, member_by_email, sign_in_link
from flows.documents import FORMATS, filename_for, plan_model, render
from flows.state import CycleState
from flows.steps import handler_for
from models.settings import get_settings
from models.tables import Cycle, Document, Member, Response as Answer, SignIn, Step, WorkingGroup
from notifications.outbox import enqueue_composed
from notifications.links import feed_token, feed_url, read_feed_token
from notifications.render import Rendered
from roundtable.web.forms import BadForm, read_form
from roundtable.web.pages import LINK_PROBLEMS, MONTHS, REFUSALS, STATES
from roundtable.web.render import Bi, page
from roundtable.web.security import Csrf

SIGN_IN_VALID = timedelta(minutes=15)
# Links mailed to one person within SIGN_IN_VALID: a form filled in again and again (by a script or a
# stranger who knows the address) must not flood a secretariat mailbox. Those before still work.
SIGN_IN_LINKS_AT_ONCE = 3
SESSION_HOURS = 12
COOKIE = "rt_desk"
ACTING_ROLES = ("secretariat-head", "secretariat")
OUTCOMES = {"accepted": ("ຮັບເອົາ", "accepted"), "merged": ("ລວມເຂົ້າກັບກິດຈະກຳອື່ນ", "merged"),
            "rejected": ("ປະຕິເສດ", "rejected")}
DONE = {"saved": ("ບັນທຶກແລ້ວ.", "Saved."),
        "sent": ("ສົ່ງລິ້ງເຂົ້າສູ່ລະບົບແລ້ວ (ຖ້າທີ່ຢູ່ນີ້ມີສິດ).",
                 "If this address may use the desk, a sign-in link is on its way."),
        "closed": ("ປິດການທົບທວນແລ້ວ.", "The review is closed."),
        "queued": ("ຈະສົ່ງຄືນໃໝ່.", "It will be sent again."),
        "uploaded": ("ອັບໂຫຼດແລ້ວ: ເອກະສານນີ້ຈະຖືກສົ່ງສໍາລັບສະບັບນີ້.",
                     "Uploaded: this document goes out for this revision."),
        "revised": ("ສົ່ງສະບັບປັບປຸງໄປຫາປະທານແລ້ວ.", "The revised plan goes to the chairs.")}
FORM_EXPIRED = ("ແບບຟອມໝົດອາຍຸ.", "This form has expired.")
EXTRA_REFUSALS = {
    "with-approvers": ("ແຜນຢູ່ກັບປະທານ ແລະ ປະທານຮ່ວມ: ຍັງແກ້ໄຂບໍ່ໄດ້.",
                       "The plan is with the chair and co-chairs: it cannot change now."),
    "approved": ("ແຜນໄດ້ຮັບການຮັບຮອງແລ້ວ.", "The plan is approved: it can no longer change."),
    "view-only": ("ທ່ານເບິ່ງໄດ້ເທົ່ານັ້ນ.", "You may view this desk, not change it."),
}


def register(app: FastAPI, *, engine, secret: str, clock: Callable[[], datetime], sender: str, base_url: str,
             on_answer: Callable[[int, str], None] | None = None) -> None:
    csrf = Csrf(secret)
    signer = URLSafeTimedSerializer(secret, salt=SIGN_IN_SALT)
    sessions = URLSafeTimedSerializer(secret, salt="roundtable.desk-session")
    secure = base_url.startswith("https://")
    zone = ZoneInfo(get_settings().timezone)  # the deployment's day, for who holds a role today

    def bi_for(member: Member | None) -> Bi:
        return Bi(english_first=bool(member and member.language == "en"))

    def refusal(exc: AnswerRefused) -> tuple:
        return (REFUSALS.get(exc.code) or EXTRA_REFUSALS.get(exc.code) or REFUSALS["invalid"], exc.message)

    # ------------------------------------------------------------------ who is at the desk
    def who(request: Request, session: Session) -> tuple[Member, SignIn] | None:
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            claims = sessions.loads(value, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return None
        signed_in = session.get(SignIn, claims.get("i"))
        member = session.get(Member, claims.get("m"))
        if signed_in is None or member is None or signed_in.member_id != member.id or signed_in.used_at is None:
            return None
        return member, signed_in

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def cycle_for(session: Session, member: Member, cycle_id: int) -> tuple[Cycle, bool] | None:
        """The cycle if the member may see it, and whether they may act on it."""
        cycle = session.get(Cycle, cycle_id)
        if cycle is None:
            return None
        roles = desk_roles(session, member.id, clock().astimezone(CycleState(session, cycle).zone).date())
        mine = roles.get(cycle.group_id)
        if not mine:
            return None
        return cycle, bool(mine & set(ACTING_ROLES))

    def no_document() -> HTMLResponse:
        return page("desk_refused.html.j2", {"bi": Bi(), "problem": ("ບໍ່ມີເອກະສານນີ້.", "No such document.")},
                    status=404)

    def forbidden(bi: Bi) -> HTMLResponse:
        return page("desk_refused.html.j2", {"bi": bi, "problem": ("ທ່ານບໍ່ມີສິດເຂົ້າເຖິງໜ້ານີ້.",
                                                                  "You may not see this desk.")}, status=403)

    # ------------------------------------------------------------------ sign-in
    @app.get("/login")
    def login_form(done: str = "") -> HTMLResponse:
        return page("desk_login.html.j2", {"bi": Bi(), "csrf": csrf.issue("login"), "done": DONE.get(done)})

    @app.post("/login")
    async def login_send(request: Request) -> Response:
        form = await request.form()
        if not csrf.valid("login", form.get("csrf")):
            return page("desk_refused.html.j2", {"bi": Bi(), "problem": FORM_EXPIRED}, status=403)
        email = str(form.get("email", ""))
        now = clock()
        with Session(engine) as session:
            member = member_by_email(session, email)
            if member is not None and desk_roles(session, member.id, now.astimezone(zone).date()) \
                    and _recent_links(session, member.id, now) < SIGN_IN_LINKS_AT_ONCE:
                link = sign_in_link(session, secret, base_url, member, now)
                _mail_link(session, member, link, now)
                session.commit()
        # The same answer either way: the page does not tell who may sign in, nor that a limit held one back.
        return RedirectResponse("/login?done=sent", status_code=303)

    def _recent_links(session: Session, member_id: int, now: datetime) -> int:
        return session.exec(select(func.count()).select_from(SignIn).where(
            SignIn.member_id == member_id, SignIn.channel == "mail", SignIn.issued_at > now - SIGN_IN_VALID)).one()

    def _mail_link(session: Session, member: Member, link: str, now: datetime) -> None:
        bi_en = member.language == "en"
        lines = (("ກົດລິ້ງນີ້ເພື່ອເຂົ້າສູ່ໂຕະເຮັດວຽກຂອງກອງເລຂາ (ໃຊ້ໄດ້ 15 ນາທີ, ຄັ້ງດຽວ):",
                  "Open this link to sign in to the secretariat's desk (valid 15 minutes, once):"))
        text_lo, text_en = lines
        body = f"{text_en}\n{link}\n\n{text_lo}\n{link}\n" if bi_en else f"{text_lo}\n{link}\n\n{text_en}\n{link}\n"
        html = (f"<p>{text_lo}</p><p><a href=\"{link}\">{link}</a></p><p lang=\"en\">{text_en}</p>")
        subject = "ເຂົ້າສູ່ລະບົບ — Sign in (Roundtable)"
        key = f"sign-in/{hashlib.sha256(link.encode()).hexdigest()[:24]}/m{member.id}"
        enqueue_composed(session, Rendered(subject=subject, text=body, html=html), key=key, sender=sender,
                         to=member.email, kind="sign_in", now=now, automatic=True, member_id=member.id, slot="")

    def _check_link(session: Session, token: str) -> tuple[SignIn, Member] | str:
        try:
            nonce = signer.loads(token, max_age=int(SIGN_IN_VALID.total_seconds()))["n"]
        except SignatureExpired:
            return "expired"
        except (BadSignature, KeyError, TypeError):
            return "invalid"
        row = session.exec(select(SignIn).where(SignIn.nonce == nonce)).first()
        if row is None:
            return "invalid"
        if row.used_at is not None:
            return "used"
        if clock() - row.issued_at > SIGN_IN_VALID:
            return "expired"
        return row, session.get(Member, row.member_id)

    LINK_TEXT = {"expired": ("ລິ້ງນີ້ໝົດອາຍຸແລ້ວ (15 ນາທີ). ກະລຸນາຂໍລິ້ງໃໝ່.",
                             "This link has expired (15 minutes). Please ask for a new one."),
                 "used": ("ລິ້ງນີ້ຖືກໃຊ້ແລ້ວ. ກະລຸນາຂໍລິ້ງໃໝ່.", "This link has been used. Please ask for a new one."),
                 "invalid": ("ລິ້ງນີ້ບໍ່ຖືກຕ້ອງ.", "This link is not valid.")}

    def link_refused(problem: str) -> HTMLResponse:
        return page("desk_refused.html.j2", {"bi": Bi(), "problem": LINK_TEXT[problem], "login": True},
                    status=410 if problem != "invalid" else 403)

    @app.get("/login/{token}")
    def login_confirm(token: str) -> HTMLResponse:
        with Session(engine) as session:
            checked = _check_link(session, token)
            if isinstance(checked, str):
                return link_refused(checked)
            _row, member = checked
            return page("desk_confirm.html.j2", {"bi": bi_for(member), "person": member, "csrf": csrf.issue(token),
                                                 "url": f"/login/{quote(token)}"})

    @app.post("/login/{token}")
    async def login_use(token: str, request: Request) -> Response:
        form = await request.form()
        if not csrf.valid(token, form.get("csrf")):
            return page("desk_refused.html.j2", {"bi": Bi(), "problem": FORM_EXPIRED, "login": True}, status=403)
        with Session(engine) as session:
            checked = _check_link(session, token)
            if isinstance(checked, str):
                return link_refused(checked)
            row, member = checked
            row.used_at = clock()
            session.add(row)
            session.commit()
            value = sessions.dumps({"m": member.id, "i": row.id})
        response = RedirectResponse("/desk", status_code=303)
        response.set_cookie(COOKIE, value, max_age=SESSION_HOURS * 3600, httponly=True, samesite="lax",
                            secure=secure, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        response = RedirectResponse("/login", status_code=303)
        if csrf.valid(request.cookies.get(COOKIE, ""), form.get("csrf")):
            response.delete_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ pages
    @app.get("/desk")
    def desk_home(request: Request) -> Response:
        with Session(engine) as session:
            found = who(request, session)
            if found is None:
                return to_login()
            member, _ = found
            roles = desk_roles(session, member.id, clock().astimezone(zone).date())
            cycles = session.exec(select(Cycle, WorkingGroup).join(WorkingGroup, WorkingGroup.id == Cycle.group_id)
                                  .where(Cycle.group_id.in_(list(roles) or [-1]))
                                  .order_by(Cycle.year.desc(), Cycle.id.desc())).all()
            return page("desk_home.html.j2", {"bi": bi_for(member), "member": member, "cycles": cycles,
                                              "roles": roles, "csrf": csrf.issue(request.cookies[COOKIE])})

    def with_cycle(request: Request, session: Session, cycle_id: int):
        found = who(request, session)
        if found is None:
            return to_login()
        member, _ = found
        allowed = cycle_for(session, member, cycle_id)
        if allowed is None:
            return forbidden(bi_for(member))
        cycle, acts = allowed
        return member, cycle, acts, CycleState(session, cycle)

    def view(request: Request, cycle_id: int, show: Callable) -> Response:
        """A GET of the desk for one cycle: `show(session, member, cycle, acts, cycle state)` once allowed."""
        with Session(engine) as session:
            got = with_cycle(request, session, cycle_id)
            return got if isinstance(got, Response) else show(session, *got)

    @app.get("/desk/{cycle_id}")
    def dashboard(cycle_id: int, request: Request, kind: str = "", to: str = "", done: str = "") -> Response:
        def show(session: Session, member, cycle, acts, cs) -> Response:
            now = clock()
            feeds_for = [(code, feed_url(base_url, feed_token(secret, group=code))) for code in cs.group_codes]
            return page("desk_cycle.html.j2", {
                "bi": bi_for(member), "member": member, "cycle": cycle, "group": cs.group, "acts": acts,
                "zone": cs.zone, "states": STATES, "timeline": desk.timeline(session, cycle),
                "outbox": desk.outbox(session, cycle.id, to), "to": to, "kind": kind,
                "audit": desk.audit_trail(session, cycle, now, kind, limit=100), "audit_kinds": desk.AUDIT_KINDS,
                "feeds": feeds_for, "my_feed": feed_url(base_url, feed_token(secret, member_id=member.id)),
                "csrf": csrf.issue(request.cookies[COOKIE]), "done": DONE.get(done)})
        return view(request, cycle_id, show)

    @app.get("/desk/{cycle_id}/audit.csv")
    def audit_csv(cycle_id: int, request: Request, kind: str = "") -> Response:
        def show(session: Session, _member, cycle, _acts, cs) -> Response:
            text = desk.audit_csv(desk.audit_trail(session, cycle, clock(), kind), cs.zone)
            return _attachment(text.encode("utf-8-sig"), "text/csv; charset=utf-8",
                               f"{cs.group.code}-{cycle.year}-audit.csv")
        return view(request, cycle_id, show)

    def review_context(session: Session, member: Member, cycle: Cycle, acts: bool, cs: CycleState) -> dict:
        activities = plan.activities(session, cycle.id)
        comments = session.exec(select(Answer, Member).join(Member, Member.id == Answer.member_id)
                                .join(Step, Step.id == Answer.step_id)
                                .where(Step.cycle_id == cycle.id, Answer.kind == "comment")
                                .order_by(Answer.at)).all()
        by_activity: dict[int, list] = {a.id: [] for a in activities}
        general = []
        for comment, author in comments:
            target = (comment.data or {}).get("activity", "")
            match = next((a.id for a in activities if target and target in (a.title_lo, a.title_en,
                                                                           f"{a.title_lo} — {a.title_en}")), None)
            (by_activity[match] if match else general).append((comment, author))
        review = plan.review_step(cs)
        approval = plan.approval_step(cs)
        rejected = []
        if approval is not None:
            rejected = [d for d in handler_for("approval").decisions(cs, approval, cycle.plan_revision - 1)
                        if d.decision == "reject"] if approval.data.get("awaiting_revision") else []
        documents = session.exec(select(Document).where(Document.cycle_id == cycle.id,
                                                        Document.kind.in_(plan.PLAN_DOCUMENTS))
                                 .order_by(Document.revision, Document.id)).all()
        suggestions = plan.suggestions(session, cycle.id)
        return {"bi": bi_for(member), "member": member, "cycle": cycle, "group": cs.group, "acts": acts,
                "zone": cs.zone, "suggestions": suggestions, "activities": activities,
                "numbers": {a.id: n for n, a in enumerate(activities, start=1)},
                "counts": plan.counts_of(suggestions), "signed_off": plan.signed_off(session, cycle.id),
                "review": review, "states": STATES, "outcomes": OUTCOMES, "months": MONTHS,
                "groups": cs.group_codes, "serves": plan.reference(), "by_activity": by_activity, "general": general,
                "approval": approval, "rejected": [(d, session.get(Member, d.member_id)) for d in rejected],
                "documents": documents, "formats": list(FORMATS), "csrf": None}

    @app.get("/desk/{cycle_id}/plan")
    def review_page(cycle_id: int, request: Request, done: str = "") -> Response:
        def show(session: Session, member, cycle, acts, cs) -> Response:
            context = review_context(session, member, cycle, acts, cs)
            context.update(csrf=csrf.issue(request.cookies[COOKIE]), done=DONE.get(done))
            return page("desk_plan.html.j2", context)
        return view(request, cycle_id, show)

    async def act(request: Request, cycle_id: int, change: Callable, back: str = "plan", done: str = "saved",
                  anchor: str = ""):
        """A POST of the desk: signed in, allowed to act on this cycle, CSRF; then `change(session, member,
        cycle, form, files)` through flows (a refusal shows the page again with the reason, nothing kept)."""
        try:
            form, files = await read_form(request, {"serves"})
        except BadForm:
            return page("desk_refused.html.j2", {"bi": Bi(), "problem": LINK_PROBLEMS["bad-form"]}, status=400)
        with Session(engine, expire_on_commit=False) as session:
            got = with_cycle(request, session, cycle_id)
            if isinstance(got, Response):
                return got
            member, cycle, acts, cs = got
            if not csrf.valid(request.cookies.get(COOKIE, ""), form.get("csrf")):
                return page("desk_refused.html.j2", {"bi": bi_for(member), "problem": (
                    "ແບບຟອມໝົດອາຍຸ. ກະລຸນາໂຫຼດໜ້າຄືນ. ບໍ່ມີຫຍັງຖືກບັນທຶກ.",
                    "This form has expired. Please reload the page. Nothing was recorded.")}, status=403)
            try:
                if not acts:
                    raise AnswerRefused("view-only", "a chair views the desk; the secretariat acts")
                step_id = change(session, member, cycle, form, files)
                session.commit()
            except AnswerRefused as refused:
                session.rollback()
                if back == "plan":
                    context = review_context(session, member, cycle, acts, CycleState(session, cycle))
                    context.update(csrf=csrf.issue(request.cookies[COOKIE]), refused=refusal(refused))
                    return page("desk_plan.html.j2", context, status=409)
                return page("desk_refused.html.j2", {"bi": bi_for(member), "problem": refusal(refused)[0],
                                                     "detail": refused.message}, status=409)
        if on_answer is not None and step_id:
            on_answer(step_id, "desk")
        return RedirectResponse(f"/desk/{cycle_id}{'/plan' if back == 'plan' else ''}?done={done}{anchor}",
                                status_code=303)

    def values_from(form: dict) -> plan.ActivityFields:
        return plan.ActivityFields(
            title_lo=form.get("title_lo", ""), title_en=form.get("title_en", ""),
            start_month=form.get("start_month") or 1, end_month=form.get("end_month") or None,
            group_code=form.get("group_code", ""), lead=form.get("lead", ""), serves=tuple(form.get("serves", [])),
            serves_other=form.get("serves_other", ""), meeting=form.get("meeting") == "on",
            budget=form.get("budget") or None, currency=form.get("currency") or "USD",
            budget_source=form.get("budget_source", ""))

    def _int(value) -> int | None:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    @app.post("/desk/{cycle_id}/dispose/{suggestion_id}")
    async def dispose(cycle_id: int, suggestion_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, _files):
            outcome = form.get("outcome", "")
            values = None
            if outcome == "accepted" and (form.get("title_lo") or form.get("title_en")):
                values = values_from(form)
            row = plan.dispose(session, member_id=member.id, suggestion_id=suggestion_id, now=clock(), channel="web",
                               outcome=outcome, reason=form.get("reason", ""), values=values,
                               into=_int(form.get("into")))
            if row.cycle_id != cycle.id:
                raise AnswerRefused("invalid", "this suggestion belongs to another cycle")
            return None
        return await act(request, cycle_id, change, anchor=f"#s{suggestion_id}")  # back where the reader was

    @app.post("/desk/{cycle_id}/activities")
    async def add(cycle_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, _files):
            plan.add_activity(session, member_id=member.id, cycle_id=cycle.id, now=clock(), channel="web",
                              values=values_from(form))
        return await act(request, cycle_id, change)

    @app.post("/desk/{cycle_id}/activities/{activity_id}")
    async def edit(cycle_id: int, activity_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, _files):
            found = session.get(plan.PlanActivity, activity_id)
            if found is None or found.cycle_id != cycle.id:
                raise AnswerRefused("invalid", f"no activity {activity_id} in this cycle")
            remove = form.get("remove") == "1"
            plan.edit_activity(session, member_id=member.id, activity_id=activity_id, now=clock(), channel="web",
                               values=None if remove else values_from(form), remove=remove)
        return await act(request, cycle_id, change)

    @app.post("/desk/{cycle_id}/close-review")
    async def close(cycle_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, _files):
            signed = plan.close_review(session, member_id=member.id, cycle_id=cycle.id, now=clock(), channel="web",
                                       note=form.get("note", ""))
            return signed.row.step_id
        return await act(request, cycle_id, change, done="closed")

    @app.post("/desk/{cycle_id}/upload")
    async def upload(cycle_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, files):
            filename, content = files.get("document", ("", b""))
            plan.upload_document(session, member_id=member.id, cycle_id=cycle.id, now=clock(), channel="web",
                                 kind=form.get("kind", "work_plan"), filename=filename, content=content)
        return await act(request, cycle_id, change, done="uploaded")

    @app.post("/desk/{cycle_id}/send-revision")
    async def send_revision(cycle_id: int, request: Request) -> Response:
        def change(session, member, cycle, form, _files):
            approval = plan.approval_step(CycleState(session, cycle))
            if approval is None:
                raise AnswerRefused("wrong-step", "this cycle has no approval")
            record_revision(session=session, member_id=member.id, step_id=approval.id, now=clock(), channel="web",
                            revision=cycle.plan_revision, note=form.get("note", ""))
            return approval.id
        return await act(request, cycle_id, change, done="revised")

    @app.post("/desk/{cycle_id}/outbox/{notification_id}/{what}")
    async def outbox_action(cycle_id: int, notification_id: int, what: str, request: Request) -> Response:
        def change(session, member, cycle, _form, _files):
            if what not in ("retry", "resend"):
                raise AnswerRefused("invalid", f"unknown action {what!r}")
            desk.retry(session, member_id=member.id, cycle_id=cycle.id, notification_id=notification_id, now=clock(),
                       channel="web", resend=what == "resend")
        return await act(request, cycle_id, change, back="dashboard", done="queued")

    @app.post("/desk/{cycle_id}/steps/{step_id}/{what}")
    async def reminders(cycle_id: int, step_id: int, what: str, request: Request) -> Response:
        def change(session, member, cycle, _form, _files):
            step = session.get(Step, step_id)
            if step is None or step.cycle_id != cycle.id or what not in ("pause", "resume"):
                raise AnswerRefused("invalid", "no such step or action")
            desk.pause_reminders(session, member_id=member.id, step_id=step_id, now=clock(), channel="web",
                                 paused=what == "pause")
        return await act(request, cycle_id, change, back="dashboard")

    @app.get("/desk/{cycle_id}/export.{fmt}")
    def export(cycle_id: int, fmt: str, request: Request, kind: str = "work_plan") -> Response:
        def show(session: Session, _member, cycle, _acts, cs) -> Response:
            if fmt not in FORMATS or kind not in plan.PLAN_DOCUMENTS:
                return no_document()
            now = clock()
            content = render(plan_model(cs, kind, cycle.plan_revision, now), fmt, now)
            return _attachment(content, FORMATS[fmt], filename_for(cs, kind, cycle.plan_revision, fmt))
        return view(request, cycle_id, show)

    @app.get("/desk/{cycle_id}/documents/{document_id}")
    def stored(cycle_id: int, document_id: int, request: Request) -> Response:
        def show(session: Session, _member, _cycle, _acts, _cs) -> Response:
            document = session.get(Document, document_id)
            if document is None or document.cycle_id != cycle_id or document.content is None:
                return no_document()
            return _attachment(document.content, document.media_type, document.filename)
        return view(request, cycle_id, show)

    # ------------------------------------------------------------------ calendar feeds
    @app.get("/feeds/{token}.ics")
    def feed(token: str, request: Request) -> Response:
        try:
            claims = read_feed_token(secret, token)
        except BadSignature:
            return Response("not found\n", status_code=404, media_type="text/plain")
        with Session(engine) as session:
            try:
                if "g" in claims:
                    body = group_feed(session, claims["g"], clock())
                else:
                    member = session.get(Member, claims.get("m"))
                    if member is None:
                        raise UnknownMember(str(claims.get("m")))
                    body = member_feed(session, member.email, clock())
            except (UnknownGroup, UnknownMember):
                return Response("not found\n", status_code=404, media_type="text/plain")
        etag = '"' + hashlib.sha256(_stable(body)).hexdigest()[:32] + '"'
        headers = {"etag": etag, "cache-control": "private, max-age=300"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)


def _attachment(content: bytes, media_type: str, filename: str) -> Response:
    return Response(content, media_type=media_type, headers={
        "content-disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "cache-control": "no-store"})


def _stable(body: bytes) -> bytes:
    """The feed without its DTSTAMP lines (the moment it was made): the ETag changes with the entries only."""
    return b"\r\n".join(line for line in body.split(b"\r\n") if not line.startswith(b"DTSTAMP"))
