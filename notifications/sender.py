"""The sender's domain, in which Message-IDs and calendar UIDs are made.

A module of its own, without MIME composition or templates, so that the engine's state (flows/state.py)
knows its domain without importing Jinja2 and Babel: `roundtable status` stays quick (tests/test_cli_start.py).
"""

from email.utils import parseaddr


def sender_domain(sender: str) -> str:
    """The domain of a From address ("Name <a@example.org>" -> example.org): Message-IDs and UIDs are made in it."""
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"
