"""A cycle with the call open, an app on it with a settable clock, and signed links (tests of the web app)."""

import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from models.tables import AnswerAudit, Decision, Response, Step
from notifications.links import sign_action
from roundtable.web.app import create_app
from tests.engine_helpers import local, run, seed_people, start_gswg

SECRET = "web-test-secret"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class World:
    engine: object
    people: dict
    cycle_id: int
    steps: dict
    now: list = field(default_factory=lambda: [local(2019, 11, 4, 10, 0)])
    answered: list = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now[0]

    def app(self, **kwargs):
        return create_app(engine=self.engine, secret=SECRET, clock=self.clock,
                          on_answer=lambda step_id, kind: self.answered.append((step_id, kind)), **kwargs)

    def link(self, email: str, step_key: str, purpose: str, revision: int = 0) -> str:
        return "/action/" + sign_action(SECRET, member_id=self.people[email].id, step_id=self.steps[step_key],
                                        purpose=purpose, revision=revision)

    def tick(self, when: datetime) -> None:
        with Session(self.engine, expire_on_commit=False) as session:
            run(session, when)
            session.commit()

    def open_step(self, key: str, due: datetime | None = None) -> None:
        with Session(self.engine) as session:
            step = session.get(Step, self.steps[key])
            step.state = "open"
            if due is not None:
                step.due_at = due
            session.add(step)
            session.commit()

    def counts(self) -> tuple[int, int, int]:
        """(audit rows, responses, decisions): what a refused request must leave as it was."""
        with Session(self.engine) as session:
            return tuple(len(session.exec(select(table)).all()) for table in (AnswerAudit, Response, Decision))


def make_world(engine) -> World:
    with Session(engine, expire_on_commit=False) as session:
        people = seed_people(session)
        cycle = start_gswg(session)
        run(session, local(2019, 11, 1, 9, 0))  # the call for suggestions opens; the meeting invites go out
        session.commit()
        steps = {s.key: s.id for s in session.exec(select(Step).where(Step.cycle_id == cycle.id)).all()}
        return World(engine, people, cycle.id, steps)


def wait_until_serving(url: str, seconds: float = 20) -> None:
    """Until a server just started answers `url` (or `seconds` pass)."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answers at {url}")


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)
