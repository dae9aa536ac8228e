"""A fixed, complete template context for every kind: golden files, previews and the benchmark use it.

It has exactly the shape the engine passes (see render.py); the people are invented.
"""

from copy import deepcopy
from datetime import datetime
from zoneinfo import ZoneInfo

VIENTIANE = ZoneInfo("Asia/Vientiane")

_BASE = {
    "recipient": {"name": "ຄຳພອນ ສີສະຫວາດ", "name_en": "Khamphone Sisavath", "email": "khamphone@example.org",
                  "title_lo": "ທ່ານ", "title_en": "Mr", "role": "member", "role_lo": "ສະມາຊິກ", "role_en": "Member",
                  "show_role_lo": True, "show_role_en": True, "language": "lo"},
    "group": {"code": "GSWG", "name_lo": "ໜ່ວຍງານດ້ານການປົກຄອງ", "name_en": "Governance Sector Working Group"},
    "year": 2020,
    "step": {
        "key": "call_for_suggestions", "kind": "collect",
        "title_lo": "ຂໍຄໍາເຫັນກ່ຽວກັບກິດຈະກຳປີໜ້າ", "title_en": "Suggested activities for next year",
        "short_lo": "ສະເໜີກິດຈະກຳ", "short_en": "Suggested activities",
        "ask_lo": "ສະເໜີກິດຈະກຳ ສຳລັບແຜນວຽກປີ 2020", "ask_en": "Suggest activities for the 2020 work plan",
        "opens_at": datetime(2019, 11, 1, 8, 0, tzinfo=VIENTIANE),
        "due_at": datetime(2019, 11, 8, 17, 0, tzinfo=VIENTIANE),
        "starts_at": None, "ends_at": None, "location_lo": None, "location_en": None,
    },
    "tz": "Asia/Vientiane",
    "link": "https://roundtable.example.org/action/respond.TOKEN",
    "feed": None,
    "agenda": [],
    "deadline": datetime(2019, 11, 8, 17, 0, tzinfo=VIENTIANE),
    "deadline_event": False,
    "attachments": [],
    "extra": {},
}

_MEETING_STEP = {
    "key": "annual_review_meeting", "kind": "meeting",
    "title_lo": "ກອງປະຊຸມປະຈຳປີ", "title_en": "Annual Review Meeting",
    "short_lo": "ກອງປະຊຸມປະຈຳປີ", "short_en": "Annual review meeting",
    "ask_lo": "ກອງປະຊຸມປະຈຳປີ", "ask_en": "Annual review meeting",
    "opens_at": None, "due_at": None,
    "starts_at": datetime(2019, 11, 13, 8, 30, tzinfo=VIENTIANE),
    "ends_at": datetime(2019, 11, 13, 12, 0, tzinfo=VIENTIANE),
    "location_lo": "ICTC (ຫຼັກ 5)", "location_en": "ICTC (Km 5), Vientiane",
    "minutes_due": datetime(2019, 11, 20, 17, 0, tzinfo=VIENTIANE),
    "survey_due": datetime(2019, 11, 20, 17, 0, tzinfo=VIENTIANE),
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
    "short_lo": "ແຜນວຽກ", "short_en": "Work plan",
    "ask_lo": "ຮັບຮອງແຜນວຽກປີ 2020", "ask_en": "Approve the 2020 work plan",
    "opens_at": datetime(2020, 2, 24, 8, 0, tzinfo=VIENTIANE),
    "due_at": datetime(2020, 3, 6, 17, 0, tzinfo=VIENTIANE),
    "starts_at": None, "ends_at": None, "location_lo": None, "location_en": None,
}

_SECRETARIAT = {"name": "ວິໄລວັນ ອິນທະວົງ", "name_en": "Vilayvanh Inthavong", "email": "secretariat@example.org",
                "title_lo": "ທ່ານນາງ", "title_en": "Ms", "role": "secretariat", "role_lo": "ກອງເລຂາ",
                "role_en": "Secretariat", "show_role_lo": True, "show_role_en": True, "language": "lo"}
_CHAIR = {"name": "ບຸນມີ ພົມມະຈັນ", "name_en": "Bounmy Phommachanh", "email": "chair@example.org",
          "title_lo": "ທ່ານ", "title_en": "Mr", "role": "chair", "role_lo": "ປະທານ", "role_en": "Chair",
          "show_role_lo": True, "show_role_en": True, "language": "lo"}
_CO_CHAIR_EN = {"name": "Anna Berg", "name_en": "Anna Berg", "email": "anna.berg@example.org",
                "title_lo": "ທ່ານນາງ", "title_en": "Ms", "role": "co-chair", "role_lo": "ປະທານຮ່ວມ",
                "role_en": "Co-chair", "show_role_lo": True, "show_role_en": True, "language": "en"}

# Per kind: what differs from the base context.
_VARIANTS = {
    "call": {"deadline_event": True},
    "reminder": {"extra": {"days_left": 3}},
    "digest": {"deadline": None, "extra": {"missed": [
        {"title_lo": "ສະເໜີກິດຈະກຳ", "title_en": "Suggested activities",
         "due_at": datetime(2019, 11, 8, 17, 0, tzinfo=VIENTIANE)},
        {"title_lo": "ຄໍາເຫັນຕໍ່ຮ່າງແຜນ", "title_en": "Comments on the draft plan",
         "due_at": datetime(2020, 2, 14, 17, 0, tzinfo=VIENTIANE)},
    ]}},
    "invite": {"step": _MEETING_STEP, "agenda": _AGENDA, "deadline": None,
               "link": "https://roundtable.example.org/action/rsvp.TOKEN",
               "feed": "webcal://roundtable.example.org/feeds/FEED-TOKEN.ics"},
    "update": {"step": _MEETING_STEP, "deadline": None, "link": "https://roundtable.example.org/action/rsvp.TOKEN",
               "feed": "webcal://roundtable.example.org/feeds/FEED-TOKEN.ics",
               "extra": {"changes": "2019-11-20 08:30–12:00 (UTC+0700)"}},
    "cancel": {"step": _MEETING_STEP, "link": None, "deadline": None},
    "agenda": {"step": _MEETING_STEP, "agenda": _AGENDA, "deadline": None,
               "link": "https://roundtable.example.org/action/documents.TOKEN"},
    "minutes_due": {"recipient": _SECRETARIAT, "step": _MEETING_STEP, "deadline": _MEETING_STEP["minutes_due"],
                    "link": "https://roundtable.example.org/action/minutes.TOKEN"},
    "survey": {"step": _MEETING_STEP, "deadline": _MEETING_STEP["survey_due"],
               "link": "https://roundtable.example.org/action/survey.TOKEN"},
    "task": {"recipient": _SECRETARIAT, "deadline_event": True,
             "deadline": datetime(2020, 1, 31, 17, 0, tzinfo=VIENTIANE),
             "link": "https://roundtable.example.org/action/checklist.TOKEN", "step": {
        "key": "secretariat_review", "kind": "review",
        "title_lo": "ກວດສອບຄໍາເຫັນ ໃຫ້ສອດຄ່ອງກັບຂໍ້ແນະນຳຂອງກອງປະຊຸມໂຕະມົນ",
        "title_en": "Review the suggestions against the Round Table recommendations",
        "short_lo": "ທົບທວນຮ່າງແຜນ", "short_en": "Review of the draft plan",
        "ask_lo": "ທົບທວນຄໍາສະເໜີ", "ask_en": "Review the suggestions",
        "opens_at": datetime(2020, 1, 6, 8, 0, tzinfo=VIENTIANE),
        "due_at": datetime(2020, 1, 31, 17, 0, tzinfo=VIENTIANE),
        "starts_at": None, "ends_at": None, "location_lo": None, "location_en": None}},
    "suggestion_receipt": {"extra": {"suggestions": [
        {"title": "ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ ຂັ້ນທ້ອງຖິ່ນ", "what": "ກອງປະຊຸມສອງມື້ ຢູ່ 3 ແຂວງ",
         "months_lo": "ມີນາ, ເມສາ", "months_en": "March, April", "lead": "ກະຊວງພາຍໃນ"},
        {"title": "Thematic workshop on the civil code", "what": "", "months_lo": "", "months_en": "",
         "lead": ""}]}},
    "review_outcome": {"deadline": None, "link": None, "extra": {"suggestions": [
        {"title": "ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ ຂັ້ນທ້ອງຖິ່ນ (SDG 16)", "outcome": "accepted",
         "activity_lo": "ສໍາມະນາກ່ຽວກັບການປົກຄອງທີ່ດີ", "activity_en": "Seminar on Good Governance at local level",
         "months_lo": "ເມສາ", "months_en": "April", "reason": ""},
        {"title": "Thematic workshop on the civil code", "outcome": "merged",
         "activity_lo": "ກອງປະຊຸມວິຊາການກ່ຽວກັບປະມວນກົດໝາຍແພ່ງ", "activity_en": "Thematic workshop on the civil code",
         "months_lo": "ພຶດສະພາ", "months_en": "May", "reason": ""},
        {"title": "Communication and English courses", "outcome": "rejected", "activity_lo": "", "activity_en": "",
         "months_lo": "", "months_en": "", "reason": "Outside the group's remit: proposed for MoHA's training plan."}]}},
    "approval_request": {"recipient": _CO_CHAIR_EN, "step": _APPROVAL_STEP, "deadline_event": True,
                         "deadline": _APPROVAL_STEP["due_at"], "attachments": ["GSWG-2020-work-plan-r1.docx"],
                         "link": "https://roundtable.example.org/action/approve.TOKEN"},
    "decision_notice": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "deadline": None,
                        "link": "https://roundtable.example.org/action/status.TOKEN", "extra": {
        "decision": "reject", "by_lo": "ບຸນມີ ພົມມະຈັນ", "by_en": "Bounmy Phommachanh",
        "reason": "Activity 3 needs a budget line.", "outcome": "pending", "revision": 1, "approved": 2,
        "expected": 4, "waiting_lo": ["Anna Berg"], "waiting_en": ["Anna Berg"]}},
    "revision_request": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "deadline": None,
                         "link": "https://roundtable.example.org/action/status.TOKEN", "extra": {
        "by_lo": "ບຸນມີ ພົມມະຈັນ", "by_en": "Bounmy Phommachanh", "reason": "Activity 3 needs a budget line."}},
    "escalation": {"recipient": _SECRETARIAT, "deadline": None,
                   "link": "https://roundtable.example.org/action/status.TOKEN", "extra": {"late": [
        {"name": "Vilay Inthavong", "email": "vilay@example.org"},
        {"name": "Anna Berg", "email": "anna.berg@example.org"}], "late_count": 2}},
    "submission": {"recipient": {"name": "ແສງເດືອນ ແກ້ວວົງສາ", "name_en": "Sengdeuane Keovongsa",
                                 "email": "dic@example.org", "title_lo": "ທ່ານນາງ", "title_en": "Ms",
                                 "role": "mpi-focal", "role_lo": "ຜູ້ປະສານງານ ກະຊວງແຜນການ ແລະ ການລົງທຶນ",
                                 "role_en": "MPI focal point", "show_role_lo": True, "show_role_en": True,
                                 "language": "lo"},
                   "step": {**_APPROVAL_STEP, "key": "submit_to_mpi", "kind": "submit",
                            "title_lo": "ສົ່ງແຜນວຽກປະຈຳປີ", "title_en": "Submission of the annual work plan",
                            "due_at": datetime(2020, 3, 20, 17, 0, tzinfo=VIENTIANE)},
                   "deadline": datetime(2020, 3, 20, 17, 0, tzinfo=VIENTIANE),
                   "attachments": ["GSWG-2020-work-plan-r2.docx"],
                   "link": "https://roundtable.example.org/action/receipt.TOKEN"},
    "step_blocked": {"recipient": _SECRETARIAT, "step": _APPROVAL_STEP, "link": None, "deadline": None, "extra": {
        "reason": "nobody holds chair or co-chair in GSWG: there is nobody to ask for approval",
        "since": datetime(2020, 2, 24, 9, 0, tzinfo=VIENTIANE)}},
    "failure_report": {"recipient": _SECRETARIAT, "link": None, "deadline": None, "extra": {"failures": [
        {"recipient": "nobody@example.org", "kind": "call", "subject": "[GSWG] ສະເໜີກິດຈະກຳ — Suggest activities",
         "error": "550 5.1.1 mailbox unavailable"}]}},
}


def sample_context(kind: str, **overrides) -> dict:
    """A deep copy of the sample context for `kind`, with top-level fields replaced by `overrides`."""
    context = deepcopy(_BASE)
    context.update(deepcopy(_VARIANTS[kind]))
    context.update(overrides)
    return context
