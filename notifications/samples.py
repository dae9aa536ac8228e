"""A fixed, complete template context for every kind: golden files, previews and the benchmark use it.

It has exactly the shape the engine passes (see render.py); the people are invented.
"""

from copy import deepcopy
from datetime import datetime
from zoneinfo import ZoneInfo

VIENTIANE = ZoneInfo("Asia/Vientiane")

_BASE = {
    "recipient": {"name": "Khamphone Sisavath", "email": "khamphone@example.org", "role": "member",
                  "role_lo": "ສະມາຊິກ", "role_en": "member", "language": "lo"},
    "group": {"code": "GSWG", "name_lo": "ໜ່ວຍງານດ້ານການປົກຄອງ", "name_en": "Governance Sector Working Group"},
    "year": 2020,
    "step": {
        "key": "call_for_suggestions", "kind": "collect",
        "title_lo": "ຂໍຄໍາເຫັນກ່ຽວກັບກິດຈະກຳປີໜ້າ", "title_en": "Suggested activities for next year",
        "opens_at": datetime(2019, 11, 1, 8, 0, tzinfo=VIENTIANE),
        "due_at": datetime(2019, 11, 8, 17, 0, tzinfo=VIENTIANE),
        "starts_at": None, "ends_at": None, "location": None,
    },
    "tz": "Asia/Vientiane",
    "link": "https://roundtable.example.org/action/call.TOKEN",
    "agenda": [],
    "extra": {},
}

_MEETING_STEP = {
    "key": "annual_review_meeting", "kind": "meeting",
    "title_lo": "ກອງປະຊຸມປະຈຳປີ", "title_en": "Annual Review Meeting",
    "opens_at": None, "due_at": None,
    "starts_at": datetime(2019, 11, 13, 8, 30, tzinfo=VIENTIANE),
    "ends_at": datetime(2019, 11, 13, 12, 0, tzinfo=VIENTIANE),
    "location": "ICTC, Vientiane",
}

_AGENDA = [
    {"time": "08:30", "title_lo": "ລົງທະບຽນ", "title_en": "Registration", "who_lo": "ທຸກທ່ານ", "who_en": "All participants"},
    {"time": "09:00", "title_lo": "ພາກກ່າວເປີດກອງປະຊຸມ", "title_en": "Opening session",
     "who_lo": "ປະທານ ແລະ ປະທານຮ່ວມ", "who_en": "Chair and co-chairs"},
    {"time": "10:00", "title_lo": "ພັກຜ່ອນດື່ມກາເຟ", "title_en": "Refreshment break", "who_lo": "", "who_en": ""},
    {"time": "10:15", "title_lo": "ສົນທະນາລວມ", "title_en": "Discussion", "who_lo": "ທຸກທ່ານ", "who_en": "All participants"},
    {"time": "11:45", "title_lo": "ພາກກ່າວປິດ", "title_en": "Closing session",
     "who_lo": "ປະທານ", "who_en": "Chair"},
]

_APPROVAL_STEP = {
    "key": "approval", "kind": "approval",
    "title_lo": "ການຮັບຮອງໂດຍປະທານ ແລະ ປະທານຮ່ວມ", "title_en": "Approval by the chair and co-chairs",
    "opens_at": datetime(2020, 2, 24, 8, 0, tzinfo=VIENTIANE),
    "due_at": datetime(2020, 3, 6, 17, 0, tzinfo=VIENTIANE),
    "starts_at": None, "ends_at": None, "location": None,
}

_SECRETARIAT = {"name": "GSWG Secretariat", "email": "secretariat@example.org", "role": "secretariat",
                "role_lo": "ກອງເລຂາ", "role_en": "secretariat", "language": "lo"}
_CHAIR = {"name": "Bounmy Phommachanh", "email": "chair@example.org", "role": "chair",
          "role_lo": "ປະທານ", "role_en": "chair", "language": "lo"}

# Per kind: what differs from the base context.
_VARIANTS = {
    "call": {},
    "reminder": {"extra": {"days_left": 3}},
    "digest": {"extra": {"missed": [
        {"title_lo": "ຂໍຄໍາເຫັນກ່ຽວກັບກິດຈະກຳປີໜ້າ", "title_en": "Suggested activities for next year",
         "due_at": datetime(2019, 11, 8, 17, 0, tzinfo=VIENTIANE)},
        {"title_lo": "ສົ່ງອີເມວຂໍຄໍາເຫັນກ່ຽວກັບຮ່າງແຜນ", "title_en": "Comments on the draft plan",
         "due_at": datetime(2020, 2, 14, 17, 0, tzinfo=VIENTIANE)},
    ]}},
    "invite": {"step": _MEETING_STEP, "agenda": _AGENDA},
    "update": {"step": _MEETING_STEP, "extra": {"changes": "ICTC, Vientiane → MoHA, meeting room 2"}},
    "cancel": {"step": _MEETING_STEP, "link": None},
    "agenda": {"step": _MEETING_STEP, "agenda": _AGENDA},
    "minutes_due": {"recipient": _SECRETARIAT, "step": {**_MEETING_STEP,
                    "due_at": datetime(2019, 11, 20, 17, 0, tzinfo=VIENTIANE)}},
    "survey": {"step": {**_MEETING_STEP, "due_at": datetime(2019, 11, 20, 17, 0, tzinfo=VIENTIANE)}},
    "task": {"recipient": _SECRETARIAT, "step": {
        "key": "secretariat_review", "kind": "review",
        "title_lo": "ກວດສອບຄໍາເຫັນ ໃຫ້ສອດຄ່ອງກັບຂໍ້ແນະນຳຂອງກອງປະຊຸມໂຕະມົນ",
        "title_en": "Review the suggestions against the Round Table recommendations",
        "opens_at": datetime(2020, 1, 6, 8, 0, tzinfo=VIENTIANE),
        "due_at": datetime(2020, 1, 31, 17, 0, tzinfo=VIENTIANE),
        "starts_at": None, "ends_at": None, "location": None}},
    "approval_request": {"recipient": _CHAIR, "step": _APPROVAL_STEP},
    "decision_notice": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "link": None, "extra": {
        "decision": "reject", "by": "Bounmy Phommachanh", "reason": "Activity 3 needs a budget line.",
        "outcome": "rejected"}},
    "revision_request": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "extra": {
        "by": "Bounmy Phommachanh", "reason": "Activity 3 needs a budget line."}},
    "escalation": {"recipient": _SECRETARIAT, "extra": {"late": [
        {"name": "Vilay Inthavong", "email": "vilay@example.org"},
        {"name": "Anna Berg", "email": "anna.berg@example.org"}], "late_count": 2}},
    "submission": {"recipient": {"name": "Department of International Cooperation", "email": "dic@example.org",
                                 "role": "mpi-focal", "role_lo": "ກະຊວງແຜນການ ແລະ ການລົງທຶນ",
                                 "role_en": "Ministry of Planning and Investment", "language": "lo"},
                   "step": {**_APPROVAL_STEP, "key": "submit_to_mpi", "kind": "submit",
                            "title_lo": "ສົ່ງແຜນວຽກປະຈຳປີ", "title_en": "Submission of the annual work plan"},
                   "extra": {"documents": ["GSWG_work_plan_2020.docx"]}},
    "step_blocked": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "link": None, "extra": {
        "reason": "nobody holds chair or co-chair in GSWG: there is nobody to ask for approval",
        "since": datetime(2020, 2, 24, 9, 0, tzinfo=VIENTIANE)}},
    "failure_report": {"recipient": _SECRETARIAT, "link": None, "extra": {"failures": [
        {"recipient": "nobody@example.org", "kind": "call", "subject": "[GSWG] ຂໍຄໍາເຫັນ — Call for input",
         "error": "550 5.1.1 mailbox unavailable"}]}},
}


def sample_context(kind: str, **overrides) -> dict:
    """A deep copy of the sample context for `kind`, with top-level fields replaced by `overrides`."""
    context = deepcopy(_BASE)
    context.update(deepcopy(_VARIANTS[kind]))
    context.update(overrides)
    return context
