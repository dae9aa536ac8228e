"""Ready outbox rows with small hand-made payloads (no templates): for delivery, serve and benchmarks."""

from datetime import datetime, timezone

from sqlmodel import Session

from notifications.outbox import enqueue

SENDER = "GSWG via Roundtable <roundtable@gswg.example.la>"


def payload(key: str, to: str) -> bytes:
    return (f"From: {SENDER}\r\nTo: {to}\r\nSubject: test {key}\r\nMessage-ID: <{key}@gswg.example.la>\r\n"
            f"X-Test-Key: {key}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Message {key}.\r\n").encode("ascii")


def enqueue_ready(engine, keys_and_due: list[tuple[str, datetime]], kind: str = "reminder") -> None:
    """One `ready` row per (key, due): deliverable from `due` on (next_attempt_at = due)."""
    with Session(engine) as session:
        for key, due in keys_and_due:
            to = f"{key.replace(':', '-')}@example.org"
            enqueue(session, key=key, recipient=to, kind=kind, state="ready", due_at=due, next_attempt_at=due,
                    created_at=datetime.now(timezone.utc), message_id=f"<{key}@gswg.example.la>",
                    subject=f"test {key}", payload=payload(key, to))
        session.commit()
