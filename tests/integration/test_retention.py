"""The retention schedule on the demo borough: the dry-run report, then redaction and deletion, audited."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from agencies.models import Person, SignInToken
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.documents import document_path, store_file
from meetings.models import AgendaItem, Decision, Document, DocumentKind, Referral, RetentionRun
from meetings.retention import REMOVED, RetentionRules
from notifications import retention
from notifications.models import OutboundMessage, OutboundStatus
from notifications.outbox import enqueue

LOADED = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
YEARS_ON = datetime(2033, 6, 1, 2, 30, tzinfo=UTC)  # over six years after the demo's referrals ended
RULES = RetentionRules()


def ids(report, key):
    return next(entry["ids"] for entry in report["rules"] if entry["key"] == key)


def demo(session_factory):
    with transaction(session_factory) as s:
        load_demo(s, now=LOADED)
        return {r.reference or "draft": r.id for r in s.scalars(select(Referral))}


def test_nothing_is_due_before_its_time(session_factory):
    demo(session_factory)
    with transaction(session_factory) as s:
        report = retention.dry_run(s, datetime(2027, 1, 1, tzinfo=UTC), RULES).report
    assert ids(report, "referrals") == [] and ids(report, "children") == []


def test_dry_run_names_records_by_id_only_and_apply_redacts_and_deletes(session_factory, settings, session):
    refs = demo(session_factory)
    closed = refs["VPHC-2026-0001"]
    with session_factory() as s:
        child = s.get(Referral, closed).child
        names = (child.legal_first_name, child.legal_surname)
        born = child.date_of_birth
        outcome = s.scalar(select(Decision.outcome).join(AgendaItem).where(AgendaItem.referral_id == closed))
    with transaction(session_factory) as s:
        dry = retention.dry_run(s, YEARS_ON, RULES)
        report, dry_id = dry.report, dry.id
    assert set(ids(report, "referrals")) == {refs["VPHC-2026-0001"], refs["VPHC-2026-0002"], refs["VPHC-2026-0003"]}
    assert ids(report, "drafts") == [refs["draft"]]
    assert not any(name in json.dumps(report) for name in names)  # ids only, never the child
    assert session.get(Referral, closed).redacted_at is None  # a dry run changes nothing

    with transaction(session_factory) as s:
        applied = retention.apply_run(
            s, YEARS_ON, RULES, s.get(RetentionRun, dry_id), storage_dir=settings.documents_dir
        )
        assert applied.report["dry_run_id"] == dry_id and applied.report["total"] == report["total"]

    session.expire_all()
    referral = session.get(Referral, closed)
    assert referral.redacted_at == YEARS_ON
    assert referral.what_is_happening == REMOVED and referral.family == {} and referral.health == {}
    assert (referral.reference, referral.status) == ("VPHC-2026-0001", "closed")  # kept for statistics
    child = referral.child
    assert (child.legal_first_name, child.legal_surname, child.upn, child.home_postcode) == (
        "Redacted", "Redacted", None, None
    )  # fmt: skip
    assert child.date_of_birth == date(born.year, 1, 1)
    decision = session.scalar(select(Decision).join(AgendaItem).where(AgendaItem.referral_id == closed))
    assert decision.outcome == outcome and decision.rationale == REMOVED
    assert session.get(Referral, refs["draft"]) is None
    redacted = session.scalars(
        select(AuditEvent.record_id).where(
            AuditEvent.action == "retention.redacted", AuditEvent.record_type == "referral"
        )
    ).all()
    assert sorted(redacted) == sorted(str(i) for i in ids(report, "referrals"))
    assert (
        session.scalar(
            select(func.count()).where(
                AuditEvent.action == "retention.deleted", AuditEvent.record_id == str(refs["draft"])
            )
        )
        == 1
    )
    assert [r.mode for r in session.scalars(select(RetentionRun).order_by(RetentionRun.id))] == ["dry_run", "apply"]

    # A second pass finds nothing more to do, and re-applying the old report skips everything.
    with transaction(session_factory) as s:
        assert retention.dry_run(s, YEARS_ON, RULES).report["total"] == 0
        again = retention.apply(s, YEARS_ON, RULES, report, storage_dir=settings.documents_dir)
    assert again["total"] == 0
    assert sorted(next(e["skipped"] for e in again["rules"] if e["key"] == "referrals")) == sorted(
        ids(report, "referrals")
    )


def test_uploads_of_a_redacted_referral_lose_their_files(session_factory, settings, session):
    refs = demo(session_factory)
    with transaction(session_factory) as s:
        document = Document(
            kind=DocumentKind.upload, sha256="ab" * 32, size_bytes=5, content_type="application/pdf",
            original_filename="Child Name EHCP.pdf", referral_id=refs["VPHC-2026-0001"], created_at=LOADED,
        )  # fmt: skip
        s.add(document)
        s.flush()
        store_file(s, settings.documents_dir, document, b"%PDF-")
        document_id = document.id
    path = document_path(settings.documents_dir, session.get(Document, document_id))
    assert path.is_file()
    with transaction(session_factory) as s:
        dry = retention.dry_run(s, YEARS_ON, RULES)
        assert ids(dry.report, "referral_documents") == [document_id]
        retention.apply_run(s, YEARS_ON, RULES, dry, storage_dir=settings.documents_dir)
    session.expire_all()
    document = session.get(Document, document_id)
    assert document.withdrawn_at == YEARS_ON and document.file_deleted_at == YEARS_ON
    assert "Child" not in document.original_filename
    assert not path.exists()


def test_old_email_bodies_and_expired_sign_in_links_go(session_factory, settings, session):
    now = datetime(2026, 9, 1, tzinfo=UTC)
    with transaction(session_factory) as s:
        person = Person(name="Someone", email="someone@kestrelford.example.org")
        s.add(person)
        s.flush()
        s.add(SignInToken(token_hash="1" * 64, person_id=person.id, created_at=now - timedelta(days=40),
                          expires_at=now - timedelta(days=31)))  # fmt: skip
        s.add(SignInToken(token_hash="2" * 64, person_id=person.id, created_at=now, expires_at=now))
        for key, sent in (("old", now - timedelta(days=181)), ("new", now - timedelta(days=10))):
            message = enqueue(
                s, now=sent, idempotency_key=key, kind="referral_status", recipient="dsl@900001.example.org",
                subject=f"Status {key}", body_text="BODY", body_html="<p>BODY</p>", mail_domain="kestrelford.example.org",
            )  # fmt: skip
            message.status, message.sent_at = OutboundStatus.sent, sent
    with transaction(session_factory) as s:
        dry = retention.dry_run(s, now, RULES)
        assert len(ids(dry.report, "sign_in_tokens")) == 1 and len(ids(dry.report, "sent_email_bodies")) == 1
        retention.apply_run(s, now, RULES, dry, storage_dir=settings.documents_dir)
    session.expire_all()
    assert session.scalars(select(SignInToken.token_hash)).all() == ["2" * 64]
    bodies = {
        m.idempotency_key: (m.subject, m.body_text, m.body_html) for m in session.scalars(select(OutboundMessage))
    }
    assert bodies == {"old": ("Status old", REMOVED, None), "new": ("Status new", "BODY", "<p>BODY</p>")}


def test_until_age_keeps_records_until_the_child_is_old_enough(session_factory):
    demo(session_factory)
    with transaction(session_factory) as s:
        report = retention.plan(s, YEARS_ON, RetentionRules(until_age=25))
    assert ids(report, "referrals") == []  # the demo's children are still under 25 in 2033
    assert ids(report, "children") == []
    with transaction(session_factory) as s:
        oldest = min(r.child.date_of_birth for r in s.scalars(select(Referral).where(Referral.status == "closed")))
        report = retention.plan(s, datetime(oldest.year + 26, 1, 1, tzinfo=UTC), RetentionRules(until_age=25))
    assert ids(report, "referrals")
