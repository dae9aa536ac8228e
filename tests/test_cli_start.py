"""A quick CLI: `roundtable --help` imports no command module; a command imports only its own, and
nothing of Prefect, the web app or the scheduler unless it is `serve`."""

import os
import subprocess
import sys

import pytest
import typer
from sqlmodel import Session
from typer.core import TyperCommand, TyperGroup

from models.db import at_head, head_revision, make_engine, upgrade
from roundtable.cli import COMMANDS, load_command
from tests.engine_helpers import seed_people, start_gswg

HEAVY = ("prefect", "fastapi", "uvicorn", "apscheduler", "starlette")


def run_listing_modules(*args: str, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """`roundtable ARGS` run in a fresh interpreter, and the top-level packages it imported."""
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('MODULES', *sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr))\n"
            f"sys.argv = ['roundtable', *{list(args)!r}]\n"
            "from roundtable.cli import main\nmain()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=120)
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES"))
    return result, set(line.split()[1:])


def modules_after(*args: str, cwd) -> set[str]:
    return run_listing_modules(*args, cwd=cwd)[1]


def test_help_imports_no_command_module(tmp_path):
    loaded = modules_after("--help", cwd=tmp_path)
    assert not loaded & {"sqlmodel", "sqlalchemy", "flows", "notifications", "calendars", "models", *HEAVY}


@pytest.mark.parametrize("args", [("status",), ("tick", "--help"), ("roster", "--help")])
def test_commands_that_need_neither_prefect_nor_the_web_do_not_import_them(tmp_path, args):
    assert not modules_after(*args, cwd=tmp_path) & set(HEAVY)


# What `roundtable status` only reads, so need not import: templates and Lao dates (rendering), iCalendar, YAML.
NOT_FOR_STATUS = ("jinja2", "babel", "icalendar", "yaml", "rich")


def test_status_of_a_live_cycle_imports_nothing_of_rendering_or_parsing(tmp_path):
    """`status` is asked often and must answer in under half a second on a small machine (issue 13)."""
    engine = make_engine(os.environ["ROUNDTABLE_DATABASE_URL"])  # the one the command reads (conftest)
    upgrade(engine)
    with Session(engine) as session:
        seed_people(session)
        start_gswg(session)
    engine.dispose()
    result, loaded = run_listing_modules("status", cwd=tmp_path)
    assert result.returncode == 0 and "annual_review_meeting" in result.stdout, result.stderr
    assert not loaded & set(NOT_FOR_STATUS)


def test_status_keeps_a_typed_reason_on_its_line(capsys):
    from roundtable.commands.status import say

    say("      co-chair@example.org: reject (revision 1) Budget too high.\r\nSee annex\t[/b] 🙂 :smile:")
    assert capsys.readouterr().out == \
        "      co-chair@example.org: reject (revision 1) Budget too high. See annex [/b] 🙂 :smile:\n"


def test_the_table_says_what_each_command_says():
    for name, (_, _, help_text) in COMMANDS.items():
        command = load_command(name)
        assert isinstance(command, (TyperCommand, TyperGroup)) and command.name == name
        own = (command.help or "").strip().splitlines()[0] if command.help else ""
        assert own == help_text or name in ("groups", "roster", "calendar", "rsvp", "cycle"), (name, own)


def test_every_subcommand_is_reachable():
    from roundtable.cli import app

    group = typer.main.get_group(app)
    for name in COMMANDS:
        _, command, _ = group.resolve_command(group.make_context("roundtable", ["--help"], resilient_parsing=True),
                                              [name])
        assert command is group.commands[name]
        assert command.callback is not None or command.commands  # the real command, not the listing stand-in


def test_upgrade_is_skipped_at_head(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert head_revision() and not at_head(engine)
    upgrade(engine)
    assert at_head(engine)
    upgrade(engine)  # a no-op
