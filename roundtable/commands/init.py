"""`roundtable init`: create the secret key (once) and bring the database to the newest schema."""

import os
import secrets
from pathlib import Path

import typer

from roundtable.commands.common import console, database, fail, settings, shown_url

app = typer.Typer(no_args_is_help=True)


def ensure_secret_file(path: Path) -> bool:
    """Write a new random key to path (mode 0600) unless one is there. True when created."""
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # an empty key file is worthless; replace it
    # O_EXCL: never overwrite a key another process may have written meanwhile.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)  # whatever the umask
    return True


def init() -> None:
    """Create the secret key (unless ROUNDTABLE_SECRET_KEY or the key file exists) and upgrade the database."""
    config = settings()
    if config.secret_key is not None:
        console.print("secret key: taken from ROUNDTABLE_SECRET_KEY (no file written)", markup=False)
    else:
        path = config.secret_file.expanduser()
        if path.is_dir():
            fail(f"secret file {path} is a directory")
        try:
            created = ensure_secret_file(path)
        except OSError as exc:
            fail(f"cannot write the secret key to {path}: {exc.strerror or exc}")
        console.print(f"secret key: {'created' if created else 'kept the existing key in'} {path}", markup=False)
    database(config.database_url)
    console.print(f"database: {shown_url(config.database_url)} (schema up to date)", markup=False)
    console.print(
        "next steps:\n"
        "  roundtable groups load examples/groups.yaml\n"
        "  roundtable roster check examples/roster.csv\n"
        "  roundtable roster import examples/roster.csv",
        markup=False,
    )


def register(root: typer.Typer) -> None:
    """Adds `roundtable init` to the root app."""
    root.command("init")(init)
