"""Approval: requests to the chair and co-chairs, settled by the step's rule (all, any, k of n).

A deputy named in the roster (column deputy_for) for a chair or co-chair gets that approver's requests
and reminders and may decide in their place: the rule still counts the chairs, and the first decision
of either, approver or deputy, is the approver's for that revision.

Each decision is reported to the secretariat. A rejection sends the plan back to revision: the
plan revision goes up, the secretariat is asked to revise, and when it records the revised plan
new requests (of the new revision) go out with a fresh approval window.
"""

from dataclasses import replace
from datetime import datetime

from sqlmodel import select

from calendars.timeline import DatedStep
from flows.state import CycleState, DueRow, Planned, StepBlocked
from flows.steps.base import StepHandler
from models.audience import Addressee, deputies, principals_of
from models.definition import ApprovalRule
from models.step_kinds import StepKindSpec
from models.tables import Decision, Member, Response, Step


class ApprovalHandler(StepHandler):
    spec = StepKindSpec("approval", accepts=("approval",), answer="decision")
    opening = "approval_request"
    purpose = "approve"
    closes_at_due = False  # an approval ends when it is settled, not at a date

    def decisions(self, cs: CycleState, step: Step, revision: int | None = None) -> list[Decision]:
        revision = cs.cycle.plan_revision if revision is None else revision
        return list(cs.session.exec(select(Decision).where(Decision.step_id == step.id,
                                                           Decision.plan_revision == revision)
                                    .order_by(Decision.at, Decision.id)).all())

    def answered(self, cs: CycleState, step: Step) -> set[int]:
        """The approvers who have decided (themselves or by a deputy), the deputies who decided, and the deputies
        of decided approvers: none of them is asked again."""
        decisions = self.decisions(cs, step)
        done = {d.member_id for d in decisions} | {d.by_member_id for d in decisions if d.by_member_id}
        if decisions:
            on = (cs.now or max(d.at for d in decisions)).astimezone(cs.zone).date()
            for people in deputies(cs.session, {d.member_id for d in decisions}, self._groups(cs, step), on).values():
                done |= {p.member_id for p in people}
        return done

    def _groups(self, cs: CycleState, step: Step) -> list[str]:
        return list(cs.step_def(step.key).audience.groups or cs.group_codes)

    def plan(self, cs: CycleState, step: Step, dated: DatedStep, revision: int = 0) -> list[Planned]:
        plans = super().plan(cs, step, dated, revision or cs.cycle.plan_revision)
        return [self._with_deputies(cs, step, dated, p) if p.kind in ("approval_request", "reminder") else p
                for p in plans]

    def recipients(self, cs: CycleState, step: Step, on: datetime) -> list[Addressee]:
        return self._plus_deputies(cs, step, super().recipients(cs, step, on), on)

    def _with_deputies(self, cs: CycleState, step: Step, dated: DatedStep, planned: Planned) -> Planned:
        """The approvers' request or reminder goes to their deputies too."""
        return replace(planned, recipients=self._plus_deputies(cs, step, planned.recipients,
                                                               dated.opens_at or planned.due_at))

    def _plus_deputies(self, cs: CycleState, step: Step, approvers: list[Addressee], on: datetime) -> list[Addressee]:
        """The approvers, then their deputies on the day of `on` (each person once)."""
        asked = {p.member_id for p in approvers}
        found = deputies(cs.session, asked, self._groups(cs, step), on.astimezone(cs.zone).date())
        extra = {d.member_id: d for people in found.values() for d in people if d.member_id not in asked}
        return [*approvers, *extra.values()]

    def verdict(self, cs: CycleState, step: Step) -> str:
        """approved | rejected | pending, by the definition's rule over this revision's decisions."""
        rule = cs.step_def(step.key).approval or ApprovalRule()  # default: all must approve
        approvers = len(self.expected(cs, step))
        decisions = self.decisions(cs, step)
        approvals = sum(d.decision == "approve" for d in decisions)
        rejections = sum(d.decision == "reject" for d in decisions)
        needed = {"all": approvers, "any": 1, "k-of-n": min(rule.k or 1, approvers)}[rule.rule]
        if approvals >= needed and (rule.rule != "all" or rejections == 0):
            return "approved"
        if rejections and (rule.rule == "all" or approvers - rejections < needed):
            return "rejected"
        return "pending"

    def advance(self, cs: CycleState, step: Step, now: datetime) -> list[Planned]:
        super().advance(cs, step, now)
        if step.state != "open":
            return []
        if not self.expected(cs, step):  # issue 14: nobody to ask; the tick blocks this step, not every cycle
            audience = cs.step_def(step.key).audience
            raise StepBlocked(f"nobody holds {' or '.join(audience.roles)} in "
                              f"{', '.join(audience.groups or cs.group_codes)}: there is nobody to ask for approval "
                              "(import a roster with a chair)")
        revision = cs.cycle.plan_revision
        secretariat = cs.secretariat(now)
        urgent = [Planned("decision_notice", f"d{d.id}", now, secretariat, revision) for d in self.decisions(cs, step)]
        pending_revision = step.data.get("awaiting_revision")
        if pending_revision:
            revised = self._revised_at(cs, step, pending_revision)
            if revised is not None:
                step.data["awaiting_revision"] = None
                urgent += self.plan(cs, step, self._new_window(cs, step, revised), revision)
            return urgent
        verdict = self.verdict(cs, step)
        if verdict == "approved":
            settled_at = max(d.at for d in self.decisions(cs, step))
            step.state, step.closed_at, step.outcome = "done", settled_at, "approved"
        elif verdict == "rejected":
            cs.cycle.plan_revision = revision + 1
            step.data["awaiting_revision"] = revision + 1
            step.data.setdefault("rejected_revisions", []).append(revision)
            urgent.append(Planned("revision_request", f"v{revision}", now, secretariat, revision))
        return urgent

    def _revised_at(self, cs: CycleState, step: Step, revision: int) -> datetime | None:
        """When the secretariat recorded revision `revision` of the plan (a `revision` response)."""
        rows = cs.session.exec(select(Response).where(Response.step_id == step.id, Response.kind == "revision")).all()
        times = [r.at for r in rows if int(r.data.get("revision", 0)) == revision]
        return min(times) if times else None

    def _new_window(self, cs: CycleState, step: Step, revised_at: datetime) -> DatedStep:
        """The same approval window as planned, opening when the revision arrived."""
        from flows.cycle import shifted

        dated = shifted(cs, cs.timeline[step.key], revised_at)
        step.due_at = dated.due_at
        return dated

    def relevant(self, cs: CycleState, step: Step, row: DueRow) -> bool:
        if row.kind in ("approval_request", "reminder", "digest", "escalation"):
            if row.revision != cs.cycle.plan_revision or step.state != "open" or step.data.get("awaiting_revision"):
                return False
        if row.kind == "approval_request":
            return row.member_id not in self.answered_now(cs, step)
        return super().relevant(cs, step, row)

    def extra(self, cs: CycleState, step: Step, row: DueRow, now: datetime) -> dict:
        if row.kind in ("decision_notice", "revision_request"):
            decisions = self.decisions(cs, step, row.revision)
            if row.kind == "decision_notice":
                decision = next(d for d in decisions if f"d{d.id}" == row.slot)
            else:
                decision = next(d for d in decisions if d.decision == "reject")
            by = cs.session.get(Member, decision.by_member_id or decision.member_id)
            # A deputy's decision names the approver it counts for ("X for Y").
            principal = cs.session.get(Member, decision.member_id) if decision.by_member_id else None
            outcome = "approved" if step.outcome == "approved" else (
                "rejected" if row.revision < cs.cycle.plan_revision else "pending")
            # Where the round stands when the notice goes: who approved this revision, who is still awaited.
            approvers = self.expected(cs, step)
            approved = {d.member_id for d in decisions if d.decision == "approve"}
            waiting = [p for p in approvers if p.member_id not in {d.member_id for d in decisions}]
            return {"decision": decision.decision, "by_lo": by.name, "by_en": by.name_en or by.name,
                    "for_lo": principal.name if principal else "",
                    "for_en": (principal.name_en or principal.name) if principal else "",
                    "reason": decision.reason, "outcome": outcome, "revision": row.revision,
                    "approved": len(approved), "expected": len(approvers),
                    "waiting_lo": [p.name for p in waiting], "waiting_en": [p.name_en or p.name for p in waiting]}
        extra = super().extra(cs, step, row, now)
        if row.kind in ("approval_request", "reminder") and row.member_id is not None and \
                row.member_id not in {p.member_id for p in self.expected(cs, step)}:
            # A deputy: the request says whose place they decide in.
            ids = principals_of(cs.session, row.member_id, self._groups(cs, step), now.astimezone(cs.zone).date())
            people = [cs.session.get(Member, i) for i in ids]
            extra = {**extra, "deputy_for_lo": ", ".join(p.name for p in people),
                     "deputy_for_en": ", ".join(p.name_en or p.name for p in people)}
        return extra

    def link_revision(self, row: DueRow) -> int:
        return row.revision  # a decision is about one revision of the plan; a newer one voids the link

    def status(self, cs: CycleState, step: Step) -> dict:
        rows = cs.session.exec(select(Decision, Member).join(Member, Member.id == Decision.member_id)
                               .where(Decision.step_id == step.id).order_by(Decision.at, Decision.id)).all()
        by = {d.by_member_id for d, _ in rows if d.by_member_id}
        deputy_emails = dict(cs.session.exec(select(Member.id, Member.email).where(Member.id.in_(by))).all()) if by else {}
        decisions = [{"member": m.email, "decision": d.decision, "reason": d.reason,
                      "at": d.at.astimezone(cs.zone).isoformat(), "revision": d.plan_revision,
                      **({"by": deputy_emails[d.by_member_id]} if d.by_member_id else {})} for d, m in rows]
        return {**super().status(cs, step), "decisions": decisions}

    def finished_at(self, step: Step) -> datetime | None:
        return step.closed_at  # settled when the deciding decision came, early or late

    def late(self, cs: CycleState, step: Step) -> list[Addressee]:
        if step.state != "open":
            return []
        return super().late(cs, step)
