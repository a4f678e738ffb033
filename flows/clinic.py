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
from meetings import agenda
from notifications import invites, papers_mail
from notifications.emails import MailContext


@dataclass(frozen=True)
class Sweep:
    """What is due now, and how to deal with one meeting. The two halves run in separate transactions."""

    name: str
    due: Callable[..., list[int]]
    step: Callable[[Session, int, datetime, RunContext], Any]


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


# In the order they should run when several fall due at once: an agenda is frozen before its papers go.
SWEEPS = {
    sweep.name: sweep
    for sweep in (
        Sweep("freeze-agendas", papers_mail.meetings_due_freeze, _freeze),
        Sweep("circulate-papers", papers_mail.meetings_due_papers, _papers),
        Sweep("send-invitations", invites.meetings_due_invitations, _invite),
        Sweep("check-quorum", invites.meetings_due_quorum_check, _quorum),
    )
}


def due_now(name: str, now: datetime) -> list[int]:
    """The meetings a sweep would deal with at `now` (its first half, also used by the simulator)."""
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return SWEEPS[name].due(session, now=now)


@task(retries=2, retry_delay_seconds=[10, 60], cache_policy=NO_CACHE, task_run_name="{name}-meeting-{meeting_id}")
def sweep_meeting(name: str, meeting_id: int, now: datetime) -> Any:
    # Each meeting commits on its own: one that fails is retried without holding up or repeating the rest.
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return SWEEPS[name].step(session, meeting_id, now, ctx)


class SweepIncomplete(Exception):
    """Some meetings could not be dealt with (after retries); the others were, and the next run tries again."""


def run_sweep(name: str, now: datetime | None) -> dict[str, Any]:
    moment = (FixedClock(now) if now else SystemClock()).now()
    results, failed = {}, []
    for meeting_id in due_now(name, moment):
        state = sweep_meeting(name, meeting_id, moment, return_state=True)
        if state.is_completed():
            results[meeting_id] = state.result()
        else:  # one meeting's failure does not hold up the others
            failed.append(meeting_id)
    if failed:
        raise SweepIncomplete(f"{name}: meetings {failed} failed after retries; {len(results)} others were dealt with")
    return {"sweep": name, "at": moment.isoformat(), "meetings": results}


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
