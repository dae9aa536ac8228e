"""`roundtable serve`: everything on one machine in one process.

The web app (roundtable.web.app:create_app when it is installed, always with /healthz and /metrics),
APScheduler waking the tick at the next due moment and sweeping every few minutes, and the mailbox
poll when IMAP is configured. SIGTERM/SIGINT: the tick stops after the message in flight (the rest
stay `ready` for the next start), the web server closes, the process exits within seconds.

Heavy modules (uvicorn, FastAPI, APScheduler, Prefect) are imported inside the command, so other
commands do not pay for them.
"""

from typing import Optional

import typer

STOP_WITHIN = 10.0  # seconds: the web server's graceful shutdown gets part of it


def register(root: typer.Typer) -> None:
    @root.command("serve")
    def serve_cmd(host: str = typer.Option("127.0.0.1", "--host", help="Address of the web app."),
                  port: int = typer.Option(8000, "--port", help="Port of the web app."),
                  web: bool = typer.Option(True, "--web/--no-web", help="Run the web app (default) or only the engine."),
                  sweep_minutes: float = typer.Option(5.0, "--sweep-minutes", min=0.05,
                                                      help="Tick at least this often."),
                  mail_seconds: float = typer.Option(60.0, "--mail-seconds", min=1,
                                                     help="Mailbox poll interval (when IMAP is configured)."),
                  use_prefect: bool = typer.Option(False, "--prefect",
                                                   help="Run each tick as a Prefect flow (ephemeral API)."),
                  max_seconds: Optional[float] = typer.Option(None, "--max-seconds", min=1,
                                                              help="Longest delivery per tick (default: all due).")):
        """Everything on one machine: the web app, the tick at each due moment, the mailbox poll."""
        from models.settings import secret_key_problems
        from roundtable.commands.common import database, fail, settings
        from roundtable.commands.cycle import engine_config

        engine_config()  # refuses to run without a secret key for the links
        problems = secret_key_problems(settings())
        if problems:  # a long-running server signs every link with it: other commands only warn
            fail("serve will not start: " + "; ".join(problems))
        Serve(database(), settings(), sweep_minutes=sweep_minutes, mail_seconds=mail_seconds,
              use_prefect=use_prefect, max_seconds=max_seconds).run(host if web else None, port)


class Serve:
    def __init__(self, engine, settings, *, sweep_minutes: float = 5.0, mail_seconds: float = 60.0,
                 use_prefect: bool = False, max_seconds: float | None = None):
        import logging
        import threading
        from datetime import timedelta

        from flows.scheduler import EmbeddedScheduler
        from roundtable.web.ops import Ops

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for noisy in ("apscheduler", "httpx"):  # "job executed" per wake; every Prefect API call
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self.log = logging.getLogger("roundtable.serve")
        self.engine, self.settings = engine, settings
        self.use_prefect, self.max_seconds = use_prefect, max_seconds
        self.stop = threading.Event()
        self.scheduler = EmbeddedScheduler(engine, self._tick, sweep=timedelta(minutes=sweep_minutes))
        self.ops = Ops(engine, next_wake=self.scheduler.next_wake, scheduler_running=lambda: self.scheduler.running)
        self.mail_seconds = mail_seconds
        self._server = None

    # -- the tick ---------------------------------------------------------------------------------
    def _sent(self, row, _path) -> None:
        self.ops.message_sent(row.kind, row.due_at)
        self.log.info("sent %s %s to %s", row.kind, row.key, row.recipient)

    def _tick(self, moment) -> None:
        import time

        from flows.delivery import tick_and_deliver

        started = time.monotonic()
        try:
            if self.use_prefect:
                from flows.prefect_flows import run_tick_flow

                summary = run_tick_flow(moment, stop=self.stop.is_set, on_sent=self._sent,
                                        max_seconds=self.max_seconds)
            else:
                summary = tick_and_deliver(self.engine, self.settings, moment, notice=self.log.info,
                                           stop=self.stop.is_set, on_sent=self._sent, max_seconds=self.max_seconds)
        except Exception as exc:
            self.ops.tick_failed(exc)
            raise
        self.ops.tick_done(summary, time.monotonic() - started)
        if summary["opened"] or summary["closed"]:
            self.log.info("opened %s; closed %s", ", ".join(summary["opened"]) or "-",
                          ", ".join(summary["closed"]) or "-")

    # -- the mailbox ------------------------------------------------------------------------------
    def _mail_poll(self):
        """flows.mail_in.fetch_once(engine, settings, now), when IMAP is configured."""
        if not self.settings.imap_host:
            self.log.info("mailbox poll off: ROUNDTABLE_IMAP_HOST is not set")
            return None
        from flows.mail_in import fetch_once

        def poll() -> None:
            from datetime import datetime, timezone

            try:
                found = fetch_once(self.engine, self.settings, datetime.now(timezone.utc))
            except Exception:  # noqa: BLE001 - the next poll tries again
                self.log.exception("mailbox poll failed")
                return
            if found["bounces"]:
                self.ops.bounces.inc(found["bounces"])
            if any(found["recorded"].values()):
                self.scheduler.wake_now()  # answers may settle a step: tick now, not at the sweep

        return poll

    # -- the web app ------------------------------------------------------------------------------
    def _app(self):
        from roundtable.web.app import create_app

        # An answer may settle a step or ask for a receipt: the tick runs now, not at the next sweep.
        app = create_app(engine=self.engine, on_answer=lambda *_: self.scheduler.wake_now())
        app.include_router(self.ops.router())
        return app

    # -- running ----------------------------------------------------------------------------------
    def _request_stop(self, *_args) -> None:
        if not self.stop.is_set():
            self.log.info("stopping: the message in flight goes out, the rest waits for the next start")
        self.stop.set()
        if self._server is not None:
            self._server.should_exit = True

    def run(self, host: str | None, port: int) -> None:
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request_stop)
        self.scheduler.start()
        poll = self._mail_poll()
        if poll is not None:
            self.scheduler.every(self.mail_seconds, poll, "mailbox")
        try:
            if host is None:
                self.log.info("roundtable serve: engine only (no web); SIGTERM or Ctrl-C stops it")
                while not self.stop.wait(1.0):
                    pass
            else:
                self._serve_web(host, port)
        finally:
            self.stop.set()
            self.scheduler.shutdown(wait=True)  # returns once a running tick stopped after its message
            self.log.info("stopped")

    def _serve_web(self, host: str, port: int) -> None:
        import uvicorn

        from roundtable.web.app import SERVER_OPTIONS

        outer = self

        class _Server(uvicorn.Server):
            def handle_exit(self, sig, frame):  # uvicorn's own SIGTERM/SIGINT handler
                outer._request_stop()
                super().handle_exit(sig, frame)

        config = uvicorn.Config(self._app(), host=host, port=port, log_level="info",
                                timeout_graceful_shutdown=STOP_WITHIN / 2, lifespan="on", **SERVER_OPTIONS)
        self._server = _Server(config)
        self.log.info("roundtable serve on http://%s:%d (/healthz, /metrics)", host, port)
        self._server.run()
