"""Minutes on the portal: each reader's view, the chair's approval, circulation, the PDF, corrections and
the chair's answers. Drafts are for those who minute the meeting; circulated minutes for every invitee."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from agencies.models import Person
from caseconf import audit
from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from meetings import minutes
from meetings.access import Principal, access_meeting, can_on_meeting, note_cases_read
from meetings.consent import may_download
from meetings.documents import document_path
from meetings.edits import EditConflict
from meetings.models import CorrectionStatus, Meeting, MeetingStatus, MinutesStatus
from notifications import minutes_mail
from web.deps import DbSession, SignedIn, client_ip, mail_context, now_of, render, settings_of
from web.routers.documents import content_disposition

router = APIRouter(prefix="/meetings")

DONE = {
    "approved": "The minutes have been approved. They can now be circulated.",
    "circulated": "The minutes have been circulated. Everyone invited has been sent a link.",
    "asked": "Your correction has been sent to the chair.",
    "answered": "Your answer has been sent to the person who asked.",
    "corrected": "The minutes have been corrected and sent again to everyone invited.",
}
CONFIRM = {
    "approve": (
        "Approve the minutes",
        "Once approved, the minutes can be circulated to everyone invited. They cannot be edited here after that, "
        "except through a correction.",
        "Approve the minutes",
    ),
    "circulate": (
        "Circulate the minutes",
        "Everyone invited will be emailed a link. Each agency reads only the sections its sharing group may see. "
        "Attendees then have {days} working days to ask for corrections.",
        "Circulate the minutes",
    ),
}


def _refuse_unless(allowed: bool, what: str, meeting: Meeting) -> None:
    if not allowed:
        raise Forbidden(what, record_type="meeting", record_id=meeting.id)


def _readable(session: Session, viewer: Principal, meeting_id: int) -> Meeting:
    meeting = access_meeting(session, viewer, meeting_id, "view")
    minute = minutes.minute_of(session, meeting)
    if minute is None:
        _refuse_unless(can_on_meeting(session, viewer, "minute", meeting), "meeting.minutes", meeting)
    else:
        _refuse_unless(minutes.may_read(session, viewer, meeting, minute), "meeting.minutes", meeting)
    note_cases_read(session, viewer, meeting, "minutes")  # the minutes speak of each listed child
    return meeting


def _audit_read(session: Session, request: Request, viewer: Principal, meeting: Meeting, action: str, **details):
    audit.record(
        session,
        now=now_of(request),
        action=action,
        actor_person_id=viewer.person_id,
        actor_label=viewer.email,
        record_type="meeting",
        record_id=meeting.id,
        ip_address=client_ip(request),
        **details,
    )


def _page(request: Request, session: Session, viewer: Principal, meeting: Meeting, *, done: str = "") -> Response:
    now = now_of(request)
    reader = minutes.reader_for(session, viewer, meeting)
    built = minutes.build(session, meeting, reader)
    minute = built.minute
    status = minute.status if minute else None
    all_corrections = minutes.corrections(session, meeting)
    chair = meeting.chair_id == viewer.person_id
    shown = [c for c in all_corrections if reader.full or chair or c.person_id == viewer.person_id]
    return render(
        request,
        "minutes/show.html",
        meeting=meeting,
        m=built,
        steps=minutes.steps(session, meeting, now=now) if reader.full or chair else [],  # for those who run it
        can_approve=chair and status == MinutesStatus.draft and meeting.status == MeetingStatus.minutes_draft,
        can_circulate=status == MinutesStatus.approved and minutes.may_circulate(session, viewer, meeting),
        can_correct=minutes.open_for_corrections(minute, now) and minutes.may_correct(session, viewer, meeting),
        can_answer=chair and status == MinutesStatus.circulated,
        waiting=f"Waiting for approval by {_chair_words(meeting)}. They can be circulated once approved."
        if status == MinutesStatus.draft and not chair
        else "",
        has_pdf=minute is not None,
        corrections=shown,
        item_names={i.item.id: f"{i.number}. {i.reference}" for i in built.items},
        people={c.person_id: c for c in shown},
        done=DONE.get(done),
        confidentiality=minutes.CONFIDENTIALITY,
    )


@router.get("/{meeting_id}/minutes")
def minutes_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, done: str = "") -> Response:
    with session.begin():
        meeting = _readable(session, viewer, meeting_id)
        minute = minutes.minute_of(session, meeting)
        if minute is not None:
            _audit_read(session, request, viewer, meeting, "minutes.viewed", version=minute.version)
        return _page(request, session, viewer, meeting, done=done)


# ---- approve and circulate ------------------------------------------------------------------------------


def _confirm_page(
    request: Request, meeting: Meeting, step: str, *, error: str | None = None, blocked: str = "", status_code=200
):
    title, text, button = CONFIRM[step]
    return render(
        request,
        "minutes/confirm.html",
        status_code=status_code,
        meeting=meeting,
        step=step,
        title=title,
        text=text.format(days=meeting.series.corrections_working_days),
        button=button,
        error=error,
        blocked=blocked,
    )


def _chair_words(meeting: Meeting) -> str:
    return f"the chair, {meeting.chair.name}" if meeting.chair else "the chair (none is set for this meeting)"


def why_not(session: Session, viewer: Principal, meeting: Meeting, step: str) -> str:
    """Why `step` cannot be taken now by the viewer, in words naming who can ("" when it can)."""
    minute = minutes.minute_of(session, meeting)
    if minute is None:
        return "There are no minutes for this meeting yet. They are started when the meeting is closed in the room."
    if step == "approve":
        if minute.status != MinutesStatus.draft:
            return f"These minutes have already been approved by {_chair_words(meeting)}."
        if meeting.chair_id != viewer.person_id:
            return f"Only {_chair_words(meeting)}, can approve these minutes."
        return ""
    if minute.status == MinutesStatus.draft:
        return f"The minutes must be approved by {_chair_words(meeting)}, before they can be circulated."
    if minute.status != MinutesStatus.approved:
        return "These minutes have already been circulated."
    return ""


def _may(session: Session, viewer: Principal, meeting: Meeting, step: str) -> bool:
    if step == "approve":
        return can_on_meeting(session, viewer, "approve", meeting)
    return minutes.may_circulate(session, viewer, meeting)


@router.get("/{meeting_id}/minutes/{step}")
def confirm_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, step: str) -> Response:
    if step not in CONFIRM:
        raise NotFound(step)
    meeting = access_meeting(session, viewer, meeting_id, "view")
    may = _may(session, viewer, meeting, step)
    # Those who may read the minutes are told why they cannot take the step, and who can; others are refused.
    _refuse_unless(
        may or minutes.may_read(session, viewer, meeting, minutes.minute_of(session, meeting)),
        f"minutes.{step}",
        meeting,
    )
    blocked = why_not(session, viewer, meeting, step)
    _refuse_unless(may or bool(blocked), f"minutes.{step}", meeting)
    return _confirm_page(request, meeting, step, blocked=blocked)


@router.post("/{meeting_id}/minutes/{step}")
def confirm(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, step: str) -> Response:
    if step not in CONFIRM:
        raise NotFound(step)
    now = now_of(request)
    try:
        with session.begin():
            meeting = access_meeting(session, viewer, meeting_id, "view")
            _refuse_unless(_may(session, viewer, meeting, step), f"minutes.{step}", meeting)
            if step == "approve":
                minutes.approve(session, meeting, person_id=viewer.person_id, now=now)
            else:
                minutes_mail.circulate_minutes(
                    session,
                    meeting,
                    person_id=viewer.person_id,
                    now=now,
                    mail=mail_context(request),
                    storage_dir=settings_of(request).documents_dir,
                )
    except Conflict as exc:
        session.rollback()
        meeting = access_meeting(session, viewer, meeting_id, "view")
        why = why_not(session, viewer, meeting, step) or f"{exc}."
        return _confirm_page(request, meeting, step, error=f"{why} Nothing was changed.", status_code=409)
    done = "approved" if step == "approve" else "circulated"
    return RedirectResponse(f"/meetings/{meeting_id}/minutes?done={done}", status_code=303)


# ---- the PDF -----------------------------------------------------------------------------------------


@router.get("/{meeting_id}/minutes.pdf")
def minutes_pdf(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    """The reader's minutes: the stored PDF of the version circulated, or a draft built now for those who
    minute the meeting."""
    with session.begin():
        meeting = _readable(session, viewer, meeting_id)
        minute = minutes.minute_of(session, meeting)
        if minute is None:
            raise NotFound("minutes")
        reader = minutes.reader_for(session, viewer, meeting)
        headers = {
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        if minute.status in (MinutesStatus.draft, MinutesStatus.approved):
            data = minutes.build_pdf(session, meeting, reader)
            _audit_read(session, request, viewer, meeting, "minutes.downloaded", version=minute.version, draft=True)
            name = f"draft-{minutes.pdf_filename(meeting, minute, None)}"
            return Response(data, media_type="application/pdf", headers=headers | _disposition(name))
        minutes.ensure_pdfs(session, meeting, now=now_of(request), storage_dir=settings_of(request).documents_dir)
        agency_id = None if reader.full else (reader.agency.id if reader.agency else -1)
        document = minutes.current_pdf(session, meeting, agency_id=agency_id) if agency_id != -1 else None
        if document is None:
            raise NotFound("minutes pdf")
        if not may_download(session, viewer, document):
            return render(request, "data_protection/document_withdrawn.html", status_code=410, document=document)
        path = document_path(settings_of(request).documents_dir, document)
        if not path.is_file():
            raise RuntimeError(f"minutes document {document.id} has no stored file")
        _audit_read(
            session,
            request,
            viewer,
            meeting,
            "minutes.downloaded",
            version=document.papers_version,
            document=document.id,
        )
    return FileResponse(path, media_type="application/pdf", headers=headers | _disposition(document.original_filename))


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": content_disposition(filename)}


# ---- corrections ---------------------------------------------------------------------------------------


def _correction_form(
    request: Request, session: Session, viewer: Principal, meeting: Meeting, *, typed=None, errors=None, code=200
):
    built = minutes.build(session, meeting, minutes.reader_for(session, viewer, meeting))
    return render(
        request,
        "minutes/correction_new.html",
        status_code=code,
        meeting=meeting,
        m=built,
        typed=typed or {"item": "general", "body": ""},
        errors=errors or {},
    )


def _correctable(session: Session, viewer: Principal, meeting_id: int, now) -> Meeting:
    meeting = access_meeting(session, viewer, meeting_id, "view")
    _refuse_unless(minutes.may_correct(session, viewer, meeting), "minutes.correct", meeting)
    if not minutes.open_for_corrections(minutes.minute_of(session, meeting), now):
        raise Conflict("These minutes are not open for corrections")
    return meeting


@router.get("/{meeting_id}/minutes/corrections/new")
def correction_page(request: Request, session: DbSession, viewer: SignedIn, meeting_id: int) -> Response:
    meeting = _correctable(session, viewer, meeting_id, now_of(request))
    return _correction_form(request, session, viewer, meeting)


@router.post("/{meeting_id}/minutes/corrections/new")
def ask_correction(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    item: str = Form("general"),
    body: str = Form(""),
) -> Response:
    typed = {"item": item, "body": body}
    try:
        with session.begin():
            meeting = _correctable(session, viewer, meeting_id, now_of(request))
            if item != "general" and not item.isdigit():
                raise Invalid({"item": "Choose an item from these minutes, or the minutes in general"})
            minutes.request_correction(
                session,
                meeting,
                person_id=viewer.person_id,
                agenda_item_id=None if item == "general" else int(item),
                body=body,
                now=now_of(request),
            )
    except Invalid as exc:
        session.rollback()
        meeting = access_meeting(session, viewer, meeting_id, "view")
        return _correction_form(request, session, viewer, meeting, typed=typed, errors=exc.problems, code=400)
    return RedirectResponse(f"/meetings/{meeting_id}/minutes?done=asked#corrections", status_code=303)


def _answer_form(
    request: Request,
    session: Session,
    meeting: Meeting,
    correction,
    *,
    typed=None,
    errors=None,
    conflict: EditConflict | None = None,
    code=200,
):
    text, version = minutes.corrected_text(session, meeting, correction)
    built_items = {i.id: i for i in minutes.minuted_items(meeting)}
    item = built_items.get(correction.agenda_item_id)
    return render(
        request,
        "minutes/correction_answer.html",
        status_code=code,
        meeting=meeting,
        correction=correction,
        about=(item.referral.reference if item and item.referral else "this item") if item else None,
        asker=correction.person_id,
        asker_name=_person_name(session, correction.person_id),
        typed=typed or {"answer": "", "response": "", "text": text, "base_version": str(version)},
        errors=errors or {},
        conflict=conflict,
    )


def _person_name(session: Session, person_id: int) -> str:
    person = session.get(Person, person_id)
    return person.name if person else "Someone no longer listed"


def _answerable(session: Session, viewer: Principal, meeting_id: int, correction_id: int):
    meeting = access_meeting(session, viewer, meeting_id, "view")
    _refuse_unless(meeting.chair_id == viewer.person_id, "minutes.answer_correction", meeting)
    correction = minutes.correction_of(session, meeting, correction_id)
    return meeting, correction


@router.get("/{meeting_id}/minutes/corrections/{correction_id}")
def answer_page(
    request: Request, session: DbSession, viewer: SignedIn, meeting_id: int, correction_id: int
) -> Response:
    meeting, correction = _answerable(session, viewer, meeting_id, correction_id)
    if correction.status != CorrectionStatus.open:
        return RedirectResponse(f"/meetings/{meeting_id}/minutes#corrections", status_code=303)
    return _answer_form(request, session, meeting, correction)


@router.post("/{meeting_id}/minutes/corrections/{correction_id}")
def answer(
    request: Request,
    session: DbSession,
    viewer: SignedIn,
    meeting_id: int,
    correction_id: int,
    answer: str = Form(""),
    response: str = Form(""),
    text: str = Form(""),
    base_version: str = Form("0"),
) -> Response:
    typed = {"answer": answer, "response": response, "text": text, "base_version": base_version}
    changed = False
    try:
        with session.begin():
            meeting, correction = _answerable(session, viewer, meeting_id, correction_id)
            if answer not in ("accept", "decline"):
                raise Invalid({"answer": "Choose whether to accept or decline the correction"})
            result = minutes_mail.answer_correction(
                session,
                meeting,
                correction_id,
                person_id=viewer.person_id,
                accept=answer == "accept",
                response=response,
                text=text.replace("\r\n", "\n") if answer == "accept" else None,
                base_version=int(base_version) if base_version.isdigit() else -1,
                now=now_of(request),
                mail=mail_context(request),
                storage_dir=settings_of(request).documents_dir,
            )
            changed = result.changed
    except (Invalid, EditConflict) as exc:
        session.rollback()
        meeting, correction = _answerable(session, viewer, meeting_id, correction_id)
        if isinstance(exc, EditConflict):
            typed |= {"base_version": str(exc.version)}
            errors = {"text": "Someone changed this text since you opened the page. Both versions are shown below."}
            return _answer_form(
                request, session, meeting, correction, typed=typed, errors=errors, conflict=exc, code=409
            )
        return _answer_form(request, session, meeting, correction, typed=typed, errors=exc.problems, code=400)
    done = "corrected" if changed else "answered"
    return RedirectResponse(f"/meetings/{meeting_id}/minutes?done={done}#corrections", status_code=303)
