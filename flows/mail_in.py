"""Answers by mail: each inbound mail is read once, told apart, and recorded where it belongs.

- a reply to a call (matched by its reply address, else by In-Reply-To / References against the
  outbox's Message-IDs) -> one suggestion or comment, new text only;
- an iTIP REPLY -> an RSVP, only when it passes calendars.rsvp.check_reply (forgery checks);
- a reply to an approval request -> no decision (From can be forged): the approval request goes
  again to the member's roster address, with the confirm link, and the reply is kept;
- an auto-reply -> the person marked away; a delivery status notification -> the address marked
  bouncing (5.x.x) or deferred (4.x.x), the secretariat told once;
- anything else -> needs attention, the original kept.
Every answer goes through flows/answers.py with channel "mail".

`handle()` does one mail in the caller's transaction and remembers it (InboundMail) in that same
transaction, so a crash before the mail is moved never records it twice. `ingest_paths()` reads
.eml files, folders and Maildirs; `fetch_once()` reads an IMAP mailbox (the `serve` loop calls it).
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, Sequence

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from calendars.rsvp import check_reply, has_calendar, replies_in_message
from flows import answers
from flows.cycle import schedule_now
from flows.state import DEFAULT_SENDER, CycleState
from models.tables import AddressStatus, Cycle, InboundMail, Member, Notification, Step
from notifications.inbound import MAX_BYTES, Inbound, TooLarge, parse, read_limited
from notifications.inbound_address import is_reply_address, row_of
from notifications.kinds import kind_of
from notifications.outbox import FAILURE_REPORT, enqueue_composed, failure_report_context
from notifications.render import render_message

PROCESSED = "Processed"
NEEDS_ATTENTION = "Needs attention"
ANSWER_KINDS = ("suggestion", "comment", "rsvp")
# What a reply to each outbox kind may carry: the step's own answer (by the definition's `response`).
REPLYABLE = ("call", "reminder", "digest")


@dataclass(frozen=True)
class MailConfig:
    secret: str = ""
    reply_address: str | None = None  # replies@example.org: the mailbox `mail fetch` reads
    sender: str = DEFAULT_SENDER  # From of the notes we send the secretariat

    @classmethod
    def from_settings(cls, settings) -> "MailConfig":
        return cls(secret=settings.resolved_secret_key() or "", reply_address=settings.reply_address or None,
                   sender=settings.sender)


@dataclass
class Outcome:
    outcome: str  # suggestion | comment | rsvp | approval_reply | away | bounce | ignored | needs_attention
    reason: str = ""
    folder: str = PROCESSED
    repeated: bool = False  # this very IMAP message was handled before (a crash before the move)


@dataclass
class Summary:
    recorded: dict = field(default_factory=lambda: {kind: 0 for kind in ANSWER_KINDS})
    ignored: list = field(default_factory=list)
    bounces: int = 0
    away: int = 0
    needs_attention: int = 0

    def add(self, where: dict, outcome: Outcome) -> None:
        if outcome.outcome in ANSWER_KINDS:
            self.recorded[outcome.outcome] += 1
        elif outcome.outcome == "bounce":
            self.bounces += 1
        elif outcome.outcome == "away":
            self.away += 1
        else:
            self.ignored.append({**where, "reason": outcome.reason})
        if outcome.folder == NEEDS_ATTENTION and not outcome.repeated:
            self.needs_attention += 1

    def as_dict(self) -> dict:
        return {"recorded": dict(self.recorded), "ignored": list(self.ignored), "bounces": self.bounces,
                "away": self.away, "needs_attention": self.needs_attention}


class _Refused(Exception):
    def __init__(self, reason: str, folder: str = NEEDS_ATTENTION):
        super().__init__(reason)
        self.reason, self.folder = reason, folder


# -- one mail --------------------------------------------------------------------------------------


def handle(session: Session, raw: bytes, now: datetime, config: MailConfig, *, source: str, mailbox: str = "",
           uidvalidity: int | None = None, uid: int | None = None) -> Outcome:
    """Classify and record one mail; the InboundMail row is added in the same transaction (the caller
    commits). A mail already handled (same IMAP UID, or same Message-ID) records nothing again."""
    if uid is not None:
        seen = session.exec(select(InboundMail).where(InboundMail.mailbox == mailbox, InboundMail.uidvalidity
                                                      == uidvalidity, InboundMail.uid == uid)).first()
        if seen is not None:
            return Outcome("ignored", f"already handled at {seen.received_at.isoformat()} ({seen.outcome}); "
                                      f"moved now", seen.folder or PROCESSED, repeated=True)
    try:
        inbound = parse(raw)
    except Exception as exc:  # noqa: BLE001 - a mail the parser chokes on is kept for a person, never fatal
        inbound = Inbound(key="sha256:" + hashlib.sha256(raw).hexdigest(), message_id="", sender="", subject="",
                          recipients=[], references=[])
        outcome = Outcome("needs_attention", f"unreadable: {type(exc).__name__}", NEEDS_ATTENTION)
    else:
        earlier = session.exec(select(InboundMail).where(InboundMail.key == inbound.key)).first()
        if earlier is not None:
            outcome = Outcome("ignored", f"already handled ({inbound.key}, {earlier.outcome}, "
                                         f"{earlier.source or 'uid ' + str(earlier.uid)})", earlier.folder or PROCESSED)
        else:
            row = InboundMail(key=inbound.key, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, source=source,
                              sender=inbound.sender[:320], subject=inbound.subject[:500], received_at=now)
            session.add(row)
            session.flush()
            outcome = _classify(session, inbound, row, now, config, source)
            row.outcome, row.reason, row.folder = outcome.outcome, outcome.reason[:1000], outcome.folder
            return outcome
    if uid is not None:  # remember this UID too, so the next fetch only moves it
        session.add(InboundMail(key=inbound.key, mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, source=source,
                                sender=inbound.sender[:320], subject=inbound.subject[:500], outcome=outcome.outcome,
                                reason=outcome.reason[:1000], folder=outcome.folder, received_at=now))
    return outcome


def _classify(session: Session, inbound: Inbound, row: InboundMail, now: datetime, config: MailConfig,
              source: str) -> Outcome:
    try:
        if inbound.report:
            return _bounce(session, inbound, now, config)
        # A meeting reply before the auto-reply test (calendar servers may mark their replies automatic);
        # a calendar part that is no REPLY (an .ics the sender attached) leaves the mail a plain reply.
        replies = replies_in_message(inbound.message, source) if has_calendar(inbound.message) else []
        if any(not reply.problem for reply in replies):
            return _rsvp(session, inbound, row, now, replies)
        if inbound.auto_reply:
            return _away(session, inbound, now)
        return _reply(session, inbound, row, now, config)
    except _Refused as refused:
        return Outcome("needs_attention" if refused.folder == NEEDS_ATTENTION else "ignored", refused.reason,
                       refused.folder)


def _rsvp(session: Session, inbound: Inbound, row: InboundMail, now: datetime, replies: list) -> Outcome:
    if len({(r.uid, r.attendee_email) for r in replies}) > 1:  # several events or people in one mail
        raise _Refused(f"one mail answers for {len(replies)} ATTENDEEs or events; a reply may answer only "
                       f"for its sender", PROCESSED)
    reply = replies[0]
    checked = check_reply(session, reply, inbound.sender, now)
    if isinstance(checked, str):
        raise _Refused(checked, PROCESSED if not reply.problem else NEEDS_ATTENTION)
    step, member = checked
    _record(session, "rsvp", member_id=member.id, step_id=step.id, now=now, partstat=reply.partstat,
            sequence=reply.sequence, stamp=reply.stamp, comment=reply.comment, uid=reply.uid)
    row.member_id, row.step_id = member.id, step.id
    return Outcome("rsvp", f"{member.email} {reply.partstat}")


def _reply(session: Session, inbound: Inbound, row: InboundMail, now: datetime, config: MailConfig) -> Outcome:
    sent = _replied_to(session, inbound, config)
    member = session.get(Member, sent.member_id) if sent.member_id is not None else None
    step = session.get(Step, sent.step_id) if sent.step_id is not None else None
    row.notification_id, row.text = sent.id, inbound.text[:20000]
    if member is None or step is None:
        raise _Refused(f"a reply to a {sent.kind} message, which asks for no answer by mail")
    row.member_id, row.step_id = member.id, step.id
    if inbound.sender != member.email:
        raise _Refused(f"From {inbound.sender or '(none)'} is not {member.email}, to whom the {sent.kind} was sent")
    if step.kind == "approval":
        return _approval_reply(session, step, member, row, now)
    cycle = session.get(Cycle, step.cycle_id)
    kind = CycleState(session, cycle).step_def(step.key).response
    if sent.kind not in REPLYABLE or kind not in ("suggestion", "comment"):
        raise _Refused(f"a reply to a {sent.kind} message of {step.key}, which takes no answer by mail")
    if not inbound.text:
        raise _Refused("the reply holds no new text (only the quoted message)", PROCESSED)
    _record(session, kind, member_id=member.id, step_id=step.id, now=now, text=inbound.text)
    return Outcome(kind, f"{member.email}: {len(inbound.text)} characters")


def _replied_to(session: Session, inbound: Inbound, config: MailConfig) -> Notification:
    """The outbox row a reply answers: by its signed reply address, else by In-Reply-To / References."""
    if config.reply_address:
        ours = [address for address in inbound.recipients if is_reply_address(config.reply_address, address)]
        for address in ours:
            row_id = row_of(config.reply_address, config.secret, address)
            if row_id is not None and (found := session.get(Notification, row_id)) is not None:
                return found
        if any("+" in address for address in ours):
            raise _Refused(f"reply address {ours[0]} is not one we signed")
    if inbound.references:
        found = {n.message_id: n for n in session.exec(
            select(Notification).where(Notification.message_id.in_(inbound.references))).all()}
        for reference in inbound.references:  # In-Reply-To first, then the newest reference
            if reference in found:
                return found[reference]
    raise _Refused("not a reply to a message Roundtable sent (no reply address, In-Reply-To or References of ours)")


def _approval_reply(session: Session, step: Step, member: Member, row: InboundMail, now: datetime) -> Outcome:
    """A mail never decides (From can be forged): the approval request, with its confirm link, goes
    again to the member's roster address; the reply is kept for the secretariat."""
    if step.state != "open":
        raise _Refused(f"a reply to the approval request of {step.key}, which is {step.state}; kept for the "
                       f"secretariat")
    cs = CycleState(session, session.get(Cycle, step.cycle_id))
    schedule_now(cs, step, "approval_request", f"mail{row.id}", member, now, revision=cs.cycle.plan_revision)
    return Outcome("approval_reply", f"a mail decides nothing: the confirm link goes again to {member.email}; "
                                     f"the reply is kept for the secretariat", NEEDS_ATTENTION)


# -- auto-replies and bounces ----------------------------------------------------------------------


def _status_of(session: Session, address: str) -> AddressStatus:
    status = session.exec(select(AddressStatus).where(AddressStatus.email == address)).first()
    if status is None:
        status = AddressStatus(email=address)
        session.add(status)
    return status


def _away(session: Session, inbound: Inbound, now: datetime) -> Outcome:
    member = session.exec(select(Member).where(Member.email == inbound.sender)).first()
    if member is None:
        raise _Refused(f"an auto-reply ({inbound.auto_reply}) from {inbound.sender or 'no address'}, "
                       f"who is not in the roster", PROCESSED)
    status = _status_of(session, member.email)
    status.away, status.away_subject, status.away_at = True, inbound.subject[:300], now
    return Outcome("away", f"{member.email}: {inbound.auto_reply}")


def _bounce(session: Session, inbound: Inbound, now: datetime, config: MailConfig) -> Outcome:
    failing = [dsn for dsn in inbound.dsn if dsn.hard or dsn.soft]
    if not failing:
        actions = ", ".join(sorted({dsn.action or "none" for dsn in inbound.dsn})) or "no recipients"
        raise _Refused(f"a delivery report that reports no failure ({actions})", PROCESSED)
    for dsn in failing:
        status = _status_of(session, dsn.recipient)
        state = "bouncing" if dsn.hard else "deferred"
        if status.bounce == "bouncing" and state == "deferred":
            continue  # a late "delayed" notice does not make a dead address alive
        changed = status.bounce != state
        status.bounce, status.bounce_status, status.bounce_detail = state, dsn.status, dsn.diagnostic
        status.bounced_at = now
        if changed:
            session.flush()
            if _tell_secretariat(session, inbound, dsn, state, now, config):
                status.reported_at = now
    return Outcome("bounce", "; ".join(f"{d.recipient} {d.status or d.action}" for d in failing))


def _tell_secretariat(session: Session, inbound: Inbound, dsn, state: str, now: datetime, config: MailConfig) -> bool:
    """One failure report per address and state to the secretariat of the cycle the bounced mail was about."""
    references = [ref for ref in (inbound.original_message_id, *inbound.references) if ref]
    sent = None
    if references:
        sent = session.exec(select(Notification).where(Notification.message_id.in_(references))).first()
    if sent is None:
        sent = session.exec(select(Notification).where(func.lower(Notification.recipient) == dsn.recipient,
                                                       Notification.cycle_id.is_not(None))
                            .order_by(Notification.id.desc())).first()
    if sent is None or sent.cycle_id is None:
        return False
    cs = CycleState(session, session.get(Cycle, sent.cycle_id))
    secretariat = [person.email for person in cs.secretariat(now)]
    if not secretariat:
        return False
    key = f"bounce_report:{state}:{dsn.recipient}"[:255]
    context = failure_report_context(
        "", secretariat[0], {"code": cs.group.code, "name_lo": cs.group.name_lo, "name_en": cs.group.name_en},
        cs.cycle.year, cs.group.timezone,
        [{"recipient": dsn.recipient, "kind": sent.kind, "subject": sent.subject,
          "error": f"{dsn.status} {dsn.diagnostic}".strip()
                   + (" (deferred: the server still tries)" if state == "deferred" else "")}])
    return enqueue_composed(session, render_message(FAILURE_REPORT, context), key=key, sender=config.sender,
                            to=secretariat[0], cc=secretariat[1:], kind=FAILURE_REPORT, now=now,
                            automatic=kind_of(FAILURE_REPORT).automatic, cycle_id=cs.cycle.id,
                            context=context) is not None


# -- recording through the answers module ----------------------------------------------------------


def _record(session: Session, kind: str, *, member_id: int, step_id: int, now: datetime, **fields) -> None:
    """One answer through flows/answers.py (channel "mail"); a refusal keeps the mail for a person."""
    common = {"session": session, "member_id": member_id, "step_id": step_id, "now": now, "channel": "mail"}
    try:
        if kind == "suggestion":  # a mail has no form: its first line is the title, the whole text the what
            text = fields["text"]
            first = text.strip().split("\n", 1)[0].strip()
            answers.record_suggestion(**common, title=_cut(first, 300), what=_cut(text, answers.MAX_TEXT))
        elif kind == "comment":
            answers.record_comment(**common, body=_cut(fields["text"], answers.MAX_TEXT))
        else:
            stamp = fields.get("stamp")
            answers.record_rsvp(**common, partstat=fields["partstat"], reason=_cut(fields.get("comment", ""), 1000),
                                ical={"uid": fields.get("uid"), "sequence": fields.get("sequence", 0),
                                      "ical_stamp": stamp.isoformat() if stamp else None})
    except answers.AnswerRefused as refused:
        raise _Refused(f"refused ({refused.code}): {refused.message}") from None


def _cut(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- files and Maildirs ----------------------------------------------------------------------------


def _handle_apart(engine: Engine, raw: bytes, now: datetime, config: MailConfig, **where) -> Outcome:
    """`handle` in a transaction of its own. A mail that makes it fail is remembered as needing
    attention (so it is moved, not retried forever) and never stops the mails after it."""
    try:
        with Session(engine) as session:
            outcome = handle(session, raw, now, config, **where)
            session.commit()
            return outcome
    except Exception as exc:  # noqa: BLE001 - one bad mail must not block the mailbox
        outcome = Outcome("needs_attention", f"could not be handled: {type(exc).__name__}: {str(exc)[:200]}",
                          NEEDS_ATTENTION)
        with Session(engine) as session:
            session.add(InboundMail(key="sha256:" + hashlib.sha256(raw).hexdigest(), source=where["source"],
                                    mailbox=where.get("mailbox", ""), uidvalidity=where.get("uidvalidity"),
                                    uid=where.get("uid"), outcome=outcome.outcome, reason=outcome.reason,
                                    folder=outcome.folder, received_at=now))
            session.commit()
        return outcome


def message_files(paths: Sequence[Path]) -> Iterator[Path]:
    """Every mail in `paths`: files as given, a Maildir's new/ and cur/, a folder's .eml files."""
    for path in map(Path, paths):
        if (path / "cur").is_dir() or (path / "new").is_dir():
            for sub in ("new", "cur"):
                if (path / sub).is_dir():
                    yield from sorted(p for p in (path / sub).iterdir() if p.is_file())
        elif path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".eml", ".ics"))
        else:
            yield path  # a file, a device, or missing: read_limited says which


def ingest_paths(engine: Engine, paths: Sequence[Path], now: datetime, config: MailConfig) -> Summary:
    """Handle every mail in `paths`, each in its own transaction; files are left where they are."""
    summary = Summary()
    for path in message_files(paths):
        where = {"file": str(path)}
        try:
            raw = read_limited(path, MAX_BYTES)
        except (TooLarge, OSError) as exc:
            summary.add(where, Outcome("ignored", f"skipped: {exc.strerror if isinstance(exc, OSError) else exc}"))
            continue
        summary.add(where, _handle_apart(engine, raw, now, config, source=str(path)))
    return summary


# -- IMAP ------------------------------------------------------------------------------------------


def _connect(settings):
    """An IMAPClient logged in with the settings' host, port, TLS mode and credentials."""
    import ssl

    from imapclient import IMAPClient

    tls = str(getattr(settings.imap_tls, "value", settings.imap_tls))
    port = settings.imap_port or (993 if tls == "ssl" else 143)
    context = ssl.create_default_context(cafile=str(settings.imap_ca_file) if settings.imap_ca_file else None)
    client = IMAPClient(settings.imap_host, port=port, ssl=tls == "ssl", ssl_context=context, timeout=30)
    if tls == "starttls":
        client.starttls(context)
    password = settings.imap_password.get_secret_value() if settings.imap_password else ""
    client.login(settings.imap_user or "", password)
    return client


def fetch_once(engine: Engine, settings, now: datetime, *, move=None) -> dict:
    """Read every message in the folder once: handle it, commit, then move it to Processed or
    Needs attention. Returns the summary dict (`serve` calls this every minute).
    `move(client, uid, folder)` is replaceable for tests that crash between recording and moving."""
    if not settings.imap_host:  # no mailbox configured: nothing to read (serve may call this regardless)
        return Summary().as_dict()
    config = MailConfig.from_settings(settings)
    folder = settings.imap_folder or "INBOX"
    mailbox = f"imap://{settings.imap_user}@{settings.imap_host}:{settings.imap_port}/{folder}"
    summary = Summary()
    client = _connect(settings)
    try:
        for target in (PROCESSED, NEEDS_ATTENTION):
            if not client.folder_exists(target):
                client.create_folder(target)
        selected = client.select_folder(folder)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        uids = client.search(["ALL"])
        sizes = client.fetch(uids, ["RFC822.SIZE"]) if uids else {}
        for uid in uids:
            where = {"uid": uid}
            size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if size > MAX_BYTES:
                outcome = Outcome("ignored", f"skipped: {size} bytes, over the {MAX_BYTES // 2**20} MB limit",
                                  NEEDS_ATTENTION)
            else:
                raw = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]", b"")
                outcome = _handle_apart(engine, raw, now, config, source=f"uid {uid}", mailbox=mailbox,
                                        uidvalidity=uidvalidity, uid=uid)
            summary.add(where, outcome)
            (move or _move)(client, uid, outcome.folder)
            _mark_moved(engine, mailbox, uidvalidity, uid)
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the server may already have hung up
            pass
    return summary.as_dict()


def _move(client, uid: int, folder: str) -> None:
    if client.has_capability("MOVE"):
        client.move([uid], folder)
        return
    client.copy([uid], folder)  # servers without MOVE (RFC 6851): copy, flag deleted, expunge this UID only
    client.delete_messages([uid])
    if client.has_capability("UIDPLUS"):
        client.uid_expunge([uid])
    else:
        client.expunge()


def _mark_moved(engine: Engine, mailbox: str, uidvalidity: int, uid: int) -> None:
    with Session(engine) as session:
        for row in session.exec(select(InboundMail).where(InboundMail.mailbox == mailbox,
                                                          InboundMail.uidvalidity == uidvalidity,
                                                          InboundMail.uid == uid)).all():
            row.moved = True
        session.commit()

