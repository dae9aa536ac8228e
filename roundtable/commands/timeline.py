import typer

app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Adds this module's top-level commands to the root app."""
