"""The EIP's triage queue and the four decisions on a referral."""

from __future__ import annotations

import re

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from caseconf.errors import Conflict, Invalid
from flows.triggers import request_delivery
from meetings import referrals
from meetings.access import access_referral, require
from meetings.models import ReferralStatus
from meetings.referral_rules import LABELS
from notifications.emails import queue_referral_status
from web.deps import DbSession, SignedIn, mail_context, note_listed, now_of, read_referral, render, settings_of

router = APIRouter(prefix="/triage")

DECISIONS = {
    "accept": "accepted and listed",
    "request-information": "sent back to the school with your question",
    "signpost": "signposted",
    "decline": "declined",
}


@router.get("")
def queue(request: Request, session: DbSession, viewer: SignedIn, done: str | None = None) -> Response:
    require(viewer, "triage.view")
    areas = viewer.area_ids
    now = now_of(request)
    waiting = referrals.triage_queue(
        session, area_ids=areas, now=now, triage_working_days=settings_of(request).triage_working_days
    )
    with_schools = [
        r
        for r in referrals.referrals_in_areas(session, area_ids=areas)
        if r.status == ReferralStatus.information_requested
    ]
    note_listed(viewer, "referral", [e.referral.id for e in waiting] + [r.id for r in with_schools])
    return render(
        request,
        "triage/index.html",
        waiting=waiting,
        with_schools=with_schools,
        triage_days=settings_of(request).triage_working_days,
        done=_done_message(done),
    )


def _done_message(done: str | None) -> str | None:
    reference, _, decision = (done or "").partition(":")
    if decision not in DECISIONS or not reference.startswith(referrals.REFERENCE_PREFIX) or len(reference) > 20:
        return None
    return f"{reference} {DECISIONS[decision]}. The school has been emailed."


def _decision_page(
    request: Request, session, viewer, referral_id: int, *, status_code=200, errors=None, typed=None, decision=""
):
    referral = read_referral(request, session, viewer, referral_id, "triage")
    reason_labels = dict(referrals.reason_options(session))
    return render(
        request,
        "triage/referral.html",
        status_code=status_code,
        referral=referral,
        reasons=[reason_labels.get(code, code) for code in referral.reasons],
        clinics=referrals.upcoming_clinics(session, area_id=referral.school.area_id, now=now_of(request)),
        labels=LABELS,
        can_decide=referral.status == ReferralStatus.submitted,
        errors=errors or {},
        typed=typed or {},
        decision=decision,
    )


@router.get("/{referral_id}")
def referral_page(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    return _decision_page(request, session, viewer, referral_id)


@router.post("/{referral_id}/{decision}")
def decide(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    referral_id: int,
    decision: str,
    meeting_id: str = Form(""),
    note: str = Form(""),
    question: str = Form(""),
    service: str = Form(""),
    reason: str = Form(""),
) -> Response:
    if decision not in DECISIONS:
        return render(request, "errors/not_found.html", status_code=404)
    now = now_of(request)
    try:
        with session.begin():
            referral = access_referral(session, viewer, referral_id, "triage")
            common = {"referral": referral, "now": now, "person_id": viewer.person_id}
            if decision == "accept":
                if not re.fullmatch(r"[0-9]{1,9}", meeting_id):
                    raise Invalid({"meeting_id": "Choose the clinic to list the referral on"})
                change = referrals.accept_and_list(session, meeting_id=int(meeting_id), note=note, **common)
            elif decision == "request-information":
                change = referrals.request_information(session, question=question, **common)
            elif decision == "signpost":
                change = referrals.signpost(session, service=service, note=note, **common)
            else:
                change = referrals.decline(session, reason=reason, **common)
            queue_referral_status(session, mail=mail_context(request), now=now, referral=referral, change=change)
            reference = referral.reference
    except (Invalid, Conflict) as exc:
        session.rollback()
        problems = exc.problems if isinstance(exc, Invalid) else {"decision": f"{exc}. Nothing was changed."}
        typed = {"meeting_id": meeting_id, "note": note, "question": question, "service": service, "reason": reason}
        return _decision_page(
            request,
            session,
            viewer,
            referral_id,
            status_code=400 if isinstance(exc, Invalid) else 409,
            errors=problems,
            typed=typed,
            decision=decision,
        )
    request_delivery()
    return RedirectResponse(f"/triage?done={reference}:{decision}", status_code=303)
