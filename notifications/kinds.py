"""Every kind of message, in one place: what the engine, the renderer and the composer need to know
about it. Anything that asks "which kind is this?" asks this registry, never a list of names.

A new kind is one `register(MessageKind(...))` call (here for the built-in kinds, or in the step-kind
module that sends it) and one template folder with subject.txt.j2, body.txt.j2 and body.html.j2.
tests/test_kinds.py fails when a kind lacks an entry, a template, a sample or a golden file.
"""

from dataclasses import dataclass
from pathlib import Path

from models.definition import LATE_POLICIES

TEMPLATES_DIR = Path(__file__).with_name("templates")
TEMPLATE_NAMES = ("subject.txt.j2", "body.txt.j2", "body.html.j2")
# The recipient's link is the step's own answer page (a call of a collect step: respond; of a review: checklist).
STEP_LINK = "step"
# Every purpose a link may carry: one page each in the web app.
LINK_PURPOSES = ("rsvp", "documents", "survey", "minutes", "checklist", "respond", "approve", "receipt", "status")
ADDRESSEES = ("audience", "secretariat", "escalation", "groups")


@dataclass(frozen=True)
class MessageKind:
    name: str
    late_policy: str = "send_late"  # after downtime: sent late, skipped once stale, or folded into a digest
    automatic: bool = False  # machine-made: Auto-Submitted: auto-generated, nobody should auto-reply (RFC 3834)
    link: str | None = None  # the purpose of the recipient's own link, STEP_LINK, or None (no link)
    deadline: str | None = None  # the step's time point the message states as the recipient's deadline
    deadline_event: bool = False  # carries that deadline as a calendar event (deadline.ics)
    attachments: bool = False  # carries the step's documents (the definition's `attachments`)
    invitation: str | None = None  # iTIP method of the meeting invitation it carries (REQUEST, CANCEL)
    templates: Path | None = None  # its folder; default notifications/templates/<name>
    # Who may still receive it on the day it goes out (one of ADDRESSEES): the step's audience, the group's
    # secretariat, the roles its escalation names, or anyone in the cycle's groups.
    addressed_to: str = "audience"

    @property
    def folder(self) -> Path:
        return self.templates or TEMPLATES_DIR / self.name


KINDS: dict[str, MessageKind] = {}


def register(kind: MessageKind) -> MessageKind:
    if kind.late_policy not in LATE_POLICIES:
        raise ValueError(f"message kind {kind.name!r}: late_policy must be one of {', '.join(LATE_POLICIES)}")
    if kind.link not in (None, STEP_LINK, *LINK_PURPOSES):
        raise ValueError(f"message kind {kind.name!r}: unknown link purpose {kind.link!r}")
    if kind.addressed_to not in ADDRESSEES:
        raise ValueError(f"message kind {kind.name!r}: addressed_to must be one of {', '.join(ADDRESSEES)}")
    if kind.deadline_event and not kind.deadline:
        raise ValueError(f"message kind {kind.name!r}: a deadline event needs the deadline it shows")
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def kind_of(name: str) -> MessageKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown message kind {name!r} (known: {', '.join(KINDS)})") from None


for _kind in (
    MessageKind("call", link=STEP_LINK, deadline="due", deadline_event=True, attachments=True),
    MessageKind("reminder", late_policy="fold", automatic=True, link=STEP_LINK, deadline="due"),
    MessageKind("digest", automatic=True, link=STEP_LINK),
    MessageKind("invite", link="rsvp", invitation="REQUEST"),
    MessageKind("update", link="rsvp", invitation="REQUEST"),
    MessageKind("cancel", invitation="CANCEL"),
    MessageKind("agenda", link="documents"),
    MessageKind("minutes_due", automatic=True, link="minutes", deadline="minutes_due", addressed_to="secretariat"),
    MessageKind("survey", late_policy="skip_if_stale", link="survey", deadline="survey_due"),
    MessageKind("task", automatic=True, link=STEP_LINK, deadline="due", deadline_event=True),
    MessageKind("approval_request", link="approve", deadline="due", deadline_event=True, attachments=True),
    MessageKind("decision_notice", link="status", addressed_to="secretariat"),
    MessageKind("revision_request", link="status", addressed_to="secretariat"),
    # A copy of what a member has filed in a collect step, after each filing on the web (flows/answers.py).
    MessageKind("suggestion_receipt", automatic=True, link=STEP_LINK, deadline="due"),
    # Each author, whatever their role: what the review made of their suggestions.
    MessageKind("review_outcome", automatic=True, addressed_to="groups"),
    MessageKind("escalation", late_policy="skip_if_stale", automatic=True, link="status", addressed_to="escalation"),
    MessageKind("submission", link="receipt", deadline="due", attachments=True),
    MessageKind("failure_report", automatic=True),
    MessageKind("step_blocked", automatic=True),  # a step the tick cannot go on with (flows/tick.py)
):
    register(_kind)
