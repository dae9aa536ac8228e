"""`roundtable web`: the pages behind every link in the mail and the secretariat's desk (roundtable.web.app);
`roundtable web login-link EMAIL`: a one-time sign-in link to the desk, for the first sign-in."""

import os
from typing import Optional
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from roundtable.commands.common import console, database, fail, parse_moment, secret_key, settings

_NOW = "ROUNDTABLE_WEB_NOW"  # --now, handed to the worker processes of --workers


def register(root: typer.Typer) -> None:
    web = typer.Typer(invoke_without_command=True)

    @web.callback()
    def web_cmd(
        ctx: typer.Context,
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
        now: Optional[str] = typer.Option(None, "--now", help="Serve as if it were this moment (ISO 8601; "
                                          "for a simulated cycle). Default: the real time."),
        workers: int = typer.Option(1, "--workers", min=1, max=32, help="Processes serving the pages (one per "
                                    "core; the database still takes one writer at a time)."),
    ):
        """Serve the action pages (answers, RSVPs, approvals) the mail links point to, and the desk."""
        if ctx.invoked_subcommand is not None:
            return
        import uvicorn

        if now is not None:
            parse_moment(now, "--now")  # a bad moment stops here, before any worker starts
        try:
            app = served_app(now)
        except ValueError as exc:
            fail(str(exc))
        from roundtable.web.app import SERVER_OPTIONS

        options = dict(host=host, port=port, log_level="info", **SERVER_OPTIONS)
        if workers == 1:
            uvicorn.run(app, **options)
            return
        # Each worker process builds its own app (and engine) from the same settings, through served_app.
        os.environ[_NOW] = now or ""
        uvicorn.run("roundtable.commands.web:worker_app", factory=True, workers=workers, **options)

    @web.command("login-link")
    def login_link(
        email: str = typer.Argument(..., help="An address that is secretariat, secretariat-head or chair of a group."),
        now: Optional[str] = typer.Option(None, "--now", help="Issue it as of this moment (a simulated cycle "
                                          "served with `roundtable web --now`)."),
    ):
        """Print a one-time link to sign in to the desk (valid 15 minutes, used once)."""
        from flows.desk import desk_roles, member_by_email, sign_in_link
        from models.settings import secret_for

        moment = parse_moment(now, "--now")
        secret = secret_for(settings().database_url, secret_key())
        if not secret:
            fail("no secret key: run `roundtable init` or set ROUNDTABLE_SECRET_KEY")
        with Session(database()) as session:
            member = member_by_email(session, email)
            if member is None:
                fail(f"{email}: no member with this address in the roster")
            if not desk_roles(session, member.id, moment.astimezone(ZoneInfo(settings().timezone)).date()):
                fail(f"{email}: not secretariat, secretariat-head or chair of any group")
            link = sign_in_link(session, secret, settings().base_url, member, moment, channel="cli")
            session.commit()
        console.print(link, markup=False, soft_wrap=True)

    root.add_typer(web, name="web", help="The web app: action pages and the secretariat's desk.")


def served_app(now: str | None):
    from roundtable.web.app import create_app

    clock = None
    if now:
        moment = parse_moment(now, "--now")
        clock = lambda: moment  # noqa: E731
    return create_app(engine=database(), clock=clock)


def worker_app():
    """The app of one `--workers` process (uvicorn calls this in each)."""
    return served_app(os.environ.get(_NOW) or None)
