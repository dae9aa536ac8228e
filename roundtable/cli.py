"""The `roundtable` command. Each command group lives in its own module under roundtable/commands/.

Commands are loaded lazily: `roundtable --help` lists them from the table below without importing
any command module, and `roundtable X` imports only X's module (SQLModel, Jinja2, Prefect, FastAPI…
cost seconds of CPU together on a small machine). tests/test_cli_start.py checks that the table's
help lines match the commands' own.
"""

import gc
import os
import sys

import typer
from typer.core import TyperCommand, TyperGroup

# name -> (module, attribute: a sub-app (typer.Typer) or None for a command the module's register() adds, help)
COMMANDS: dict[str, tuple[str, str | None, str]] = {
    "init": ("roundtable.commands.init", None,
             "Create the secret key (unless ROUNDTABLE_SECRET_KEY or the key file exists) and upgrade the database."),
    "groups": ("roundtable.commands.groups", "app", "Load working groups from YAML."),
    "roster": ("roundtable.commands.roster", "app", "Check and import member rosters (CSV or XLSX)."),
    "timeline": ("roundtable.commands.timeline", None,
                 "Show when each step of a cycle opens, is due, starts and ends, in the group's local time."),
    "cycle": ("roundtable.commands.cycle", "app", "Start a cycle, move its anchors."),
    "preview": ("roundtable.commands.cycle", None,
                "From now on: every message that will be sent, when, to how many (a dry run)."),
    "tick": ("roundtable.commands.cycle", None, "One tick of the engine, then delivery of everything due."),
    "status": ("roundtable.commands.status", None,
               "The current cycle: each step with state, times, expected and answered counts, decisions."),
    "serve": ("roundtable.commands.serve", None,
              "Everything on one machine: the web app, the tick at each due moment, the mailbox poll."),
    "calendar": ("roundtable.commands.calendar", "app", "Calendar feeds (.ics)."),
    "rsvp": ("roundtable.commands.rsvp", "app", "Meeting replies (an alias of `mail ingest`)."),
    "mail": ("roundtable.commands.mail", "app", "Answers by mail: fetch from IMAP, ingest files and Maildirs."),
    "web": ("roundtable.commands.web", None, "The web app: action pages and the secretariat's desk."),
    "plan": ("roundtable.commands.plan", "app", "The work plan: show it, export it (DOCX, XLSX)."),
    "simulate": ("roundtable.commands.simulate", None,
                 "Run a cycle on a fresh database in DIR/roundtable.db with a virtual clock."),
    "demo": ("roundtable.commands.simulate", None,
             "The seed cycle: gswg.yaml with the example roster, 2020 plan, annual meeting 2019-11-13."),
}

# Commands that read a little and exit. For them Python's garbage collector would only walk, again and again,
# the ~0.1 M objects their imports make, nearly none of them garbage (~0.04 s of `status`); commands that run
# long or make much garbage (serve, tick, simulate) keep it.
WITHOUT_GC = {"status"}


def load_command(name: str):
    """The click command of `name`, importing its module now."""
    import importlib

    module_name, attribute, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    if attribute is not None:
        group = typer.main.get_group(getattr(module, attribute))  # a group even with one command in it
        group.name, group.help = name, help_text
        return group
    holder = typer.Typer()
    module.register(holder)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """Lists COMMANDS by their help line; imports a command's module only when it is run."""

    def list_commands(self, ctx):
        return list(COMMANDS) + [name for name in super().list_commands(ctx) if name not in COMMANDS]

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name in COMMANDS:  # for the help listing: name and help, nothing imported
            return TyperCommand(name, help=COMMANDS[name][2], short_help=COMMANDS[name][2])
        return None

    def resolve_command(self, ctx, args):
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = load_command(args[0])
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    help="Roundtable: the annual planning cycle of a sector working group (Lao PDR Round Table Process).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: typer's rich help imports ~0.2 s of rich and markdown
)


@app.callback()
def _root() -> None:
    """Roundtable: the annual planning cycle of a sector working group (Lao PDR Round Table Process)."""


def main() -> None:
    # Lao text must print even where the locale says ASCII (CI, cron).
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and (stream.encoding or "").lower() not in ("utf-8", "utf8"):
            stream.reconfigure(encoding="utf-8")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if sys.argv[1:2] and sys.argv[1] in WITHOUT_GC:  # the command's name: the root group takes no options
        gc.disable()
    try:
        app()
    except Exception as exc:  # noqa: BLE001 - a database or file error ends as one line, not a traceback
        from roundtable.commands.common import fail_plainly  # its imports only on this path

        fail_plainly(exc)
    finally:
        # Python's last garbage collections at exit walk every object the imports made (SQLAlchemy, pydantic,
        # the models: ~0.09 s of `status`) only to free memory the OS takes back anyway. Frozen, they are skipped.
        gc.freeze()


if __name__ == "__main__":
    main()
