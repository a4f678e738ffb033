"""The data protection pages over HTTP: retention runs, subject access export, consent withdrawal, and
withdrawn papers refused."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

from sqlalchemy import select

from caseconf.audit import AuditEvent
from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.models import Child, Document, DocumentKind, Meeting, Referral
from meetings.retention import RetentionRules
from notifications import retention
from tests.web.conftest import csrf_from, sign_in

DPO = "dpo@kestrelford.example.org"  # the demo's data protection officer


def setup_demo(session_factory, clock):
    with transaction(session_factory) as s:
        load_demo(s, now=clock.now())
        retention.dry_run(s, datetime(2033, 6, 1, tzinfo=UTC), RetentionRules())


def test_the_dpo_sees_runs_and_reports_and_a_school_is_refused(client, session_factory, clock):
    setup_demo(session_factory, clock)
    sign_in(client, session_factory, DPO)
    page = client.get("/data-protection")
    assert page.status_code == 200
    assert "Recent runs" in page.text and "Dry run: report only" in page.text
    assert "6 years after the referral ended" in page.text
    run = client.get("/data-protection/runs/1")
    assert run.status_code == 200 and "Ended referrals" in run.text
    assert "closed referrals redacted after 6 years" in run.text and "until age" not in run.text
    assert "The audit log is kept: the app never deletes it." in run.text
    assert client.get("/data-protection/runs/999").status_code == 404

    client.cookies.clear()
    sign_in(client, session_factory, "dsl@alderbrook.example.org")
    assert client.get("/data-protection").status_code == 403
    assert client.get("/data-protection/subject-access").status_code == 403


def test_subject_access_search_and_export(client, session_factory, clock, session):
    setup_demo(session_factory, clock)
    child = session.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001")).child
    sign_in(client, session_factory, DPO)
    bad = client.get(
        "/data-protection/subject-access", params={"surname": child.legal_surname, "date_of_birth": "9/3/14"}
    )
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    found = client.get(
        "/data-protection/subject-access",
        params={"surname": child.legal_surname, "date_of_birth": child.date_of_birth.isoformat()},
    )
    assert found.status_code == 200 and "1 child found" in found.text
    assert "Papers packs and minutes that also covered other" in found.text
    export = client.post(f"/data-protection/subject-access/{child.id}", data={"csrf_token": csrf_from(found.text)})
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    assert {"README.txt", "minutes.txt", "audit.csv"} <= set(archive.namelist())
    referrals = archive.read("referrals.csv").decode()
    assert referrals.startswith("Referral,Section,Field,Value") and ",Status,Closed" in referrals
    assert archive.read("agency_waits.csv").decode().startswith("Referral,Agency,Waiting for")  # empty: its header
    # The search page's own view of the child is in the audit, with who and from where.
    assert "Saw the child in a search result" in archive.read("audit.csv").decode()
    assert DPO in archive.read("audit.csv").decode()
    audited = session.scalar(select(AuditEvent).where(AuditEvent.action == "subject_access.exported"))
    assert audited.actor_label == DPO and audited.record_id == str(child.id)
    assert (
        client.post("/data-protection/subject-access/999999", data={"csrf_token": csrf_from(found.text)}).status_code
        == 404
    )
    assert session.get(Child, child.id) is not None


def test_the_school_withdraws_consent_and_the_agency_loses_the_papers(
    client, session_factory, clock, session, settings
):
    with transaction(session_factory) as s:
        load_demo(s, now=clock.now())
        referral = s.scalar(select(Referral).where(Referral.status == "accepted", Referral.consent_status == "given"))
        referrer = referral.referrer.email
        item = next(i for i in s.scalars(select(Meeting)).all() for i in i.items if i.referral_id == referral.id)
        meeting = item.meeting
        # A pack already circulated for the meeting, with its file kept.
        pack = Document(kind=DocumentKind.papers_pack, sha256="ef" * 32, size_bytes=5, content_type="application/pdf",
                        original_filename="papers.pdf", meeting_id=meeting.id, papers_version=1, created_at=clock.now())  # fmt: skip
        s.add(pack)
        s.flush()
        from meetings.documents import store_file

        store_file(s, settings.documents_dir, pack, b"%PDF-")
        ids = {"referral": referral.id, "pack": pack.id, "meeting": meeting.id, "chair": meeting.chair_id}
    sign_in(client, session_factory, referrer)
    status = client.get(f"/referrals/{ids['referral']}")
    assert f"/referrals/{ids['referral']}/consent/withdraw" in status.text
    form = client.get(f"/referrals/{ids['referral']}/consent/withdraw")
    assert form.status_code == 200 and "Withdraw consent" in form.text
    empty = client.post(
        f"/referrals/{ids['referral']}/consent/withdraw", data={"note": " ", "csrf_token": csrf_from(form.text)}
    )
    assert empty.status_code == 400 and "Enter who withdrew consent" in empty.text
    done = client.post(
        f"/referrals/{ids['referral']}/consent/withdraw",
        data={"note": "Father withdrew consent by phone today.", "csrf_token": csrf_from(form.text)},
    )
    assert done.status_code == 303
    assert "Consent withdrawn" in client.get(done.headers["location"]).text
    session.expire_all()
    assert session.get(Referral, ids["referral"]).consent_withdrawal_note == "Father withdrew consent by phone today."
    assert session.get(Document, ids["pack"]).withdrawn_at is not None
    again = client.get(f"/referrals/{ids['referral']}/consent/withdraw")
    assert "already been withdrawn" in again.text
    school_page = client.get(f"/referrals/{ids['referral']}").text
    assert "Consent to share was withdrawn" in school_page and "“Father withdrew consent by phone today.”" in school_page
    assert f"/referrals/{ids['referral']}/consent/withdraw" not in school_page  # nothing more to withdraw

    # The coordinator still opens the withdrawn pack; a withdrawn upload is refused with a clear page.
    client.cookies.clear()
    sign_in(client, session_factory, "clinic.coordinator@kestrelford.example.org")
    papers = client.get(f"/meetings/{ids['meeting']}/papers")
    assert papers.status_code == 200 and papers.content == b"%PDF-"
    with transaction(session_factory) as s:
        upload = Document(kind=DocumentKind.upload, sha256="12" * 32, size_bytes=5, content_type="application/pdf",
                          original_filename="document-1", referral_id=ids["referral"], created_at=clock.now(),
                          withdrawn_at=clock.now(), file_deleted_at=clock.now())  # fmt: skip
        s.add(upload)
        s.flush()
        upload_id = upload.id
    refused = client.get(f"/documents/{upload_id}")
    assert refused.status_code == 410 and "This document has been withdrawn" in refused.text


def test_a_subject_access_search_that_shows_children_is_audited_with_their_ids(client, session_factory, clock, session):
    setup_demo(session_factory, clock)
    child = session.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001")).child
    sign_in(client, session_factory, DPO)
    found = client.get(
        "/data-protection/subject-access",
        params={"surname": child.legal_surname, "date_of_birth": child.date_of_birth.isoformat()},
    )
    assert found.status_code == 200 and child.legal_first_name in found.text
    rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "child.listed")).all()
    assert [(r.actor_label, r.detail["ids"]) for r in rows] == [(DPO, [str(child.id)])]
