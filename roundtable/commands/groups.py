"""`roundtable groups load FILE`: create or update working groups from YAML."""

from pathlib import Path

import typer

from models.db import session_scope
from models.groups import InputFileError, load_groups
from roundtable.commands.common import console, database, err_console, fail

app = typer.Typer(no_args_is_help=True)


@app.command("load")
def load(file: Path = typer.Argument(..., help="A groups YAML file, e.g. examples/groups.yaml.")) -> None:
    """Create or update (by code) the working groups of FILE; on any error nothing is written."""
    engine = database()
    try:
        with session_scope(engine) as session:
            summary = load_groups(session, file)
    except InputFileError as exc:
        for line in exc.problems:
            err_console.print(line, markup=False)
        fail(f"{len(exc.problems)} problem(s) in {file}; nothing written")
    for label, codes in (("created", summary.created), ("updated", summary.updated), ("unchanged", summary.unchanged)):
        if codes:
            console.print(f"{label}: {', '.join(codes)}", markup=False)
