"""The weekly clinic cycle as sweeps: each asks "which meetings are due now?" and deals with each
meeting in a transaction of its own, so a run that is repeated, late or cut short does each thing once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from caseconf.clock import FixedClock, SystemClock
from caseconf.db import transaction
from flows.context import RunContext, run_context
from meetings import agenda, blockages
from meetings.models import Meeting
from notifications import chasing, invites, minutes_mail, papers_mail
from notifications.emails import MailContext


@dataclass(frozen=True)
class Sweep:
    """What is due now, and how to deal with one record (a meeting, unless `record` says otherwise).
    The two halves run in separate transactions."""

    name: str
    due: Callable[..., list[int]]
    step: Callable[[Session, int, datetime, RunContext], Any]
    record: str = "meeting"


def _freeze(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    result = papers_mail.freeze_meeting(session, meeting_id, now=now, mail=MailContext.from_settings(ctx.settings))
    if result is None:
        return None
    listed = len(agenda.listed_items(result.meeting))
    words = [_count(listed, "item") + " on the agenda"]
    if result.moved:
        words.append(_count(len(result.moved), "item") + " moved to the next clinic")
    if result.reviews_added:
        words.append(_count(len(result.reviews_added), "review") + " added")
    return ", ".join(words)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _papers(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    result = papers_mail.circulate_papers(
        session,
        meeting_id,
        now=now,
        mail=MailContext.from_settings(ctx.settings),
        storage_dir=ctx.settings.documents_dir,
    )
    if result is None:
        return None
    packs, emails = _count(len(result.documents), "pack"), _count(len(result.emails), "email")
    words = f"version {result.papers_version}: {packs}, {emails}"
    if result.held_item_ids:
        words += f", {_count(len(result.held_item_ids), 'item')} held back for consent"
    return words


def _invite(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    queued = invites.send_invitations(
        session,
        meeting_id,
        now=now,
        mail=MailContext.from_settings(ctx.settings),
        organizer_name=ctx.settings.mail_from_name,
        organizer_email=ctx.settings.mail_from,
    )
    return _count(queued, "email")


def _quorum(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    result = invites.check_quorum(session, meeting_id, now=now, mail=MailContext.from_settings(ctx.settings))
    if not result.checked:
        return None
    if result.quorum_met:
        return "quorate"
    return f"not quorate ({result.reasons}): {_count(result.alerts_queued, 'alert')} to the chair and coordinator"


def _after_meeting(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    mail = MailContext.from_settings(ctx.settings)
    meeting = session.get(Meeting, meeting_id)
    waits = blockages.open_waits_for_ended_meeting(session, meeting, now=now) if meeting is not None else []
    sent = minutes_mail.send_outcomes(session, meeting_id, now=now, mail=mail)
    words = [_count(len(sent), "outcome email")]
    if waits:
        words.append(_count(len(waits), "wait") + " on outside agencies opened")
    return ", ".join(words)


def _follow_up(session: Session, action_id: int, now: datetime, ctx: RunContext) -> Any:
    return chasing.follow_up_action(session, action_id, now=now, mail=MailContext.from_settings(ctx.settings))


def _chase_wait(session: Session, wait_id: int, now: datetime, ctx: RunContext) -> Any:
    chase = chasing.chase_wait(session, wait_id, now=now, mail=MailContext.from_settings(ctx.settings))
    return None if chase is None else f"chase {chase}"


def _overdue(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    flagged = minutes_mail.flag_overdue(session, meeting_id, now=now, mail=MailContext.from_settings(ctx.settings))
    return _count(len(flagged), "overdue alert") if flagged else None


def _finalise(session: Session, meeting_id: int, now: datetime, ctx: RunContext) -> Any:
    minute = minutes_mail.finalise_minutes(session, meeting_id, now=now, mail=MailContext.from_settings(ctx.settings))
    return None if minute is None else "minutes final"


# In the order they should run when several fall due at once: an agenda is frozen before its papers go;
# outcomes go before actions are announced.
SWEEPS = {
    sweep.name: sweep
    for sweep in (
        Sweep("freeze-agendas", papers_mail.meetings_due_freeze, _freeze),
        Sweep("circulate-papers", papers_mail.meetings_due_papers, _papers),
        Sweep("send-invitations", invites.meetings_due_invitations, _invite),
        Sweep("check-quorum", invites.meetings_due_quorum_check, _quorum),
        Sweep("after-meetings", minutes_mail.meetings_due_outcomes, _after_meeting),
        Sweep("follow-up-actions", chasing.actions_due_follow_up, _follow_up, record="action"),
        Sweep("chase-blockages", chasing.waits_due_chase, _chase_wait, record="wait"),
        Sweep("flag-overdue-minutes", minutes_mail.meetings_due_overdue_check, _overdue),
        Sweep("finalise-minutes", minutes_mail.meetings_due_finalise, _finalise),
    )
}


def due_now(name: str, now: datetime) -> list[int]:
    """The meetings a sweep would deal with at `now` (its first half, also used by the simulator)."""
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return SWEEPS[name].due(session, now=now)


@task(retries=2, retry_delay_seconds=[10, 60], cache_policy=NO_CACHE, task_run_name="{name}-{record}-{record_id}")
def sweep_record(name: str, record: str, record_id: int, now: datetime) -> Any:
    # Each record commits on its own: one that fails is retried without holding up or repeating the rest.
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return SWEEPS[name].step(session, record_id, now, ctx)


class SweepIncomplete(Exception):
    """Some records could not be dealt with (after retries); the others were, and the next run tries again."""


def run_sweep(name: str, now: datetime | None) -> dict[str, Any]:
    moment = (FixedClock(now) if now else SystemClock()).now()
    record = SWEEPS[name].record
    results, failed = {}, []
    for record_id in due_now(name, moment):
        state = sweep_record(name, record, record_id, moment, return_state=True)
        if state.is_completed():
            results[record_id] = state.result()
        else:  # one record's failure does not hold up the others
            failed.append(record_id)
    if failed:
        raise SweepIncomplete(f"{name}: {record}s {failed} failed after retries; {len(results)} others were dealt with")
    return {"sweep": name, "at": moment.isoformat(), "record": record, f"{record}s": results}


@flow(name="freeze-agendas")
def freeze_agendas(now: datetime | None = None) -> dict[str, Any]:
    """Close each agenda at its referral cut-off; items over capacity move to the next clinic."""
    return run_sweep("freeze-agendas", now)


@flow(name="circulate-papers")
def circulate_papers(now: datetime | None = None) -> dict[str, Any]:
    """Build the papers packs and tell each invitee, when due; again after an agenda change."""
    return run_sweep("circulate-papers", now)


@flow(name="send-invitations")
def send_invitations(now: datetime | None = None) -> dict[str, Any]:
    """Calendar invitations, updates and cancellations for meetings coming up."""
    return run_sweep("send-invitations", now)


@flow(name="check-quorum")
def check_quorum(now: datetime | None = None) -> dict[str, Any]:
    """The working day before: alert the chair and coordinator when the replies do not make a quorum."""
    return run_sweep("check-quorum", now)


@flow(name="after-meetings")
def after_meetings(now: datetime | None = None) -> dict[str, Any]:
    """Once a meeting has ended: each school told its outcome, and waits on outside agencies opened."""
    return run_sweep("after-meetings", now)


@flow(name="follow-up-actions")
def follow_up_actions(now: datetime | None = None) -> dict[str, Any]:
    """New actions announced to their owners; reminders, chases and escalation on working days."""
    return run_sweep("follow-up-actions", now)


@flow(name="chase-blockages")
def chase_blockages(now: datetime | None = None) -> dict[str, Any]:
    """Referrals waiting too long on an outside agency: the agency chased, the school told."""
    return run_sweep("chase-blockages", now)


@flow(name="flag-overdue-minutes")
def flag_overdue_minutes(now: datetime | None = None) -> dict[str, Any]:
    """Outcomes, minutes and corrections past their due dates: the chair and coordinator told once a step."""
    return run_sweep("flag-overdue-minutes", now)


@flow(name="finalise-minutes")
def finalise_minutes(now: datetime | None = None) -> dict[str, Any]:
    """Minutes whose corrections window has closed with nothing open become final."""
    return run_sweep("finalise-minutes", now)
