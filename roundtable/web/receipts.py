"""The receipt a member gets by mail after filing or changing a suggestion: everything they have filed
for the step, so they hold a copy. Rendered here and put in the outbox ready to send."""

from datetime import datetime

from sqlmodel import Session

from flows.answers import answer_lists
from models.tables import Response
from roundtable.web.pages import OWN
from notifications.compose import build_message, message_id_for
from notifications.outbox import enqueue
from notifications.render import Rendered
from roundtable.web.render import ENVIRONMENT

KIND = "suggestion_receipt"


def enqueue_suggestion_receipt(session: Session, action, changed: Response) -> None:
    filed = session.exec(OWN, params={"step_id": action.step.id, "member_id": action.member.id,
                                      "kind": "suggestion"}).all()
    now: datetime = action.now
    context = {"member": action.member, "group": action.group, "filed": filed, "english_first":
               action.member.language == "en", "serves": {s["key"]: s for s in answer_lists()["serves"]},
               "link": f"{action.base_url}{action.url}"}
    subject = ("Your suggestions — ຂໍ້ສະເໜີຂອງທ່ານ" if context["english_first"]
               else "ຂໍ້ສະເໜີຂອງທ່ານ — Your suggestions") + f" ({action.group.code} {action.cycle.year})"
    rendered = Rendered(subject=subject,
                        text=ENVIRONMENT.get_template("mail/suggestion_receipt.txt.j2").render(context),
                        html=ENVIRONMENT.get_template("mail/suggestion_receipt.html.j2").render(context))
    # One receipt per filing: the moment tells them apart (a replayed form is refused before this).
    slot = f"{changed.id}-{now.strftime('%Y%m%dT%H%M%S%f')}"
    key = f"c{action.cycle.id}/{action.step.key}/{KIND}/{slot}/m{action.member.id}/r0"
    domain = action.sender.rpartition("@")[2].strip("> ") or "roundtable.local"
    message_id = message_id_for(key, domain)
    payload = build_message(rendered, sender=action.sender, to=[action.member.email], reply_to=None,
                            message_id=message_id, auto_submitted=True, date=now)
    enqueue(session, payload=payload, key=key, cycle_id=action.cycle.id, step_id=action.step.id,
            step_key=action.step.key, member_id=action.member.id, recipient=action.member.email, kind=KIND,
            slot=slot, state="ready", due_at=now, next_attempt_at=now, message_id=message_id, subject=subject,
            created_at=now)
