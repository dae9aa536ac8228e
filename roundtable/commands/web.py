"""`roundtable web`: the pages behind every link in the mail (roundtable.web.app)."""

from typing import Optional

import typer

from roundtable.commands.common import database, fail, local_moment


def register(root: typer.Typer) -> None:
    @root.command("web")
    def web_cmd(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=1, max=65535),
        now: Optional[str] = typer.Option(None, "--now", help="Serve as if it were this moment (ISO 8601; "
                                          "for a simulated cycle). Default: the real time."),
    ):
        """Serve the action pages (answers, RSVPs, approvals) the mail links point to."""
        import uvicorn

        from roundtable.web.app import create_app

        clock = None
        if now:
            moment = local_moment(now, "--now")
            clock = lambda: moment  # noqa: E731
        engine = database()
        try:
            app = create_app(engine=engine, clock=clock)
        except ValueError as exc:
            fail(str(exc))
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, server_header=False)
