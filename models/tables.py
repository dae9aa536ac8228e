"""The database tables. Every datetime column is UTCDateTime: aware in, UTC stored, aware out.

No `from __future__ import annotations` here: SQLModel relationships break under it.
"""

from datetime import date, datetime
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime

ROLES = ("chair", "co-chair", "secretariat-head", "secretariat", "member", "mpi-focal")
LANGUAGES = ("lo", "en")


def _utc(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(MutableDict.as_mutable(JSON), nullable=False))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(MutableList.as_mutable(JSON), nullable=False))


class WorkingGroup(SQLModel, table=True):
    __tablename__ = "working_group"
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=32)
    name_lo: str
    name_en: str
    parent_id: Optional[int] = Field(default=None, foreign_key="working_group.id")
    timezone: str = "Asia/Vientiane"
    # Decreed days off that the holidays package does not know (ISO dates).
    closed_days: list = _json_list()


class Member(SQLModel, table=True):
    __tablename__ = "member"
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str  # as the person writes it (in Lao for most members); never with a role in it
    name_en: str = ""  # in Latin letters, for the English part of a message ("" = as `name`)
    title: str = ""  # courtesy title: ທ່ານ, ທ່ານນາງ, Mr, Ms, Dr …
    email: str = Field(index=True, unique=True, max_length=320)  # stored lower-case
    organisation: str = ""
    language: str = "lo"


class Membership(SQLModel, table=True):
    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("member_id", "group_id", "role", "starts_on", name="uq_membership"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    group_id: int = Field(foreign_key="working_group.id", index=True)
    role: str
    starts_on: Optional[date] = None
    ends_on: Optional[date] = None  # exclusive; None = open-ended (co-chairs rotate)
    # The chair or co-chair of this group whom this person deputises for (roster column deputy_for):
    # the deputy gets their approval requests and may decide in their place.
    deputy_for_id: Optional[int] = Field(default=None, foreign_key="member.id")


class Cycle(SQLModel, table=True):
    __tablename__ = "cycle"
    id: Optional[int] = Field(default=None, primary_key=True)
    group_id: int = Field(foreign_key="working_group.id", index=True)
    year: int  # the planning year: the 2020 plan is prepared from November 2019
    state: str = "live"  # live | finished | cancelled
    anchors: dict = _json_dict()  # key -> ISO 8601 datetime with offset
    definition: dict = _json_dict()  # snapshot of the validated definition
    definition_path: str = ""
    plan_revision: int = 1  # raised when a chair rejects the plan
    created_at: Optional[datetime] = _utc(nullable=False)


class Step(SQLModel, table=True):
    __tablename__ = "step"
    __table_args__ = (UniqueConstraint("cycle_id", "key", name="uq_step_key"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    key: str
    kind: str
    position: int = 0
    state: str = "planned"  # planned | open | closed | done | skipped
    opens_at: Optional[datetime] = _utc()
    due_at: Optional[datetime] = _utc()
    starts_at: Optional[datetime] = _utc()
    ends_at: Optional[datetime] = _utc()
    opened_at: Optional[datetime] = _utc()
    closed_at: Optional[datetime] = _utc()
    outcome: str = ""  # e.g. approved / rejected / submitted
    data: dict = _json_dict()


class Response(SQLModel, table=True):
    __tablename__ = "response"
    id: Optional[int] = Field(default=None, primary_key=True)
    step_id: int = Field(foreign_key="step.id", index=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    kind: str  # suggestion | comment | rsvp | survey | minutes | checklist | receipt
    body: str = ""
    data: dict = _json_dict()
    at: Optional[datetime] = _utc(nullable=False)


class Decision(SQLModel, table=True):
    __tablename__ = "decision"
    __table_args__ = (UniqueConstraint("step_id", "member_id", "plan_revision", name="uq_decision_once"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    step_id: int = Field(foreign_key="step.id", index=True)
    member_id: int = Field(foreign_key="member.id")
    decision: str  # approve | reject
    reason: str = ""
    # member_id is the approver the decision counts for; by_member_id the deputy who took it in their
    # place (None: the approver themselves).
    by_member_id: Optional[int] = Field(default=None, foreign_key="member.id")
    plan_revision: int = 1
    at: Optional[datetime] = _utc(nullable=False)


class Notification(SQLModel, table=True):
    """The outbox. One row per message, unique by key; the Message-ID derives from the key.

    States: scheduled (planned, not yet rendered) -> ready (rendered, awaiting delivery)
    -> sending (claimed under a lease) -> sent | failed; or skipped / folded by the late policy.
    The message bytes live in NotificationPayload (notifications.outbox.store_payload / payload_of).
    """

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_state_due", "state", "due_at"),
        Index("ix_notification_state_next", "state", "next_attempt_at"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=255)
    cycle_id: Optional[int] = Field(default=None, foreign_key="cycle.id", index=True)
    step_id: Optional[int] = Field(default=None, foreign_key="step.id", index=True)
    step_key: str = ""
    member_id: Optional[int] = Field(default=None, foreign_key="member.id", index=True)
    recipient: str = ""  # the To address
    cc: list = _json_list()
    kind: str  # call | reminder | digest | invite | agenda | ... (one template folder each)
    slot: str = ""  # tells apart messages of one kind for one step and person (e.g. reminder offset)
    revision: int = 0
    policy: str = "send_late"  # send_late | skip_if_stale | fold
    state: str = "scheduled"
    due_at: Optional[datetime] = _utc(nullable=False)
    attempts: int = 0
    next_attempt_at: Optional[datetime] = _utc()
    lease_until: Optional[datetime] = _utc()
    last_error: str = ""
    message_id: str = ""
    subject: str = ""
    context: dict = _json_dict()
    created_at: Optional[datetime] = _utc(nullable=False)
    sent_at: Optional[datetime] = _utc()


class NotificationPayload(SQLModel, table=True):
    """The prepared bytes of a notification, apart from its row: claims and outcomes update the
    narrow outbox row many times, and a database rewrites a whole row (blob included) on UPDATE."""

    __tablename__ = "notification_payload"
    notification_id: int = Field(foreign_key="notification.id", primary_key=True)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CalendarEntry(SQLModel, table=True):
    __tablename__ = "calendar_entry"
    id: Optional[int] = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, max_length=255)  # stable across sends and feed regenerations
    cycle_id: Optional[int] = Field(default=None, foreign_key="cycle.id", index=True)
    step_id: Optional[int] = Field(default=None, foreign_key="step.id", index=True)
    kind: str = "meeting"  # meeting | deadline
    sequence: int = 0  # raised on every change
    cancelled: bool = False
    starts_at: Optional[datetime] = _utc()
    ends_at: Optional[datetime] = _utc()
    updated_at: Optional[datetime] = _utc()


class Document(SQLModel, table=True):
    __tablename__ = "document"
    id: Optional[int] = Field(default=None, primary_key=True)
    cycle_id: Optional[int] = Field(default=None, foreign_key="cycle.id", index=True)
    kind: str  # work_plan | agenda | minutes | progress_report | ...
    revision: int = 1
    checksum: str = ""  # sha256 of the content
    filename: str = ""
    media_type: str = "application/octet-stream"
    content: Optional[bytes] = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    path: str = ""
    source: str = "generated"  # generated | uploaded (a polished DOCX the secretariat put in its place)
    created_at: Optional[datetime] = _utc(nullable=False)


class InboundMail(SQLModel, table=True):
    """Every mail read from the mailbox or a file, remembered before it is moved, so none is handled twice.

    `key` is the Message-ID (or a digest of the bytes when it has none); `mailbox`, `uidvalidity`
    and `uid` say where IMAP had it. `outcome`: suggestion | comment | rsvp | approval_reply | away |
    bounce | ignored | needs_attention; `folder` is where it belongs (Processed / Needs attention).
    """

    __tablename__ = "inbound_mail"
    __table_args__ = (UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_inbound_uid"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    key: str = Field(index=True, max_length=255)
    mailbox: str = ""  # "imap://user@host/INBOX", or "" for files
    uidvalidity: Optional[int] = None
    uid: Optional[int] = None
    source: str = ""  # the file path, or "uid N"
    sender: str = ""  # the From address, lower-case
    subject: str = ""
    outcome: str = ""
    reason: str = ""
    folder: str = ""
    moved: bool = False
    member_id: Optional[int] = Field(default=None, foreign_key="member.id")
    step_id: Optional[int] = Field(default=None, foreign_key="step.id")
    notification_id: Optional[int] = Field(default=None, foreign_key="notification.id")
    text: str = ""  # the new text of a reply kept for the secretariat
    received_at: Optional[datetime] = _utc(nullable=False)


class AddressStatus(SQLModel, table=True):
    """What mail came back about an address: bouncing (5.x.x), deferred (4.x.x), or away (auto-reply).

    A bouncing address gets no further mail until the roster gives the member another address.
    """

    __tablename__ = "address_status"
    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)  # lower-case
    bounce: str = ""  # "" | bouncing | deferred
    bounce_status: str = ""  # the DSN status code, e.g. 5.1.1
    bounce_detail: str = ""  # the diagnostic, shortened
    bounced_at: Optional[datetime] = _utc()
    reported_at: Optional[datetime] = _utc()  # the secretariat was told (once per bounce state)
    away: bool = False
    away_subject: str = ""
    away_at: Optional[datetime] = _utc()


class OperatorAction(SQLModel, table=True):
    """What an operator did to a cycle (anchor moved, step dropped or reopened, cycle cancelled), for the
    audit trail beside the answers. Never updated."""

    __tablename__ = "operator_action"
    id: Optional[int] = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    at: Optional[datetime] = _utc(nullable=False)
    action: str  # anchor | drop | reopen | cancel
    detail: dict = _json_dict()


class AnswerAudit(SQLModel, table=True):
    """Who answered what, when and by which channel (web | mail | cli | simulator): one row per answer
    recorded, changed or withdrawn through flows.answers. Never updated."""

    __tablename__ = "answer_audit"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: Optional[datetime] = _utc(nullable=False)
    member_id: int = Field(foreign_key="member.id", index=True)
    step_id: int = Field(foreign_key="step.id", index=True)
    cycle_id: Optional[int] = Field(default=None, foreign_key="cycle.id")
    kind: str  # suggestion | comment | rsvp | survey | minutes | checklist | decision | revision | receipt
    action: str = "create"  # create | update | withdraw
    channel: str
    late: bool = False
    ref_id: Optional[int] = None  # the Response / Decision row
    detail: dict = _json_dict()


class PlanActivity(SQLModel, table=True):
    """One activity of a cycle's work plan (flows/plan.py): from an accepted suggestion, or added by the
    secretariat directly (most of the seed's 2020 plan). `removed` rows stay for the audit trail."""

    __tablename__ = "plan_activity"
    id: Optional[int] = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    position: int = 0  # order in the plan (the document numbers them 1, 2, …)
    title_lo: str = ""
    title_en: str = ""
    start_month: int = 1  # 1-12 of the plan year
    end_month: int = 1
    group_code: str = ""  # the responsible group: GSWG, PSI, LIO …
    lead: str = ""  # lead organisation
    serves: list = _json_list()  # keys of the reference list (flows/answer_lists.yaml: serves)
    serves_other: str = ""
    meeting: bool = False  # a meeting of the group (listed among the year's meetings too)
    budget: Optional[float] = None  # estimate, in `currency`
    currency: str = "USD"
    budget_source: str = ""
    origin: str = "direct"  # suggestion | direct
    revision: int = 1  # the plan revision in which it was last added or changed
    removed: bool = False
    created_at: Optional[datetime] = _utc(nullable=False)
    updated_at: Optional[datetime] = _utc(nullable=False)


class Disposition(SQLModel, table=True):
    """What the secretariat's review made of one suggestion: accepted (-> an activity), merged into
    another activity, or rejected with a reason its author is told. One per suggestion; a change replaces it."""

    __tablename__ = "disposition"
    id: Optional[int] = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="cycle.id", index=True)
    response_id: int = Field(foreign_key="response.id", unique=True)  # the suggestion
    outcome: str  # accepted | merged | rejected
    activity_id: Optional[int] = Field(default=None, foreign_key="plan_activity.id", index=True)
    reason: str = ""
    member_id: int = Field(foreign_key="member.id")  # who decided (secretariat)
    at: Optional[datetime] = _utc(nullable=False)


class SignIn(SQLModel, table=True):
    """A one-time sign-in link to the secretariat's desk (roundtable/web/desk.py): issued by mail or by
    `roundtable web login-link`, valid 15 minutes, used once; the session cookie names it."""

    __tablename__ = "sign_in"
    id: Optional[int] = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="member.id", index=True)
    nonce: str = Field(unique=True, max_length=64)
    channel: str = "mail"  # mail | cli
    issued_at: Optional[datetime] = _utc(nullable=False)
    used_at: Optional[datetime] = _utc()
