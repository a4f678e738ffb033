"""Minutes: what each reader may read of a held meeting, and their life from draft to final.

draft (the meeting room closed) -> approved (the chair) -> circulated (chair or coordinator: a PDF per
view is stored, attendees get a link) -> open for corrections for the series' corrections_working_days
-> final (a sweep, once the window has passed and no correction is left open).

What a reader sees follows the papers (meetings.papers.view_for): the chair, minute-taker and
coordinator read everything; an agency reads the restricted health and community safety sections
only when its sharing group may, and the contributions shared with it. Items held back from the
papers (no consent or lawful basis) are left out of every agency's minutes too.

Due dates count working days from the meeting day: the outcome to schools (outcome_due_working_days)
and approved-and-circulated minutes (minutes_due_working_days). overdue_steps lists what is late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agencies.models import Agency, Person, Role
from caseconf import audit
from caseconf.clock import london, london_text, london_today
from caseconf.errors import Conflict, Forbidden, Invalid, NotFound
from meetings import agenda, papers
from meetings.access import Principal, can_on_meeting, invitation_for
from meetings.edits import save_text
from meetings.models import (
    Action,
    AgendaItem,
    AgendaItemKind,
    AgendaItemStatus,
    Attendance,
    Contribution,
    CorrectionStatus,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    MeetingStatus,
    Minute,
    MinuteCorrection,
    MinutesStatus,
    OutcomeOption,
    PupilOfConcern,
    ReferralStatus,
    ReferralStatusChange,
    Visibility,
)
from meetings.working_days import add_working_days

MINUTES_STATUS_WORDS = {
    MinutesStatus.draft: "Draft",
    MinutesStatus.approved: "Approved by the chair",
    MinutesStatus.circulated: "Circulated: open for corrections",
    MinutesStatus.final: "Final",
}
ATTENDANCE_WORDS = {
    Attendance.present: "Present",
    Attendance.apologies: "Apologies",
    Attendance.information_sent: "Apologies, information sent",
    Attendance.absent: "Absent",
}
ACTION_STATUS_WORDS = {"open": "Open", "done": "Done", "cancelled": "Cancelled"}
REASON_WORDS = {
    "circumstances_changed": "Circumstances changed",
    "agency_did_not_act": "Agency did not act",
    "other": "Other",
}
CONFIDENTIALITY = (
    "The chair read the confidentiality statement: information shared at this meeting is for the purpose of "
    "safeguarding and supporting the children discussed, and is not shared further without the agreement of "
    "the agency that gave it."
)
FULL_AUDIENCE = "Full minutes for the chair, minute-taker and coordinator"
MAX_CORRECTION = 2000
MAX_RESPONSE = 2000
MAX_TEXT = 20000
# Meetings whose minutes are past this stage have nothing more to circulate or approve.
AFTER_THE_MEETING = frozenset(
    {MeetingStatus.held, MeetingStatus.minutes_draft, MeetingStatus.minutes_approved, MeetingStatus.minutes_circulated}
)


# ---- what a reader sees ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """Whose minutes: `full` for those who run the meeting; else the agency they were invited for (None: an
    invitee with no agency, who sees only what is shared with every invitee)."""

    full: bool
    agency: Agency | None


def reader_for(session: Session, principal: Principal, meeting: Meeting) -> Reader:
    runs_it = (
        can_on_meeting(session, principal, "coordinate", meeting)
        or meeting.minute_taker_id == principal.person_id
        or meeting.series.coordinator_id == principal.person_id
    )
    if runs_it:
        return Reader(True, None)
    invitation = invitation_for(session, meeting, principal.person_id)
    return Reader(False, invitation.agency if invitation else None)


def _view(reader: Reader, contributions: list[Contribution]) -> papers.View:
    if reader.full:
        return papers.view_for(None, contributions)
    if reader.agency is not None:
        return papers.view_for(reader.agency, contributions)
    shared = frozenset(c.id for c in contributions if c.visibility == Visibility.all_invitees)
    return papers.View(False, False, shared)


def _audience(reader: Reader, view: papers.View) -> str:
    if reader.full:
        return FULL_AUDIENCE
    if reader.agency is None:
        return "Minutes for invitees: leaves out the health and community safety sections"
    return papers.audience_of(view, reader.agency).replace("Agency pack", "Agency minutes")


@dataclass(frozen=True)
class AttendanceRow:
    name: str
    agency: str
    role: str
    attendance: str
    note: str
    deputy_for: str


@dataclass(frozen=True)
class ActionRow:
    description: str
    owner: str
    agency: str
    due_on: date
    involves_school: bool
    status: str
    reason: str


@dataclass(frozen=True)
class DecisionRow:
    label: str
    service_name: str
    rationale: str
    dissent: str
    review_on: date | None


@dataclass(frozen=True)
class ContributionRow:
    agency: str
    body: str
    nothing_known: bool
    shared_with: str = ""  # for the full minutes: who else may read it, when not every invitee


def _shared_with(contribution: Contribution) -> str:
    if contribution.visibility == Visibility.chair_only:
        return "chair only"
    if contribution.visibility == Visibility.named_agencies:
        return "shared with " + ", ".join(contribution.visible_to_agencies or [])
    return ""


@dataclass
class ItemMinute:
    item: AgendaItem
    number: int
    reference: str
    school: str
    label: str
    notes: str
    contributions: list[ContributionRow] = field(default_factory=list)
    health: list[tuple[str, str]] | None = None  # None: not shown to this reader
    community_safety: list[tuple[str, str]] | None = None
    decision: DecisionRow | None = None
    actions: list[ActionRow] = field(default_factory=list)


@dataclass
class Minutes:
    meeting: Meeting
    minute: Minute | None
    reader: Reader
    view: papers.View
    audience: str
    series_name: str
    date_text: str
    time_text: str
    place: str
    chair: str
    minute_taker: str
    status: str
    version: int
    attendance: list[AttendanceRow]
    confidentiality_read: bool
    reviewed: list[tuple[str, ActionRow]]  # (reference, the action reviewed)
    items: list[ItemMinute]
    summary: str


def decision_label(session: Session, decision: Decision) -> str:
    """The outcome option's label as chosen, else the option for its code, else the code in words."""
    if decision.option is not None:
        return decision.option.label
    option = session.scalar(select(OutcomeOption).where(OutcomeOption.code == decision.outcome))
    return option.label if option else str(decision.outcome).replace("_", " ").capitalize()


def minute_of(session: Session, meeting: Meeting, *, for_update: bool = False) -> Minute | None:
    query = select(Minute).where(Minute.meeting_id == meeting.id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def minuted_items(meeting: Meeting) -> list[AgendaItem]:
    """Items the meeting had before it (not taken off or moved on), in agenda order."""
    kept = [i for i in meeting.items if i.status in (AgendaItemStatus.listed, AgendaItemStatus.discussed)]
    return sorted(kept, key=lambda i: (i.position, i.id))


def held_slots(meeting: Meeting) -> list[agenda.Slot]:
    """The agenda as it was at a meeting that has met: the items it had, one after another from the start."""
    start = london(meeting.starts_at)
    result = []
    for item in minuted_items(meeting):
        end = london(start + timedelta(minutes=item.slot_minutes))
        result.append(agenda.Slot(item, start, end))
        start = end
    return result


def decision_labels(session: Session, meeting: Meeting) -> dict[int, str]:
    """Each decided item's outcome label, by agenda item id."""
    decisions = session.scalars(
        select(Decision)
        .join(AgendaItem, AgendaItem.id == Decision.agenda_item_id)
        .where(AgendaItem.meeting_id == meeting.id)
    )
    return {d.agenda_item_id: decision_label(session, d) for d in decisions}


def listed_as(session: Session, item: AgendaItem) -> str:
    """new, review or carried forward, as the item came onto this meeting's agenda: from the referral's
    status before the meeting started, not its status now (a decision at this meeting may have put it
    into review since)."""
    if item.carried_from_id is not None or item.kind != AgendaItemKind.referral or item.referral_id is None:
        return agenda.item_label(item)
    before = item.added_at or item.meeting.starts_at
    status = session.scalar(
        select(ReferralStatusChange.to_status)
        .where(ReferralStatusChange.referral_id == item.referral_id, ReferralStatusChange.changed_at < before)
        .order_by(ReferralStatusChange.changed_at.desc(), ReferralStatusChange.id.desc())
        .limit(1)
    )
    if status is None:
        return agenda.item_label(item)
    return "review" if status == ReferralStatus.review else "new"


def _action_row(action: Action, agencies: dict[int, Agency]) -> ActionRow:
    agency = agencies.get(action.owner_agency_id) if action.owner_agency_id else None
    return ActionRow(
        description=action.description,
        owner=action.owner_person.name if action.owner_person else "",
        agency=agency.name if agency else ("School" if action.owner_school_id else ""),
        due_on=action.due_on,
        involves_school=action.involves_school,
        status=ACTION_STATUS_WORDS.get(action.status, action.status),
        reason=REASON_WORDS.get(action.not_done_reason or "", action.not_done_reason or ""),
    )


def _attendance(session: Session, meeting: Meeting, agencies: dict[int, Agency]) -> list[AttendanceRow]:
    rows = []
    live = [i for i in meeting.invitations if i.cancelled_at is None]
    for invitation in sorted(live, key=lambda i: (agencies[i.agency_id].name if i.agency_id else "", i.person.name)):
        deputy_for = session.get(Person, invitation.deputy_for_id) if invitation.deputy_for_id else None
        rows.append(
            AttendanceRow(
                name=invitation.person.name,
                agency=agencies[invitation.agency_id].name if invitation.agency_id else "",
                role=papers.ROLE_WORDS.get(invitation.role, invitation.role),
                attendance=ATTENDANCE_WORDS.get(invitation.attendance or "", "Not recorded"),
                note=invitation.attendance_note or "",
                deputy_for=deputy_for.name if deputy_for else "",
            )
        )
    return rows


def _concern_label(session: Session, item: AgendaItem) -> str:
    concern = session.get(PupilOfConcern, item.concern_id) if item.concern_id else None
    return f"Pupil of concern: {concern.label}" if concern else "Consultation"


def build(session: Session, meeting: Meeting, reader: Reader) -> Minutes:
    """The minutes as `reader` may read them."""
    contributions = papers._contributions(session, meeting)
    view = _view(reader, contributions)
    agencies = {a.id: a for a in session.scalars(select(Agency))}
    held = {i.id for i in papers.held_items(meeting)}
    minute = minute_of(session, meeting)
    shown = [c for c in contributions if c.id in view.contribution_ids]
    items, reviewed = [], []
    for item in minuted_items(meeting):
        if item.kind == AgendaItemKind.action_review and item.action_id:
            action = session.get(Action, item.action_id)
            reference = action.referral.reference if action.referral else "No referral"
            reviewed.append((reference, _action_row(action, agencies)))
            continue
        if item.id in held and not reader.full:
            continue
        referral = item.referral
        decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id))
        actions = session.scalars(select(Action).where(Action.agenda_item_id == item.id).order_by(Action.id)).all()
        items.append(
            ItemMinute(
                item=item,
                number=len(items) + 1,
                reference=referral.reference if referral else _concern_label(session, item),
                school=referral.school.name if referral else "",
                label=listed_as(session, item),
                notes=item.notes or "",
                contributions=[
                    ContributionRow(
                        agencies[c.agency_id].name,
                        c.body or "",
                        c.nothing_known,
                        _shared_with(c) if reader.full else "",
                    )
                    for c in shown
                    if c.agenda_item_id == item.id
                ],
                health=papers.facts(referral.health) if referral and view.health else None,
                community_safety=papers.facts(referral.community_safety)
                if referral and view.community_safety
                else None,
                decision=DecisionRow(
                    label=decision_label(session, decision),
                    service_name=decision.service_name or "",
                    rationale=decision.rationale,
                    dissent=decision.dissent or "",
                    review_on=decision.review_on,
                )
                if decision
                else None,
                actions=[_action_row(a, agencies) for a in actions],
            )
        )
    return Minutes(
        meeting=meeting,
        minute=minute,
        reader=reader,
        view=view,
        audience=_audience(reader, view),
        series_name=meeting.series.name,
        date_text=f"{meeting.meeting_date:%A %-d %B %Y}",
        time_text=london_text(meeting.starts_at, "%-I:%M%p").lower()
        + (f" to {london_text(meeting.ended_at, '%-I:%M%p').lower()}" if meeting.ended_at else ""),
        place=meeting.location or "Not recorded",
        chair=meeting.chair.name if meeting.chair else "Not recorded",
        minute_taker=meeting.minute_taker.name if meeting.minute_taker else "Not recorded",
        status=MINUTES_STATUS_WORDS.get(minute.status, minute.status) if minute else "Not started",
        version=minute.version if minute else 0,
        attendance=_attendance(session, meeting, agencies),
        confidentiality_read=meeting.confidentiality_read,
        reviewed=reviewed,
        items=items,
        summary=minute.summary if minute else "",
    )


# ---- the PDF -------------------------------------------------------------------------------------


def render_html(minutes: Minutes) -> str:
    return papers._environment().get_template("minutes/minutes.html").render(m=minutes, confidentiality=CONFIDENTIALITY)


def build_pdf(session: Session, meeting: Meeting, reader: Reader) -> bytes:
    return papers._to_pdf(render_html(build(session, meeting, reader)))


def pdf_filename(meeting: Meeting, minute: Minute, agency: Agency | None) -> str:
    suffix = "" if agency is None else f"-{agency.code.lower()}"
    return f"minutes-{meeting.meeting_date:%Y-%m-%d}-v{minute.version}{suffix}.pdf"


def _reading_agencies(meeting: Meeting) -> list[Agency]:
    """The agencies invited (not withdrawn): each gets the minutes its sharing group may read."""
    found = {i.agency.id: i.agency for i in meeting.invitations if i.cancelled_at is None and i.agency is not None}
    return [found[k] for k in sorted(found)]


def store_pdfs(
    session: Session, meeting: Meeting, minute: Minute, *, now: datetime, storage_dir: Path
) -> dict[int | None, Document]:
    """The full minutes and one per invited agency, as Documents of this minutes version; agencies with the
    same view share one rendering. Files are removed again if the transaction rolls back."""
    contributions = papers._contributions(session, meeting)
    stored = {
        agency.id if agency else None: papers.store_pdf(
            session,
            meeting,
            kind=DocumentKind.minutes,
            agency=agency,
            version=minute.version,
            filename=pdf_filename(meeting, minute, agency),
            description="Minutes" if agency is None else f"Minutes for {agency.name}",
            data=data,
            now=now,
            storage_dir=storage_dir,
        )
        for agency, data in papers.per_view(
            _reading_agencies(meeting),
            lambda agency: _view(Reader(False, agency), contributions),
            lambda agency: build_pdf(session, meeting, Reader(agency is None, agency)),
        )
    }
    audit.record(
        session,
        now=now,
        action="minutes.pdfs_stored",
        record_type="meeting",
        record_id=meeting.id,
        version=minute.version,
        documents=[d.id for d in stored.values()],
    )
    return stored


def ensure_pdfs(session: Session, meeting: Meeting, *, now: datetime, storage_dir: Path) -> bool:
    """Circulated or final minutes with no PDF stored for their version (minutes recorded without going
    through circulate, such as the demo's): build and store them now. True when they were built."""
    minute = minute_of(session, meeting, for_update=True)
    if minute is None or minute.status not in (MinutesStatus.circulated, MinutesStatus.final):
        return False
    session.refresh(minute)
    stored = session.scalar(
        select(Document.id)
        .where(
            Document.kind == DocumentKind.minutes,
            Document.meeting_id == meeting.id,
            Document.papers_version == minute.version,
        )
        .limit(1)
    )
    if stored is not None:
        return False
    store_pdfs(session, meeting, minute, now=now, storage_dir=storage_dir)
    return True


def current_pdf(session: Session, meeting: Meeting, *, agency_id: int | None) -> Document | None:
    """The latest stored minutes for an agency (None: the full minutes)."""
    return papers.latest_document(session, meeting, kind=DocumentKind.minutes, agency_id=agency_id)


# ---- who may do what ------------------------------------------------------------------------------


def may_read(session: Session, principal: Principal, meeting: Meeting, minute: Minute | None) -> bool:
    """Draft and approved minutes: those who minute the meeting (and the chair); circulated and final: every
    invitee and those who run it."""
    if minute is None:
        return False
    if minute.status in (MinutesStatus.draft, MinutesStatus.approved):
        return meeting.chair_id == principal.person_id or can_on_meeting(session, principal, "minute", meeting)
    return can_on_meeting(session, principal, "minutes", meeting)


def may_circulate(session: Session, principal: Principal, meeting: Meeting) -> bool:
    """The chair, or the clinic coordinator (the series' own, or anyone holding the role)."""
    return (
        meeting.chair_id == principal.person_id
        or meeting.series.coordinator_id == principal.person_id
        or Role.coordinator in principal.roles
    ) and meeting.status != MeetingStatus.cancelled


def may_correct(session: Session, principal: Principal, meeting: Meeting) -> bool:
    """Anyone invited (and not withdrawn), and those who run the meeting."""
    return can_on_meeting(session, principal, "minutes", meeting)


# ---- the lifecycle --------------------------------------------------------------------------------


def _locked_minute(session: Session, meeting: Meeting) -> Minute:
    minute = minute_of(session, meeting, for_update=True)
    if minute is None:
        raise Conflict("There are no minutes for this meeting yet")
    session.refresh(minute)
    return minute


def approve(session: Session, meeting: Meeting, *, person_id: int, now: datetime) -> Minute:
    """The chair approves the draft minutes."""
    if meeting.chair_id != person_id:
        raise Forbidden("minutes.approve")
    minute = _locked_minute(session, meeting)
    if meeting.status != MeetingStatus.minutes_draft or minute.status != MinutesStatus.draft:
        raise Conflict("These minutes are not a draft waiting for approval")
    minute.status = MinutesStatus.approved
    minute.approved_by_id = person_id
    minute.approved_at = now
    agenda.set_status(session, meeting, MeetingStatus.minutes_approved, now=now, by=person_id)
    audit.record(
        session,
        now=now,
        action="minutes.approved",
        actor_person_id=person_id,
        record_type="minute",
        record_id=minute.id,
        meeting_id=meeting.id,
        version=minute.version,
    )
    return minute


def circulate(session: Session, meeting: Meeting, *, person_id: int, now: datetime, storage_dir: Path) -> Minute:
    """Approved minutes go out: PDFs stored, the corrections window opens. Emails: notifications.minutes_mail."""
    minute = _locked_minute(session, meeting)
    if meeting.status != MeetingStatus.minutes_approved or minute.status != MinutesStatus.approved:
        raise Conflict("Only approved minutes can be circulated")
    minute.status = MinutesStatus.circulated
    minute.circulated_at = now
    minute.corrections_until = add_working_days(london_today(now), meeting.series.corrections_working_days)
    agenda.set_status(session, meeting, MeetingStatus.minutes_circulated, now=now, by=person_id)
    store_pdfs(session, meeting, minute, now=now, storage_dir=storage_dir)
    audit.record(
        session,
        now=now,
        action="minutes.circulated",
        actor_person_id=person_id,
        record_type="minute",
        record_id=minute.id,
        meeting_id=meeting.id,
        version=minute.version,
        corrections_until=minute.corrections_until.isoformat(),
    )
    return minute


def open_for_corrections(minute: Minute | None, now: datetime) -> bool:
    return (
        minute is not None
        and minute.status == MinutesStatus.circulated
        and minute.corrections_until is not None
        and london_today(now) <= minute.corrections_until
    )


def request_correction(
    session: Session, meeting: Meeting, *, person_id: int, agenda_item_id: int | None, body: str, now: datetime
) -> MinuteCorrection:
    """An attendee asks for a correction, to one item or in general, while the window is open."""
    runs_it = person_id in {meeting.chair_id, meeting.minute_taker_id, meeting.series.coordinator_id}
    if not runs_it and invitation_for(session, meeting, person_id) is None:
        raise Forbidden("minutes.correct")
    minute = _locked_minute(session, meeting)
    if not open_for_corrections(minute, now):
        if minute.status == MinutesStatus.circulated and minute.corrections_until:
            raise Conflict(f"Corrections closed on {minute.corrections_until:%A %-d %B %Y}")
        raise Conflict("These minutes are not open for corrections")
    problems = {}
    body = (body or "").replace("\x00", "").strip()
    if not body:
        problems["body"] = "Enter the correction you are asking for"
    elif len(body) > MAX_CORRECTION:
        problems["body"] = f"The correction must be {MAX_CORRECTION} characters or fewer"
    if agenda_item_id is not None and agenda_item_id not in {i.id for i in minuted_items(meeting)}:
        problems["agenda_item_id"] = "Choose an item from these minutes, or the minutes in general"
    if problems:
        raise Invalid(problems)
    correction = MinuteCorrection(
        minute_id=minute.id,
        agenda_item_id=agenda_item_id,
        person_id=person_id,
        body=body,
        status=CorrectionStatus.open,
        submitted_at=now,
    )
    session.add(correction)
    session.flush()
    audit.record(
        session,
        now=now,
        action="minutes.correction_requested",
        actor_person_id=person_id,
        record_type="minute_correction",
        record_id=correction.id,
        meeting_id=meeting.id,
        agenda_item_id=agenda_item_id,
    )
    return correction


def corrections(session: Session, meeting: Meeting, *, status: str | None = None) -> list[MinuteCorrection]:
    minute = minute_of(session, meeting)
    if minute is None:
        return []
    query = select(MinuteCorrection).where(MinuteCorrection.minute_id == minute.id)
    if status is not None:
        query = query.where(MinuteCorrection.status == status)
    return list(session.scalars(query.order_by(MinuteCorrection.id)))


def correction_of(session: Session, meeting: Meeting, correction_id: int) -> MinuteCorrection:
    minute = minute_of(session, meeting)
    correction = session.get(MinuteCorrection, correction_id) if 0 < correction_id < 2**31 else None
    if correction is None or minute is None or correction.minute_id != minute.id:
        raise NotFound(f"correction {correction_id}")
    return correction


def corrected_text(session: Session, meeting: Meeting, correction: MinuteCorrection) -> tuple[str, int]:
    """The text a correction is about and its version: the item's notes, or the minutes' summary."""
    if correction.agenda_item_id is not None:
        item = session.get(AgendaItem, correction.agenda_item_id)
        return item.notes or "", item.notes_version
    minute = minute_of(session, meeting)
    return minute.summary or "", minute.version


@dataclass(frozen=True)
class Answer:
    correction: MinuteCorrection
    changed: bool  # the text changed: the minutes have a new version to circulate


def answer_correction(
    session: Session,
    meeting: Meeting,
    correction_id: int,
    *,
    person_id: int,
    accept: bool,
    response: str,
    text: str | None,
    base_version: int,
    now: datetime,
    storage_dir: Path,
) -> Answer:
    """The chair accepts a correction (and corrects the text: a new minutes version, PDFs rebuilt) or
    declines it with a response. A stale text is refused with both versions (meetings.edits.EditConflict)."""
    if meeting.chair_id != person_id:
        raise Forbidden("minutes.answer_correction")
    minute = _locked_minute(session, meeting)
    correction = correction_of(session, meeting, correction_id)
    session.refresh(correction, with_for_update=True)
    if correction.status != CorrectionStatus.open:
        raise Conflict("This correction has already been answered")
    if minute.status != MinutesStatus.circulated:
        raise Conflict("These minutes are final: corrections can no longer be answered")
    response = (response or "").replace("\x00", "").strip()
    text = None if text is None else text.replace("\x00", "")
    problems = {}
    if not accept and not response:
        problems["response"] = "Say why the correction is declined"
    elif len(response) > MAX_RESPONSE:
        problems["response"] = f"The response must be {MAX_RESPONSE} characters or fewer"
    if accept and text is not None and len(text) > MAX_TEXT:
        problems["text"] = f"The text must be {MAX_TEXT} characters or fewer"
    if problems:
        raise Invalid(problems)
    changed = False
    if accept and text is not None:
        if correction.agenda_item_id is not None:
            item = session.get(AgendaItem, correction.agenda_item_id, with_for_update=True)
            changed = save_text(item, "notes", "notes_version", text=text, base_version=base_version).changed
            if changed:
                minute.version += 1
        else:
            changed = save_text(minute, "summary", "version", text=text, base_version=base_version).changed
    correction.status = CorrectionStatus.accepted if accept else CorrectionStatus.declined
    correction.response = response or ("Accepted and corrected" if changed else "Accepted")
    correction.resolved_at = now
    correction.resolved_by_id = person_id
    if changed:
        store_pdfs(session, meeting, minute, now=now, storage_dir=storage_dir)
    audit.record(
        session,
        now=now,
        action="minutes.correction_accepted" if accept else "minutes.correction_declined",
        actor_person_id=person_id,
        record_type="minute_correction",
        record_id=correction.id,
        meeting_id=meeting.id,
        minutes_version=minute.version,
        text_changed=changed,
    )
    return Answer(correction, changed)


def minutes_due_finalise(session: Session, *, now: datetime) -> list[int]:
    """Meetings whose circulated minutes are past their corrections window with no correction left open."""
    open_corrections = (
        select(MinuteCorrection.id)
        .where(MinuteCorrection.minute_id == Minute.id, MinuteCorrection.status == CorrectionStatus.open)
        .exists()
    )
    return list(
        session.scalars(
            select(Minute.meeting_id)
            .where(
                Minute.status == MinutesStatus.circulated,
                Minute.corrections_until < london_today(now),
                ~open_corrections,
            )
            .order_by(Minute.meeting_id)
        )
    )


def finalise(session: Session, meeting_id: int, *, now: datetime) -> Minute | None:
    """Make the minutes final if still due (locked and re-checked, so twice does it once)."""
    meeting = agenda.lock_meeting(session, meeting_id)
    if meeting is None:
        return None
    minute = minute_of(session, meeting, for_update=True)
    if minute is None:
        return None
    session.refresh(minute)
    if (
        minute.status != MinutesStatus.circulated
        or minute.corrections_until is None
        or minute.corrections_until >= london_today(now)
        or corrections(session, meeting, status=CorrectionStatus.open)
    ):
        return None
    minute.status = MinutesStatus.final
    minute.finalised_at = now
    audit.record(
        session,
        now=now,
        action="minutes.finalised",
        record_type="minute",
        record_id=minute.id,
        meeting_id=meeting.id,
        version=minute.version,
    )
    return minute


# ---- due dates and what is late -------------------------------------------------------------------


def outcome_due_on(meeting: Meeting) -> date:
    return add_working_days(meeting.meeting_date, meeting.series.outcome_due_working_days)


def minutes_due_on(meeting: Meeting) -> date:
    return add_working_days(meeting.meeting_date, meeting.series.minutes_due_working_days)


@dataclass(frozen=True)
class Step:
    code: str  # outcomes, minutes, corrections
    text: str  # what is due, in words
    due_on: date
    overdue: bool


def outcomes_waiting(session: Session, meeting: Meeting) -> list[AgendaItem]:
    """Referral items with a decision whose school has not been told yet."""
    return list(
        session.scalars(
            select(AgendaItem)
            .join(Decision, Decision.agenda_item_id == AgendaItem.id)
            .where(
                AgendaItem.meeting_id == meeting.id,
                AgendaItem.referral_id.is_not(None),
                AgendaItem.outcome_sent_at.is_(None),
            )
            .order_by(AgendaItem.position, AgendaItem.id)
        )
    )


def has_met(meeting: Meeting) -> bool:
    return meeting.ended_at is not None or meeting.status in AFTER_THE_MEETING


def steps(session: Session, meeting: Meeting, *, now: datetime) -> list[Step]:
    """What is still to do after the meeting, with its due date; `overdue` once the due day has passed."""
    if not has_met(meeting) or meeting.status == MeetingStatus.cancelled:
        return []
    today = london_today(now)
    found = []
    # Schools hear of meetings closed in the meeting room (ended_at), as the outcome sweep sends them.
    waiting = outcomes_waiting(session, meeting) if meeting.ended_at is not None else []
    if waiting:
        due = outcome_due_on(meeting)
        count = f"{len(waiting)} school{'s' if len(waiting) != 1 else ''}"
        found.append(Step("outcomes", f"Outcome to {count} due {due:%A %-d %B}", due, today > due))
    minute = minute_of(session, meeting)
    if minute is None or minute.status in (MinutesStatus.draft, MinutesStatus.approved):
        due = minutes_due_on(meeting)
        approved = minute is not None and minute.status == MinutesStatus.approved
        what = "Minutes to circulate" if approved else "Minutes to approve and circulate"
        found.append(Step("minutes", f"{what} due {due:%A %-d %B}", due, today > due))
    if minute is not None and minute.status == MinutesStatus.circulated and minute.corrections_until:
        waiting_corrections = session.scalar(
            select(func.count())
            .select_from(MinuteCorrection)
            .where(MinuteCorrection.minute_id == minute.id, MinuteCorrection.status == CorrectionStatus.open)
        )
        due = minute.corrections_until
        if waiting_corrections:
            plural = "s" if waiting_corrections != 1 else ""
            text = f"{waiting_corrections} correction{plural} to answer, due {due:%A %-d %B}"
            found.append(Step("corrections", text, due, today > due))
    return found


def overdue_steps(session: Session, meeting: Meeting, now: datetime) -> list[Step]:
    """What is late: outcomes not sent, minutes not circulated, corrections not answered."""
    return [step for step in steps(session, meeting, now=now) if step.overdue]


# ---- what the school sees ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SchoolOutcome:
    """A clinic's decision on a referral as the referring school sees it, once it has been told."""

    meeting_date: date
    series_name: str
    decision: str
    review_on: date | None
    actions: list[ActionRow]


def school_outcomes(session: Session, referral_id: int) -> list[SchoolOutcome]:
    """The decisions sent to the school on this referral, newest first, with the actions that involve it.
    Not the rationale or the agencies' information: those stay in the minutes."""
    agencies = {a.id: a for a in session.scalars(select(Agency))}
    found = []
    items = session.scalars(
        select(AgendaItem)
        .where(AgendaItem.referral_id == referral_id, AgendaItem.outcome_sent_at.is_not(None))
        .order_by(AgendaItem.outcome_sent_at.desc(), AgendaItem.id.desc())
    )
    for item in items:
        decision = session.scalar(select(Decision).where(Decision.agenda_item_id == item.id))
        if decision is None:
            continue
        actions = session.scalars(
            select(Action)
            .where(Action.agenda_item_id == item.id, Action.involves_school.is_(True))
            .order_by(Action.due_on, Action.id)
        )
        found.append(
            SchoolOutcome(
                meeting_date=item.meeting.meeting_date,
                series_name=item.meeting.series.name,
                decision=decision_label(session, decision),
                review_on=decision.review_on,
                actions=[_action_row(a, agencies) for a in actions],
            )
        )
    return found
