"""Consent withdrawal: recorded, the referral taken off the agenda, updated papers without it, packs already
circulated withdrawn from agencies, and the right people told by reference only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from agencies.models import Person
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid
from meetings import consent, papers
from meetings.access import principal_for
from meetings.documents import document_path
from meetings.models import (
    AgendaItem,
    AgendaItemStatus,
    Document,
    DocumentKind,
    Meeting,
    Referral,
)
from notifications.consent_mail import NOT_SENT, record_withdrawal
from notifications.models import OutboundMessage, OutboundStatus
from notifications.outbox import enqueue
from notifications.papers_mail import meetings_due_papers
from tests.integration.test_agenda import MAIL
from tests.integration.test_papers import PAPERS_AT, circulate, clinic, pdf_text  # noqa: F401

WITHDRAWN_AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # after the papers went, before the Thursday clinic


def juniper(session, clinic) -> Referral:
    return session.scalar(select(Referral).where(Referral.reference == clinic["references"][0]))


def withdraw(session_factory, clinic, *, note="Mother phoned the school on 1 December to withdraw consent."):
    with transaction(session_factory) as s:
        referral = juniper(s, clinic)
        return record_withdrawal(
            s, referral=referral, person_id=clinic["world"]["referrer"].id, note=note, now=WITHDRAWN_AT, mail=MAIL
        ).removed_from


def test_withdrawal_is_recorded_takes_it_off_the_agenda_and_updated_papers_leave_it_out(
    session_factory, settings, clinic, session
):
    assert circulate(session_factory, settings, clinic["meeting"])[0] == 1
    with transaction(session_factory) as s:  # a chase queued for an agency before the withdrawal
        referral = juniper(s, clinic)
        enqueue(
            s, now=PAPERS_AT, idempotency_key="agency-chase", kind="wait_chase", recipient="camhs@kestrelford.example.org",
            subject="Chase", body_text="Chase", mail_domain="kestrelford.example.org", referral_id=referral.id,
        )  # fmt: skip
        enqueue(
            s, now=PAPERS_AT, idempotency_key="school-note", kind="referral_status", recipient="dsl@900001.example.org",
            subject="Status", body_text="Status", mail_domain="kestrelford.example.org", referral_id=referral.id,
        )  # fmt: skip

    removed_from = withdraw(session_factory, clinic)

    assert [m.id for m in removed_from] == [clinic["meeting"]]
    referral = juniper(session, clinic)
    assert referral.consent_withdrawn_at == WITHDRAWN_AT
    assert referral.consent_withdrawn_by_id == clinic["world"]["referrer"].id
    assert referral.consent_withdrawal_note.startswith("Mother phoned")
    item = session.scalar(select(AgendaItem).where(AgendaItem.referral_id == referral.id))
    assert item.status == AgendaItemStatus.removed
    # Every pack already circulated is withdrawn, and the papers sweep finds the meeting due again.
    packs = session.scalars(select(Document).where(Document.kind == DocumentKind.papers_pack)).all()
    assert packs and all(d.withdrawn_at == WITHDRAWN_AT for d in packs)
    assert clinic["meeting"] in meetings_due_papers(session, now=WITHDRAWN_AT)
    # The agency's queued email is stopped; the school's still goes.
    by_key = {m.idempotency_key: m for m in session.scalars(select(OutboundMessage))}
    assert (by_key["agency-chase"].status, by_key["agency-chase"].last_error) == (OutboundStatus.failed, NOT_SENT)
    assert by_key["school-note"].status == OutboundStatus.pending
    # The coordinator and the chair are told, by reference only.
    told = [m for m in by_key.values() if m.kind == "consent_withdrawn"]
    assert sorted(m.recipient for m in told) == [
        "coordinator@kestrelford.example.org",
        "eip.north@kestrelford.example.org",
    ]
    assert all(referral.reference in m.subject and "Juniper" not in m.body_text + m.subject for m in told)
    audited = session.scalar(select(AuditEvent).where(AuditEvent.action == "referral.consent_withdrawn"))
    assert audited.record_id == str(referral.id)
    assert sorted(audited.detail["withdrawn_documents"]) == sorted(d.id for d in packs)

    # Updated papers go out without it; they are not withdrawn.
    version, _, _ = circulate(session_factory, settings, clinic["meeting"], now=WITHDRAWN_AT)
    assert version == 2
    with session_factory() as s:
        meeting = s.get(Meeting, clinic["meeting"])
        full = papers.current_pack(s, meeting, agency_id=None)
        assert full.papers_version == 2 and full.withdrawn_at is None
        text = pdf_text(document_path(settings.documents_dir, full).read_bytes())
    assert referral.reference not in text and clinic["references"][1] in text


def test_a_withdrawn_pack_is_only_for_the_chair_and_coordinator(session_factory, settings, clinic, session):
    circulate(session_factory, settings, clinic["meeting"])
    withdraw(session_factory, clinic)
    pack = session.scalar(select(Document).where(Document.agency_id == clinic["agencies"]["CAMHS"]))
    rep = principal_for(session.get(Person, clinic["reps"]["CAMHS"]))
    chair = principal_for(session.get(Person, clinic["chair"]))
    coordinator = principal_for(session.get(Person, clinic["coordinator"]))
    assert not consent.may_download(session, rep, pack)
    assert consent.may_download(session, chair, pack) and consent.may_download(session, coordinator, pack)


def test_a_note_is_required_and_a_second_withdrawal_is_refused(session_factory, clinic, session):
    with pytest.raises(Invalid):
        withdraw(session_factory, clinic, note="   ")
    assert juniper(session, clinic).consent_withdrawn_at is None  # nothing kept from the refused attempt
    withdraw(session_factory, clinic)
    with pytest.raises(Conflict):
        withdraw(session_factory, clinic)


def test_it_cannot_be_put_back_on_an_agenda(session_factory, clinic, session):
    from meetings import agenda

    withdraw(session_factory, clinic)
    with session_factory() as s:
        meeting = s.get(Meeting, clinic["next"])
        addable = agenda.addable_referrals(s, meeting, now=WITHDRAWN_AT)
    assert clinic["references"][0] not in [r.reference for r in addable]


def test_triage_cannot_list_it_for_the_clinic_once_consent_is_withdrawn(session_factory, clinic, session):
    from meetings import referrals

    withdraw(session_factory, clinic)
    with transaction(session_factory) as s, pytest.raises(Invalid) as refused:
        referrals.accept_and_list(
            s, referral=juniper(s, clinic), meeting_id=clinic["next"], now=WITHDRAWN_AT, person_id=1
        )
    assert "Consent to share was withdrawn" in str(refused.value.problems)


def test_a_papers_email_still_queued_does_not_carry_the_withdrawn_pack_to_an_agency(
    session_factory, settings, clinic, session, tmp_path
):
    from notifications.catcher import read_maildir
    from tests.integration.test_papers import deliver_to_catcher

    circulate(session_factory, settings, clinic["meeting"])  # the police ask for the pack attached
    withdraw(session_factory, clinic)  # before the delivery pass has sent it

    report, maildir = deliver_to_catcher(session_factory, settings, tmp_path)

    caught = [m for m in read_maildir(maildir) if m.subject.startswith("Papers")]
    assert caught, "the papers emails without attachments still go"
    assert all(not m.attachments() for m in caught), "a withdrawn pack was emailed to an agency"
    police = session.scalar(
        select(OutboundMessage).where(
            OutboundMessage.recipient == "police.rep@kestrelford.example.org", OutboundMessage.kind == "papers"
        )
    )
    assert police.status == OutboundStatus.failed and "withdrawn" in police.last_error
