"""`roundtable web`: the pages behind every link in the mail (roundtable.web.app)."""

import os
from typing import Optional

import typer

from roundtable.commands.common import database, fail, parse_moment

_NOW = "ROUNDTABLE_WEB_NOW"  # --now, handed to the worker processes of --workers


def register(root: typer.Typer) -> None:
    @root.command("web")
    def web_cmd(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
        now: Optional[str] = typer.Option(None, "--now", help="Serve as if it were this moment (ISO 8601; "
                                          "for a simulated cycle). Default: the real time."),
        workers: int = typer.Option(1, "--workers", min=1, max=32, help="Processes serving the pages (one per "
                                    "core; the database still takes one writer at a time)."),
    ):
        """Serve the action pages (answers, RSVPs, approvals) the mail links point to."""
        import uvicorn

        if now is not None:
            parse_moment(now, "--now")  # a bad moment stops here, before any worker starts
        try:
            app = served_app(now)
        except ValueError as exc:
            fail(str(exc))
        options = dict(host=host, port=port, log_level="info", proxy_headers=False, server_header=False)
        if workers == 1:
            uvicorn.run(app, **options)
            return
        # Each worker process builds its own app (and engine) from the same settings, through served_app.
        os.environ[_NOW] = now or ""
        uvicorn.run("roundtable.commands.web:worker_app", factory=True, workers=workers, **options)


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
