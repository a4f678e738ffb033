"""A child's subject access export: their records, documents, emails and who saw them, as a zip."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from caseconf import audit
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Invalid, NotFound
from meetings.demo import load_demo
from meetings.documents import store_file
from meetings.models import Child, Document, DocumentKind, Referral
from notifications.outbox import enqueue
from notifications.subject_access import export_zip, find_children

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def child(session_factory, settings):
    """The demo's closed referral's child, with an uploaded document, an email and a recorded view."""
    with transaction(session_factory) as s:
        load_demo(s, now=NOW)
        referral = s.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001"))
        document = Document(
            kind=DocumentKind.upload, sha256="cd" * 32, size_bytes=9, content_type="application/pdf",
            original_filename="plan.pdf", referral_id=referral.id, created_at=NOW,
        )  # fmt: skip
        s.add(document)
        s.flush()
        store_file(s, settings.documents_dir, document, b"%PDF-PLAN")
        enqueue(
            s, now=NOW, idempotency_key="status-1", kind="referral_status", recipient="dsl@school.example.org",
            subject=f"{referral.reference}: closed", body_text="Closed.", mail_domain="kestrelford.example.org",
            referral_id=referral.id,
        )  # fmt: skip
        audit.record(s, now=NOW, action="referral.viewed", actor_label="camhs.rep@kestrelford.example.org",
                     record_type="referral", record_id=referral.id)  # fmt: skip
        return {"id": referral.child_id, "referral": referral.id, "document": document.id, "surname": referral.child.legal_surname,
                "born": referral.child.date_of_birth, "upn": referral.child.upn}  # fmt: skip


def test_the_export_holds_every_record_file_email_and_view(session_factory, settings, child, session):
    with transaction(session_factory) as s:
        data = export_zip(s, child["id"], now=NOW, storage_dir=settings.documents_dir, actor_label="dpo@example.org")
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    assert {"README.txt", "data.json", "child.csv", "referrals.csv", "status_history.csv", "agenda_items.csv",
            "decisions.csv", "actions.csv", "action_events.csv", "emails.csv", "audit.csv"} <= names  # fmt: skip
    assert f"files/{child['document']}-plan.pdf" in names
    assert archive.read(f"files/{child['document']}-plan.pdf") == b"%PDF-PLAN"
    records = json.loads(archive.read("data.json"))
    assert records["child"][0]["legal_surname"] == child["surname"]
    assert [r["id"] for r in records["referrals"]] == [child["referral"]]
    assert records["referrals"][0]["what_is_happening"]  # every section, in full
    assert records["status_history"] and records["decisions"] and records["actions"]
    assert [e["subject"] for e in records["emails"]] == ["VPHC-2026-0001: closed"]
    assert "camhs.rep@kestrelford.example.org" in [a["actor_label"] for a in records["audit"]]
    rows = list(csv.DictReader(io.StringIO(archive.read("referrals.csv").decode())))
    assert rows[0]["reference"] == "VPHC-2026-0001"
    assert "Subject access export" in archive.read("README.txt").decode()
    exported = session.scalar(select(AuditEvent).where(AuditEvent.action == "subject_access.exported"))
    assert (exported.record_type, exported.record_id, exported.actor_label) == (
        "child",
        str(child["id"]),
        "dpo@example.org",
    )


def test_find_by_surname_and_birth_date_or_upn(session, child):
    found = find_children(session, surname=f"  {child['surname'].upper()} ", date_of_birth=child["born"])
    assert [c.id for c in found] == [child["id"]]
    if child["upn"]:
        assert [c.id for c in find_children(session, upn=child["upn"].lower())] == [child["id"]]
    with pytest.raises(Invalid):
        find_children(session, surname=child["surname"])


def test_an_unknown_child_is_refused(session_factory, settings, child, session):
    with pytest.raises(NotFound), transaction(session_factory) as s:
        export_zip(s, 999999, now=NOW, storage_dir=settings.documents_dir)
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "subject_access.exported")) is None
    assert session.get(Child, child["id"]) is not None


def test_the_audit_holds_who_saw_the_childs_actions_as_the_referrals_access_log_does(
    session_factory, settings, child, session
):
    from meetings.models import Action

    with transaction(session_factory) as s:
        action_id = s.scalar(select(Action.id).where(Action.referral_id == child["referral"]).order_by(Action.id))
        assert action_id, "the demo's closed referral has an action"
        audit.record(s, now=NOW, action="action.viewed", actor_label="police.rep@kestrelford.example.org",
                     record_type="action", record_id=action_id)  # fmt: skip
        data = export_zip(s, child["id"], now=NOW, storage_dir=settings.documents_dir, actor_label="dpo@example.org")
    records = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("data.json"))
    seen = [(a["actor_label"], a["record_type"], a["record_id"]) for a in records["audit"]]
    assert ("police.rep@kestrelford.example.org", "action", str(action_id)) in seen
