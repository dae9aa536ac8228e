"""The web app behind every link in the mail: `/action/<purpose>.<signed token>`.

GET only shows (mail scanners open every link); a POST with the page's CSRF token answers, through
flows.answers. A link is bound to member + step + purpose + plan revision and lasts until the step
closes plus a grace period. `create_app()` is what `roundtable web` runs and `serve` mounts.
"""

from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import bindparam
from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from flows.answers import AnswerRefused
from flows.state import KNOWN_DEFINITIONS
from models.db import BackgroundCheckpoints, make_engine
from models.definition import CycleDefinition, StepDef
from models.settings import get_settings, secret_for
from models.tables import Cycle, Document, Member, Step, WorkingGroup
from notifications.links import ActionLinkError, verify_action
from roundtable.web import desk, pages
from roundtable.web.forms import BadForm, read_form
from roundtable.web.render import Bi, page
from roundtable.web.security import Csrf, Guard, redact_access_log

STATIC = Path(__file__).with_name("static")
GRACE = timedelta(days=14)  # a link outlives its step's close by this much (to show what was decided)
LINK_MAX_AGE = timedelta(days=730)  # the signature's own limit; the step's close is the real one
# Purposes signed before the kinds registry (issue 9): read as their successors.
ALIASES = {"meeting": "rsvp", "review": "checklist", "task": "status"}
# How uvicorn runs the app (`roundtable web`, `serve`, bench/bench_web.py): httptools' parser (a dependency: h11's
# costs ~0.1 ms a request), asyncio's loop even where uvloop is installed (at 50 clients uvloop answered some
# connections ten times later than the rest: p99 590 ms against 53 ms), no trust in X-Forwarded-* headers and
# no Server header.
SERVER_OPTIONS = {"loop": "asyncio", "http": "httptools", "proxy_headers": False, "server_header": False}


@dataclass
class Action:
    """A link that checked out: who, which step, for what."""

    token: str
    purpose: str
    revision: int
    member: Member
    step: Step
    cycle: Cycle
    group: WorkingGroup
    now: datetime
    sender: str
    base_url: str
    definition: StepDef  # the step's part of the cycle's definition

    @property
    def zone(self) -> str:
        return self.group.timezone

    @property
    def bi(self) -> Bi:
        return Bi(english_first=self.member.language == "en")

    @property
    def url(self) -> str:
        return f"/action/{self.token}"


# The person, the step, its cycle (its big definition left unread: the app keeps each cycle's parsed) and group:
# one query, built once (building a select with its joins costs more Python than SQLite takes to answer it).
_ACTION_ROWS = (select(Member, Step, Cycle, WorkingGroup).select_from(Step)
                .join(Cycle, Cycle.id == Step.cycle_id).join(WorkingGroup, WorkingGroup.id == Cycle.group_id)
                .join(Member, Member.id == bindparam("member_id")).where(Step.id == bindparam("step_id"))
                .options(defer(Cycle.definition)))


class LinkRefused(Exception):
    def __init__(self, code: str, status: int = 403):
        super().__init__(code)
        self.code, self.status = code, status


def create_app(*, engine: Engine | None = None, secret: str | None = None,
               clock: Callable[[], datetime] | None = None, grace: timedelta = GRACE,
               on_answer: Callable[[int, str], None] | None = None, sender: str | None = None,
               base_url: str | None = None) -> FastAPI:
    """The app. Defaults come from the settings (ROUNDTABLE_DATABASE_URL, the secret key).
    `clock` gives `now` (tests and served simulations pass their own); `on_answer(step_id, kind)` is
    called after an answer is committed (the scheduler wakes the tick with it)."""
    settings = get_settings()
    if engine is None:
        engine = make_engine(settings.database_url)
    secret = secret or secret_for(settings.database_url, settings.resolved_secret_key())
    if not secret:
        raise ValueError("no secret key: run `roundtable init` or set ROUNDTABLE_SECRET_KEY")
    clock = clock or (lambda: datetime.now(timezone.utc))
    sender, base_url = sender or settings.sender, (base_url or settings.base_url).rstrip("/")
    csrf = Csrf(secret)
    # A cycle's definition is a snapshot taken when it started: parsed once per cycle, not per request.
    definitions: dict[int, CycleDefinition] = {}
    # SQLite has one writer and a page is a few milliseconds of Python: run it on the event loop (no
    # thread hand-offs, no writers waiting on each other's locks); other databases use the thread pool.
    inline = engine.dialect.name == "sqlite"

    def definition_of(session: Session, cycle: Cycle) -> CycleDefinition:
        if cycle.id not in definitions:
            snapshot = session.get(Cycle, cycle.id).definition  # the deferred column, loaded once
            definitions[cycle.id] = CycleDefinition.model_validate(snapshot)
        return definitions[cycle.id]

    async def call(fn, *args):
        return fn(*args) if inline else await run_in_threadpool(fn, *args)

    checkpoints = BackgroundCheckpoints(engine) if inline else None

    @asynccontextmanager
    async def lifespan(_app):
        if checkpoints is not None:
            checkpoints.start()
        try:
            yield
        finally:
            if checkpoints is not None:
                checkpoints.stop()

    app = FastAPI(title="Roundtable", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.checkpoints = checkpoints
    app.add_middleware(Guard)
    redact_access_log()

    def resolve(session: Session, token: str) -> Action:
        now = clock()
        try:
            claims = verify_action(secret, token, max_age=LINK_MAX_AGE)
        except ActionLinkError as exc:
            raise LinkRefused("expired" if exc.reason == "expired" else "invalid") from None
        purpose = ALIASES.get(claims["purpose"], claims["purpose"])
        if purpose not in pages.PURPOSES:
            raise LinkRefused("invalid")
        found = session.exec(_ACTION_ROWS, params={"member_id": claims["member_id"],
                                                   "step_id": claims["step_id"]}).first()
        if found is None:
            raise LinkRefused("invalid")
        member, step, cycle, group = found
        if step.kind not in pages.PURPOSES[purpose].kinds:
            raise LinkRefused("wrong-purpose")
        closed = step.closed_at if step.state in ("closed", "done", "skipped") else None
        if cycle.state == "cancelled" or step.state == "skipped" or (closed and now > closed + grace):
            raise LinkRefused("expired", 410)
        if purpose == "approve" and claims["revision"] != cycle.plan_revision:
            raise LinkRefused("voided", 410)
        definition = definition_of(session, cycle)
        session.info[KNOWN_DEFINITIONS] = {cycle.id: definition}  # what flows.answers checks the audience with
        return Action(token, purpose, claims["revision"], member, step, cycle, group, now, sender, base_url,
                      definition.step(step.key))

    def refused_page(code: str, status: int) -> HTMLResponse:
        return page("refused.html.j2", {"bi": Bi(), "code": code, "problem": pages.LINK_PROBLEMS[code]},
                    status=status)

    def with_action(token: str, then: Callable[[Session, Action], Response]) -> Response:
        """`then(session, action)` for a link that checks out; the refusal page for one that does not."""
        with Session(engine, expire_on_commit=False) as session:
            try:
                action = resolve(session, token)
            except LinkRefused as refused:
                return refused_page(refused.code, refused.status)
            return then(session, action)

    def show(token: str, query: dict) -> Response:
        return with_action(token, lambda session, action: pages.PURPOSES[action.purpose].show(
            session, action, csrf.issue(token), query))

    def answer(token: str, form: dict, files: dict) -> Response:
        return with_action(token, lambda session, action: record(session, action, token, form, files))

    def record(session: Session, action: Action, token: str, form: dict, files: dict) -> Response:
        if not csrf.valid(token, form.get("csrf")):
            return refused_page("csrf", 403)
        handler = pages.PURPOSES[action.purpose]
        if handler.answer is None:
            return refused_page("read-only", 405)
        try:
            done, kind = handler.answer(session, action, form, files)
            session.commit()
        except AnswerRefused as refused:
            session.rollback()
            return handler.show(session, action, csrf.issue(token), {}, refused=refused)
        if on_answer is not None:
            on_answer(action.step.id, kind)
        return RedirectResponse(f"/action/{quote(token)}?done={done}", status_code=303)

    @app.get("/action/{token}")
    async def action_page(token: str, request: Request) -> Response:
        return await call(show, token, dict(request.query_params))

    @app.post("/action/{token}")
    async def action_post(token: str, request: Request) -> Response:
        try:
            form, files = await read_form(request, pages.MULTI)
        except BadForm:
            return refused_page("bad-form", 400)
        return await call(answer, token, form, files)

    @app.get("/action/{token}/file/{document_id}")
    def download(token: str, document_id: int) -> Response:
        return with_action(token, lambda session, action: document_file(session, action, document_id))

    def document_file(session: Session, action: Action, document_id: int) -> Response:
        document = session.get(Document, document_id)
        if document is None or document.cycle_id != action.cycle.id or document.content is None:
            return refused_page("no-document", 404)
        name = quote(document.filename or f"document-{document.id}")
        return Response(document.content, media_type=document.media_type,
                        headers={"content-disposition": f"attachment; filename*=UTF-8''{name}",
                                 "cache-control": "no-store"})

    @app.get("/static/style.css")
    def stylesheet() -> FileResponse:
        return FileResponse(STATIC / "style.css", media_type="text/css")

    @app.get("/")
    def home() -> HTMLResponse:
        return page("home.html.j2", {"bi": Bi()})

    desk.register(app, engine=engine, secret=secret, clock=clock, sender=sender, base_url=base_url,
                  on_answer=on_answer)
    return app
