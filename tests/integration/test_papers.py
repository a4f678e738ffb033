"""The papers pack and its circulation: real PDFs read back with pypdf, real files, a real SMTP server."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from agencies.models import Agency, Role
from caseconf.db import transaction
from meetings import agenda, papers
from meetings.documents import document_path
from meetings.models import Contribution, Document, DocumentKind, Invitation, Meeting, MeetingStatus
from notifications.catcher import read_maildir, start_catcher
from notifications.delivery import Sender, deliver_due
from notifications.models import OutboundMessage, OutboundStatus
from notifications.papers_mail import circulate_papers, freeze_meeting, meetings_due_papers
from tests.conftest import free_port
from tests.factories import make_agency, make_person
from tests.integration.test_agenda import AFTER_CUTOFF, MAIL, list_on, make_referral, make_world

PAPERS_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # Tuesday 09:00 before the Thursday clinic


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def clinic(session_factory):
    """A frozen clinic with two referrals (one urgent), police, CAMHS and safeguarding reps invited,
    and a contribution of each visibility."""
    with transaction(session_factory) as s:
        w = make_world(s)
        meeting = w["meetings"][0]
        police = make_agency(s, code="POLICE", name="Kestrelford Police", group="police")
        police.attach_papers = True
        camhs = make_agency(s, code="CAMHS", name="Kestrelford CAMHS", group="health")
        safeguarding = make_agency(s, code="SAFEGUARDING", name="Safeguarding Team", group="safeguarding")
        reps = {}
        for agency in (police, camhs, safeguarding):
            rep = make_person(
                s, email=f"{agency.code.lower()}.rep@kestrelford.example.org", name=f"{agency.code.title()} Rep",
                role=Role.agency_rep, agency_id=agency.id,
            )  # fmt: skip
            s.add(Invitation(meeting_id=meeting.id, person_id=rep.id, agency_id=agency.id, role="member"))
            reps[agency.code] = rep.id
        s.add(Invitation(meeting_id=meeting.id, person_id=w["chair"].id, role="chair", rsvp="accepted"))
        juniper = make_referral(s, w, first_name="Juniper")
        marigold = make_referral(s, w, first_name="Marigold", urgency="priority")
        item = list_on(s, meeting, juniper)
        list_on(s, meeting, marigold)
        for agency, visibility, text, named in (
            (camhs, "all_invitees", "CAMHS-FOR-ALL", []),
            (police, "chair_only", "POLICE-CHAIR-ONLY", []),
            (safeguarding, "named_agencies", "SAFEGUARDING-FOR-CAMHS", ["CAMHS"]),
        ):
            s.add(
                Contribution(
                    agenda_item_id=item.id, agency_id=agency.id, author_id=reps[agency.code], body=text,
                    visibility=visibility, visible_to_agencies=named, created_at=AFTER_CUTOFF, updated_at=AFTER_CUTOFF,
                )
            )  # fmt: skip
        s.flush()
        ids = {
            "meeting": meeting.id,
            "next": w["meetings"][1].id,
            "coordinator": w["coordinator"].id,
            "chair": w["chair"].id,
            "reps": reps,
            "agencies": {"POLICE": police.id, "CAMHS": camhs.id, "SAFEGUARDING": safeguarding.id},
            "references": [juniper.reference, marigold.reference],
            "world": w,
        }
    with transaction(session_factory) as s:
        freeze_meeting(s, ids["meeting"], now=AFTER_CUTOFF, mail=MAIL)
    return ids


def circulate(session_factory, settings, meeting_id, now=PAPERS_AT):
    with transaction(session_factory) as s:
        result = circulate_papers(s, meeting_id, now=now, mail=MAIL, storage_dir=settings.documents_dir)
        return None if result is None else (result.papers_version, len(result.documents), len(result.emails))


def test_the_pack_has_the_agenda_and_each_variant_only_its_sections(session_factory, clinic):
    juniper, marigold = clinic["references"]
    with session_factory() as s:
        meeting = s.get(Meeting, clinic["meeting"])
        full = pdf_text(papers.build_pack(s, meeting))
        police = pdf_text(papers.build_pack(s, meeting, agency=s.get(Agency, clinic["agencies"]["POLICE"])))
        camhs = pdf_text(papers.build_pack(s, meeting, agency=s.get(Agency, clinic["agencies"]["CAMHS"])))

    # The agenda: urgent first, each with its slot from 13:30 London.
    assert full.index(marigold) < full.index(juniper)
    assert "13:30–13:45" in full and "13:45–14:00" in full
    assert "North Hot Clinic" in full and "Thursday 3 December 2026 at 1:30pm" in full
    assert "OFFICIAL-SENSITIVE" in full and "Page 1 of" in full
    assert "Destroy after the meeting" in full  # the pack's own footer on the page shared with the minutes
    assert "no onward sharing" not in full
    # The attendance list, with replies so far.
    assert "Police Rep" in full and "No reply yet" in full and "Priya North" in full and "Coming" in full
    # The child is named inside the pack (reached only through the portal).
    assert "Juniper Quillfeather" in full and "aged 10" in full

    assert "HEALTHSECRET" in full and "COMMUNITYSECRET" in full
    assert "HEALTHSECRET" not in police and "COMMUNITYSECRET" in police
    assert "HEALTHSECRET" in camhs and "COMMUNITYSECRET" not in camhs

    assert {"CAMHS-FOR-ALL", "POLICE-CHAIR-ONLY", "SAFEGUARDING-FOR-CAMHS"} <= set(full.split())
    assert "CAMHS-FOR-ALL" in police and "SAFEGUARDING-FOR-CAMHS" not in police
    assert "POLICE-CHAIR-ONLY" not in camhs and "SAFEGUARDING-FOR-CAMHS" in camhs


def test_text_typed_by_a_school_is_escaped_in_the_pack(session_factory, clinic):
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic["meeting"])
        agenda.listed_items(meeting)[0].referral.what_is_happening = '<img src="file:///etc/passwd"> <b>BOLD</b>'
    with session_factory() as s:
        text = pdf_text(papers.build_pack(s, s.get(Meeting, clinic["meeting"])))
    assert "<b>BOLD</b>" in text


def test_circulating_twice_sends_once(session_factory, session, settings, clinic):
    with session_factory() as s:
        assert meetings_due_papers(s, now=PAPERS_AT - timedelta(minutes=1)) == []
        assert meetings_due_papers(s, now=PAPERS_AT) == [clinic["meeting"]]
    # Full pack plus police, CAMHS and safeguarding; emails to three reps, the chair and the coordinator.
    assert circulate(session_factory, settings, clinic["meeting"]) == (1, 4, 5)
    assert circulate(session_factory, settings, clinic["meeting"]) is None
    with session_factory() as s:
        assert meetings_due_papers(s, now=PAPERS_AT + timedelta(hours=1)) == []

    meeting = session.get(Meeting, clinic["meeting"])
    assert (meeting.status, meeting.papers_sent_at, meeting.papers_version) == ("papers_sent", PAPERS_AT, 1)
    emails = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "papers")).all()
    assert len(emails) == 5
    for email in emails:
        assert email.subject == "Papers for the clinic on Thursday 3 December 2026 at 1:30pm"
        assert f"http://127.0.0.1:8000/meetings/{meeting.id}/papers" in email.body_text
        for name in ("Juniper", "Marigold", "Quillfeather"):
            assert name not in email.subject + email.body_text + email.body_html
    attached = {e.recipient: e.attachments for e in emails}
    assert attached["police.rep@kestrelford.example.org"][0]["filename"] == "papers-2026-12-03-v1-police.pdf"
    assert all(not a for r, a in attached.items() if not r.startswith("police."))

    documents = session.scalars(select(Document).where(Document.kind == DocumentKind.papers_pack)).all()
    assert {d.agency_id for d in documents} == {None, *clinic["agencies"].values()}
    for document in documents:
        data = document_path(settings.documents_dir, document).read_bytes()
        assert data.startswith(b"%PDF") and len(data) == document.size_bytes


def test_a_crash_part_way_leaves_nothing_and_a_rerun_does_it_once(session_factory, session, settings, clinic):
    with pytest.raises(RuntimeError), transaction(session_factory) as s:
        circulate_papers(s, clinic["meeting"], now=PAPERS_AT, mail=MAIL, storage_dir=settings.documents_dir)
        raise RuntimeError("the worker died before committing")
    session.expire_all()
    assert session.get(Meeting, clinic["meeting"]).status == MeetingStatus.agenda_frozen
    assert session.scalar(select(func.count()).select_from(Document)) == 0
    assert (
        session.scalar(select(func.count()).select_from(OutboundMessage).where(OutboundMessage.kind == "papers")) == 0
    )
    assert not any(p.is_file() for p in settings.documents_dir.rglob("*")) if settings.documents_dir.exists() else True

    assert circulate(session_factory, settings, clinic["meeting"]) == (1, 4, 5)
    assert circulate(session_factory, settings, clinic["meeting"]) is None
    assert session.scalar(select(func.count()).select_from(Document)) == 4
    recipients = session.scalars(select(OutboundMessage.recipient).where(OutboundMessage.kind == "papers")).all()
    assert len(recipients) == len(set(recipients)) == 5


def test_a_change_after_the_papers_sends_updated_papers(session_factory, session, settings, clinic):
    circulate(session_factory, settings, clinic["meeting"])
    changed_at = PAPERS_AT + timedelta(hours=2)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic["meeting"])
        first = agenda.listed_items(meeting)[0]
        agenda.remove_item(
            s, meeting=meeting, item_id=first.id, now=changed_at, actor_id=clinic["coordinator"], to_next_meeting=True
        )
    later = changed_at + timedelta(minutes=15)
    with session_factory() as s:
        assert meetings_due_papers(s, now=later) == [clinic["meeting"]]
    assert circulate(session_factory, settings, clinic["meeting"], now=later) == (2, 4, 5)
    assert circulate(session_factory, settings, clinic["meeting"], now=later) is None

    updates = session.scalars(
        select(OutboundMessage).where(OutboundMessage.idempotency_key.like(f"papers:{clinic['meeting']}:2:%"))
    ).all()
    assert len(updates) == 5
    assert all(u.subject.startswith("Updated papers for the clinic on") for u in updates)
    history = session.scalars(
        select(Document.papers_version).where(Document.meeting_id == clinic["meeting"], Document.agency_id.is_(None))
    ).all()
    assert sorted(history) == [1, 2]
    with session_factory() as s:
        meeting = s.get(Meeting, clinic["meeting"])
        full = papers.current_pack(s, meeting, agency_id=None)
        assert full.papers_version == 2
        text = pdf_text(document_path(settings.documents_dir, full).read_bytes())
    juniper, marigold = clinic["references"]
    assert marigold not in text and juniper in text  # the urgent one went to the next clinic


def test_a_change_made_while_a_papers_run_was_starting_is_not_sent_twice(session_factory, session, settings, clinic):
    circulate(session_factory, settings, clinic["meeting"])
    changed_at = PAPERS_AT + timedelta(hours=2)
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic["meeting"])
        agenda.remove_item(s, meeting=meeting, item_id=agenda.listed_items(meeting)[0].id, now=changed_at,
                           actor_id=clinic["coordinator"], to_next_meeting=True)  # fmt: skip
    # A run that began (its `now`) a moment before the change still builds the papers after it.
    assert circulate(session_factory, settings, clinic["meeting"], now=changed_at - timedelta(seconds=5))[0] == 2
    with session_factory() as s:
        assert meetings_due_papers(s, now=changed_at + timedelta(minutes=15)) == []  # no third, identical round


def test_an_item_without_consent_is_held_back_and_the_coordinator_told(session_factory, session, settings, clinic):
    juniper, marigold = clinic["references"]
    with transaction(session_factory) as s:
        meeting = s.get(Meeting, clinic["meeting"])
        item = next(i for i in meeting.items if i.referral.reference == marigold)
        item.referral.consent_withdrawn_at = AFTER_CUTOFF
        held_id = item.id
    circulate(session_factory, settings, clinic["meeting"])
    documents = session.scalars(select(Document).where(Document.kind == DocumentKind.papers_pack)).all()
    for document in documents:
        text = pdf_text(document_path(settings.documents_dir, document).read_bytes())
        assert "Marigold" not in text and juniper in text
    held = session.scalars(select(OutboundMessage).where(OutboundMessage.kind == "papers_held")).all()
    assert [(m.recipient, m.idempotency_key) for m in held] == [
        ("coordinator@kestrelford.example.org", f"papers-held:{clinic['meeting']}:{held_id}")
    ]
    assert marigold in held[0].subject and "Marigold" not in held[0].body_text


def deliver_to_catcher(session_factory, settings, tmp_path):
    """Send everything due to a local mail catcher; returns the delivery report and the catcher's maildir."""
    port, maildir = free_port(), tmp_path / "mail"
    controller = start_catcher(maildir, "127.0.0.1", port)
    try:
        report = deliver_due(
            session_factory,
            smtp_url=f"smtp://127.0.0.1:{port}",
            sender=Sender(address="clinic@kestrelford.example.org", name="Inclusion Team"),
            now=lambda: PAPERS_AT,
            storage_dir=settings.documents_dir,
        )
    finally:
        controller.stop()
    return report, maildir


def test_the_pack_is_attached_only_for_agencies_that_asked(session_factory, session, settings, clinic, tmp_path):
    circulate(session_factory, settings, clinic["meeting"])
    report, maildir = deliver_to_catcher(session_factory, settings, tmp_path)
    assert report.failed == 0
    caught = {m.recipient: m for m in read_maildir(maildir) if m.subject.startswith("Papers")}
    assert len(caught) == 5
    police = caught["police.rep@kestrelford.example.org"]
    [(filename, content_type, data)] = police.attachments()
    assert (filename, content_type) == ("papers-2026-12-03-v1-police.pdf", "application/pdf")
    assert "COMMUNITYSECRET" in pdf_text(data) and "HEALTHSECRET" not in pdf_text(data)
    assert all(not m.attachments() for r, m in caught.items() if r != police.recipient)


def test_an_attachment_that_cannot_be_read_fails_that_message_only(
    session_factory, session, settings, clinic, tmp_path
):
    circulate(session_factory, settings, clinic["meeting"])
    with session_factory() as s:
        pack = papers.current_pack(s, s.get(Meeting, clinic["meeting"]), agency_id=clinic["agencies"]["POLICE"])
        document_path(settings.documents_dir, pack).unlink()
    report, maildir = deliver_to_catcher(session_factory, settings, tmp_path)
    assert (report.sent, report.failed) == (4, 1)
    failed = session.scalars(select(OutboundMessage).where(OutboundMessage.status == OutboundStatus.failed)).one()
    assert failed.recipient == "police.rep@kestrelford.example.org"
    assert "cannot be read" in failed.last_error
