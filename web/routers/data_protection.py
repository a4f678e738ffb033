"""Data protection pages: retention runs and their reports, subject access exports (for the DPO and admins),
and consent withdrawal on a referral (its school and the area's EIP)."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from meetings import consent
from meetings.access import Principal, access_referral, can, require
from meetings.models import Referral, RetentionRun
from meetings.retention import RetentionRules
from notifications import consent_mail, retention, subject_access
from web.deps import (
    DbSession,
    SignedIn,
    client_ip,
    mail_context,
    note_listed,
    now_of,
    read_referral,
    render,
    settings_of,
)
from web.routers.documents import content_disposition

router = APIRouter()


# ---- retention --------------------------------------------------------------------------------------


@router.get("/data-protection")
def data_protection(request: Request, session: DbSession, viewer: SignedIn) -> Response:
    require(viewer, "retention.view")
    settings = settings_of(request)
    rules = RetentionRules.from_settings(settings)
    periods = retention.describe(rules)
    return render(
        request,
        "data_protection/index.html",
        runs=retention.recent_runs(session),
        rules=[(rule, periods[rule.key]) for rule in retention.RULES],
        report_only=settings.retention_report_only,
        audit_log=retention.AUDIT_LOG_KEPT,
        can_export=can(viewer, "subject_access.export"),
    )


@router.get("/data-protection/runs/{run_id}")
def retention_run(request: Request, session: DbSession, viewer: SignedIn, run_id: int) -> Response:
    require(viewer, "retention.view")
    run = session.get(RetentionRun, run_id) if 0 < run_id < 2**31 else None
    if run is None:
        raise NotFound(f"retention run {run_id}")
    return render(request, "data_protection/run.html", run=run)


# ---- subject access ---------------------------------------------------------------------------------------


def _referral_counts(session: Session, child_ids: list[int]) -> dict[int, int]:
    if not child_ids:
        return {}
    rows = session.execute(
        select(Referral.child_id, func.count()).where(Referral.child_id.in_(child_ids)).group_by(Referral.child_id)
    )
    return dict(rows.tuples().all())


@router.get("/data-protection/subject-access")
def subject_access_page(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    surname: str = "",
    date_of_birth: str = "",
    upn: str = "",
) -> Response:
    require(viewer, "subject_access.export")
    typed = {"surname": surname[:100], "date_of_birth": date_of_birth[:20], "upn": upn[:20]}
    errors: dict[str, str] = {}
    children = None
    if any(typed.values()):
        born = None
        if typed["date_of_birth"].strip():
            try:
                born = date.fromisoformat(typed["date_of_birth"].strip())
            except ValueError:
                errors["date_of_birth"] = "Enter the date of birth as YYYY-MM-DD, for example 2014-03-09"
        if not errors:
            try:
                children = subject_access.find_children(
                    session, surname=typed["surname"], date_of_birth=born, upn=typed["upn"]
                )
            except Invalid as exc:
                errors["surname"] = exc.problems["search"]
    counts = _referral_counts(session, [c.id for c in children or []])
    if children:
        note_listed(viewer, "child", [c.id for c in children])  # names and dates of birth shown
    return render(
        request,
        "data_protection/subject_access.html",
        status_code=400 if errors else 200,
        typed=typed,
        errors=errors,
        children=children,
        counts=counts,
    )


@router.post("/data-protection/subject-access/{child_id}")
def subject_access_export(request: Request, session: DbSession, viewer: SignedIn, child_id: int) -> Response:
    require(viewer, "subject_access.export")
    with session.begin():
        data = subject_access.export_zip(
            session,
            child_id,
            now=now_of(request),
            storage_dir=settings_of(request).documents_dir,
            actor_person_id=viewer.person_id,
            actor_label=viewer.email,
            ip_address=client_ip(request),
        )
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": content_disposition(f"subject-access-child-{child_id}.zip"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


# ---- consent withdrawal -------------------------------------------------------------------------------------


def _back_link(viewer: Principal, referral: Referral) -> str:
    if referral.school_id in viewer.school_ids:
        return f"/referrals/{referral.id}"
    return f"/triage/{referral.id}"


@router.get("/referrals/{referral_id}/consent/withdraw")
def withdraw_consent_page(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    referral = read_referral(request, session, viewer, referral_id, "view")
    if not consent.may_withdraw(viewer, referral):
        raise Forbidden("referral.withdraw_consent")
    return render(
        request,
        "data_protection/withdraw_consent.html",
        referral=referral,
        refused=consent.why_not(referral),
        back=_back_link(viewer, referral),
        note="",
        errors={},
        max_note=consent.MAX_NOTE,
    )


@router.post("/referrals/{referral_id}/consent/withdraw")
def withdraw_consent(
    request: Request, session: DbSession, viewer: SignedIn, referral_id: int, note: str = Form("")
) -> Response:
    # The referral's school locks it through "withdraw"; an EIP may not withdraw the referral itself, so the
    # row is locked here for them.
    try:
        with session.begin():
            referral = access_referral(session, viewer, referral_id, "view")
            session.refresh(referral, with_for_update=True)
            if not consent.may_withdraw(viewer, referral):
                raise Forbidden("referral.withdraw_consent")
            consent_mail.record_withdrawal(
                session,
                referral=referral,
                person_id=viewer.person_id,
                note=note,
                now=now_of(request),
                mail=mail_context(request),
                ip_address=client_ip(request),
            )
    except (Invalid, Conflict) as exc:
        referral = access_referral(session, viewer, referral_id, "view")
        problems = exc.problems if isinstance(exc, Invalid) else {}
        return render(
            request,
            "data_protection/withdraw_consent.html",
            status_code=400 if isinstance(exc, Invalid) else 409,
            referral=referral,
            refused=None if problems else str(exc),
            back=_back_link(viewer, referral),
            note=note[: consent.MAX_NOTE * 2],
            errors=problems,
            max_note=consent.MAX_NOTE,
        )
    return RedirectResponse(f"/referrals/{referral_id}/consent/withdrawn", status_code=303)


@router.get("/referrals/{referral_id}/consent/withdrawn")
def consent_withdrawn(request: Request, session: DbSession, viewer: SignedIn, referral_id: int) -> Response:
    referral = access_referral(session, viewer, referral_id, "view")
    if not consent.may_withdraw(viewer, referral) or referral.consent_withdrawn_at is None:
        raise NotFound(f"consent withdrawal on referral {referral_id}")
    return render(
        request, "data_protection/consent_withdrawn.html", referral=referral, back=_back_link(viewer, referral)
    )


def withdrawn_page(request: Request, document) -> Response:
    """The page shown instead of a withdrawn document."""
    return render(request, "data_protection/document_withdrawn.html", status_code=410, document=document)
