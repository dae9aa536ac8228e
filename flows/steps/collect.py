"""Collect: a call to every member (suggestions, comments), reminders to those who have not answered,
the list of the silent to the secretariat head after the deadline. A member who files a suggestion on
the web gets a receipt: their suggestions as they stand when the tick sends it."""

from sqlmodel import select

from flows.steps.base import StepHandler
from models.step_kinds import StepKindSpec
from models.tables import Response

RECEIPT = "suggestion_receipt"


class CollectHandler(StepHandler):
    spec = StepKindSpec("collect", answer="suggestion")
    opening = "call"
    purpose = "respond"

    def relevant(self, cs, step, row) -> bool:
        if row.kind == RECEIPT:  # nothing to list once they have withdrawn everything
            return bool(_suggestions_of(cs, step, row.member_id))
        return super().relevant(cs, step, row)

    def extra(self, cs, step, row, now) -> dict:
        if row.kind == RECEIPT:
            return {"suggestions": [_listed(s) for s in _suggestions_of(cs, step, row.member_id)]}
        return super().extra(cs, step, row, now)


def _suggestions_of(cs, step, member_id: int) -> list[Response]:
    return list(cs.session.exec(select(Response).where(Response.step_id == step.id, Response.member_id == member_id,
                                                       Response.kind == "suggestion")
                                .order_by(Response.at, Response.id)).all())


def _listed(suggestion: Response) -> dict:
    from flows.documents import month_name  # python-docx and openpyxl only when a receipt is written

    data = suggestion.data
    months = data.get("months") or []
    return {"title": data.get("title") or suggestion.body, "what": data.get("what", ""), "lead": data.get("lead", ""),
            **{f"months_{lang}": ", ".join(month_name(m, lang) for m in months) for lang in ("lo", "en")}}
