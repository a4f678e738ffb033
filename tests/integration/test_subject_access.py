"""A child's subject access export: their records, documents, emails, minutes and who saw them, as a zip a person
can read, holding nothing about any other child."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from agencies.models import Agency, Person
from caseconf import audit
from caseconf.audit import AuditEvent
from caseconf.db import transaction
from caseconf.errors import Invalid, NotFound
from meetings.demo import load_demo
from meetings.documents import store_file
from meetings.models import (
    Action,
    AgendaItem,
    Child,
    Contribution,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    Referral,
)
from notifications.outbox import enqueue
from notifications.subject_access import export_zip, find_children

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SEEN_AT = datetime(2026, 11, 20, 15, 5, tzinfo=UTC)  # 15:05 in London (GMT)
CAMHS = "camhs.rep@kestrelford.example.org"


@pytest.fixture
def child(session_factory, settings):
    """The demo's closed referral's child (discussed on 24 September 2026), with an uploaded document, an
    email, recorded views, a contribution and a dissent; another demo child is put on the same meeting with
    notes, a decision, a contribution and an action naming them, and a papers pack holding both is emailed."""
    with transaction(session_factory) as s:
        load_demo(s, now=NOW)
        referral = s.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001"))
        other = s.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0004"))
        item = s.scalar(select(AgendaItem).where(AgendaItem.referral_id == referral.id))
        meeting = item.meeting
        camhs = s.scalar(select(Agency).where(Agency.code == "CAMHS"))
        camhs_rep = s.scalar(select(Person).where(Person.email == CAMHS))
        s.scalar(
            select(Decision).where(Decision.agenda_item_id == item.id)
        ).dissent = "Police would have preferred a MASH referral first."
        s.add(Contribution(agenda_item_id=item.id, agency_id=camhs.id, author_id=camhs_rep.id,
                           body="CAMHS saw Tilly once in 2025 and closed the case.", created_at=NOW, updated_at=NOW))  # fmt: skip
        # Another child on the same meeting.
        other_name = f"{other.child.legal_first_name} {other.child.legal_surname}"
        other_item = AgendaItem(meeting_id=meeting.id, kind="referral", referral_id=other.id, position=2,
                                status="discussed", notes=f"{other_name} is settling at the pupil referral unit.")  # fmt: skip
        s.add(other_item)
        s.flush()
        s.add(Decision(agenda_item_id=other_item.id, outcome="support_agreed", decided_at=NOW,
                       rationale=f"{other.child.legal_first_name} needs a key worker."))  # fmt: skip
        s.add(Contribution(agenda_item_id=other_item.id, agency_id=camhs.id, author_id=camhs_rep.id,
                           body=f"{other_name} is known to CAMHS.", created_at=NOW, updated_at=NOW))  # fmt: skip
        s.add(Action(agenda_item_id=other_item.id, referral_id=other.id, description=f"Visit {other_name} at home.",
                     owner_agency_id=camhs.id, due_on=NOW.date(), created_at=NOW))  # fmt: skip
        pack = Document(kind=DocumentKind.papers_pack, sha256="ab" * 32, size_bytes=9, content_type="application/pdf",
                        original_filename="papers-2026-09-24-v1.pdf", meeting_id=meeting.id, papers_version=1,
                        created_at=NOW)  # fmt: skip
        document = Document(
            kind=DocumentKind.upload, sha256="cd" * 32, size_bytes=9, content_type="application/pdf",
            original_filename="plan.pdf", referral_id=referral.id, created_at=NOW, uploaded_by_id=referral.referrer_id,
        )  # fmt: skip
        s.add_all([pack, document])
        s.flush()
        store_file(s, settings.documents_dir, pack, f"%PDF-{other_name}".encode())
        store_file(s, settings.documents_dir, document, b"%PDF-PLAN")
        enqueue(
            s, now=NOW, idempotency_key="status-1", kind="referral_status", recipient="dsl@school.example.org",
            subject=f"{referral.reference}: closed", body_text="The referral is closed.",
            body_html="<p>The referral is <b>closed</b>.</p>", mail_domain="kestrelford.example.org",
            referral_id=referral.id,
        )  # fmt: skip
        papers = enqueue(
            s, now=NOW, idempotency_key="papers-1", kind="papers", recipient="police@kestrelford.example.org",
            subject="Papers for the clinic on 24 September", body_text="The papers are attached.",
            mail_domain="kestrelford.example.org", meeting_id=meeting.id,
        )  # fmt: skip
        papers.attachments = [{"document_id": pack.id, "filename": pack.original_filename}]
        papers.sent_at = NOW
        audit.record(s, now=SEEN_AT, action="referral.viewed", actor_person_id=camhs_rep.id, actor_label=CAMHS,
                     record_type="referral", record_id=referral.id, ip_address="203.0.113.9")  # fmt: skip
        audit.record(s, now=SEEN_AT, action="referral.listed", actor_label="eip.east@kestrelford.example.org",
                     record_type="referral", ids=[str(other.id), str(referral.id)])  # fmt: skip
        audit.record(s, now=SEEN_AT, action="referral.listed", actor_label="eip.east@kestrelford.example.org",
                     record_type="referral", ids=[str(other.id)])  # fmt: skip
        audit.record(s, now=SEEN_AT, action="document.downloaded", actor_label=CAMHS, record_type="document",
                     record_id=document.id, ip_address="203.0.113.9")  # fmt: skip
        return {
            "id": referral.child_id, "referral": referral.id, "document": document.id, "pack": pack.id,
            "surname": referral.child.legal_surname, "born": referral.child.date_of_birth, "upn": referral.child.upn,
            "other_child": other.child_id, "other_meeting": s.scalar(
                select(AgendaItem.meeting_id).where(AgendaItem.referral_id == other.id, AgendaItem.id != other_item.id)
            ),
            "other_names": [other.child.legal_first_name, other.child.legal_surname]
            + ([other.child.preferred_name] if other.child.preferred_name else []),
            "camhs_name": camhs_rep.name,
            "names": [referral.child.legal_first_name, referral.child.legal_surname, referral.child.preferred_name],
        }  # fmt: skip


def export(session_factory, settings, child_id: int) -> zipfile.ZipFile:
    with transaction(session_factory) as s:
        data = export_zip(s, child_id, now=NOW, storage_dir=settings.documents_dir, actor_label="dpo@example.org")
    return zipfile.ZipFile(io.BytesIO(data))


def table(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


def test_the_export_holds_every_record_file_email_and_view(session_factory, settings, child, session):
    archive = export(session_factory, settings, child["id"])
    names = set(archive.namelist())
    assert {"README.txt", "data.json", "child.csv", "referrals.csv", "status_history.csv", "agenda_items.csv",
            "decisions.csv", "actions.csv", "action_events.csv", "emails.csv", "audit.csv", "minutes.txt",
            "minutes.csv", "papers_and_minutes.csv"} <= names  # fmt: skip
    assert f"files/{child['document']}-plan.pdf" in names
    assert archive.read(f"files/{child['document']}-plan.pdf") == b"%PDF-PLAN"
    data = json.loads(archive.read("data.json"))
    records = data["records"]
    assert records["child"][0]["legal_surname"] == child["surname"]
    assert [r["id"] for r in records["referrals"]] == [child["referral"]]
    assert records["referrals"][0]["what_is_happening"]  # every section, in full, with its codes
    assert records["referrals"][0]["sen_status"] == "sen_support"
    assert records["status_history"] and records["decisions"] and records["actions"]
    assert [e["subject"] for e in records["emails"]] == ["VPHC-2026-0001: closed"]
    assert CAMHS in [a["actor_label"] for a in records["audit"]]
    assert data["readable"]["decisions"][0]["Outcome"] == "Support agreed"
    assert "Subject access export" in archive.read("README.txt").decode()
    exported = session.scalar(select(AuditEvent).where(AuditEvent.action == "subject_access.exported"))
    assert (exported.record_type, exported.record_id, exported.actor_label) == (
        "child",
        str(child["id"]),
        "dpo@example.org",
    )


def test_the_csvs_show_names_labels_and_london_times(session_factory, settings, child):
    archive = export(session_factory, settings, child["id"])
    person = dict((r["Field"], r["Value"]) for r in table(archive, "child.csv"))
    assert person["School"] == "Millrace Primary"
    assert person["Ethnicity"] == "White - British (WBRI)"
    referral = {(r["Section"], r["Field"]): r["Value"] for r in table(archive, "referrals.csv")}
    assert referral[("Referral", "Status")] == "Closed"
    assert referral[("Referral", "Referred by")] == "Beth Nakamura-Stone (senco@millrace.example.org)"
    assert referral[("Referral", "Submitted")] == "2026-09-08 09:15"  # 08:15 UTC, in British Summer Time
    need = referral[("Special educational needs and support so far", "Primary need")]
    assert need == "Speech, language and communication needs (SLCN)"
    assert referral[("Special educational needs and support so far", "SEN status")] == "SEN support (K)"
    assert referral[("Parents and carers", "Parent or carer 1 / Name")] == "Dana Bramblewick"
    assert referral[("Part-time timetable", "Hours a week in school")] == "15"
    assert "Year 6 to Year 7 transition" in referral[("Reasons for referral", "Why are you referring the child?")]
    assert not any(v.startswith(("{", "[")) for v in referral.values())  # no JSON in a cell
    actions = table(archive, "actions.csv")
    assert actions[0]["Owner agency"] == "Kestrelford Educational Psychology Service"
    assert actions[0]["Owner"] == "Dr Helen Strand (eps.rep@kestrelford.example.org)"
    assert actions[0]["Status"] == "Done"
    events = table(archive, "action_events.csv")
    assert events[0]["By"].endswith("(clinic.coordinator@kestrelford.example.org)")
    assert events[0]["What happened"] == "Assigned to the owner"
    meeting = table(archive, "meetings.csv")[0]
    assert (meeting["Starts"], meeting["Status"]) == ("2026-09-24 13:30", "Held; minutes circulated")
    items = table(archive, "agenda_items.csv")
    assert items[0]["Meeting"] == "Kestrelford Vulnerable Pupil Hot Clinic, 2026-09-24"
    assert "Kestrelford Educational Psychology Service" in items[0]["Agencies asked for"]
    history = table(archive, "status_history.csv")
    assert [h["To"] for h in history][-1] == "Closed"
    contribution = table(archive, "contributions.csv")[0]
    assert (contribution["Agency"], contribution["Shared with"]) == (
        "Kestrelford Child and Adolescent Mental Health Service",
        "Everyone invited",
    )
    document = table(archive, "documents.csv")[0]
    assert document["Uploaded by"] == "Beth Nakamura-Stone (senco@millrace.example.org)"
    assert document["File in this export"] == f"files/{child['document']}-plan.pdf"


def test_an_empty_csv_still_has_its_header_row(session_factory, settings, child):
    archive = export(session_factory, settings, child["id"])
    for name in ("agency_waits.csv", "concerns.csv", "minutes_corrections.csv"):
        text = archive.read(name).decode()
        header = next(csv.reader(io.StringIO(text)))
        assert len(header) > 2 and text.count("\n") == 1, name
    assert "Agency,Waiting for,Since" in archive.read("agency_waits.csv").decode()
    readme = archive.read("README.txt").decode()
    assert "agency_waits.csv (0 rows)" in readme and "Columns: Referral, Agency, Waiting for" in readme


def test_the_minutes_about_the_child_are_included_and_no_other_child_is_named_anywhere(
    session_factory, settings, child
):
    archive = export(session_factory, settings, child["id"])
    minutes = archive.read("minutes.txt").decode()
    assert "SENCo described progress on the reduced timetable" in minutes  # the notes
    assert "Decision: Support agreed" in minutes
    assert "Needs persist despite two terms" in minutes  # the rationale
    assert "Dissent: Police would have preferred a MASH referral first." in minutes
    assert "Give educational psychology advice" in minutes  # an action
    assert "CAMHS saw Tilly once in 2025" in minutes  # an agency's information
    parts = {r["Part"]: r["Text"] for r in table(archive, "minutes.csv")}
    assert parts["Dissent"] == "Police would have preferred a MASH referral first."
    for name in archive.namelist():
        content = archive.read(name).decode("utf-8", errors="replace")
        for other in child["other_names"]:
            assert other not in content, f"{other} in {name}"
    assert "Visit" not in archive.read("actions.csv").decode()  # the other child's action
    # The pack is listed (it held the child), not included (it holds another child too).
    shared = table(archive, "papers_and_minutes.csv")
    assert [(r["Kind"], r["Version"], r["In this export"]) for r in shared] == [
        ("Papers pack", "1", "No: it holds other children's information")
    ]
    assert not any(n.startswith("shared/") for n in archive.namelist())
    readme = archive.read("README.txt").decode()
    assert "What was left out, and why" in readme and "other children" in readme


def test_a_pack_about_the_child_alone_is_included(session_factory, settings, child):
    with transaction(session_factory) as s:
        pack = Document(kind=DocumentKind.papers_pack, sha256="ef" * 32, size_bytes=9, content_type="application/pdf",
                        original_filename="papers-alone.pdf", meeting_id=child["other_meeting"], papers_version=1,
                        created_at=NOW)  # fmt: skip
        s.add(pack)
        s.flush()
        store_file(s, settings.documents_dir, pack, b"%PDF-ALONE")
        pack_id = pack.id
    archive = export(session_factory, settings, child["other_child"])
    assert archive.read(f"shared/{pack_id}-papers-alone.pdf") == b"%PDF-ALONE"
    listed = {r["Document"]: r["In this export"] for r in table(archive, "papers_and_minutes.csv")}
    assert listed[f"papers-alone.pdf (document {pack_id})"] == f"shared/{pack_id}-papers-alone.pdf"
    assert listed[f"papers-2026-09-24-v1.pdf (document {child['pack']})"].startswith("No")
    for name in archive.namelist():
        content = archive.read(name).decode("utf-8", errors="replace")
        for mine in child["names"]:
            assert mine not in content, f"{mine} in {name}"


def test_emails_are_plain_text_and_a_pack_email_is_listed_without_its_text(session_factory, settings, child):
    archive = export(session_factory, settings, child["id"])
    emails = table(archive, "emails.csv")
    status = next(e for e in emails if e["Subject"] == "VPHC-2026-0001: closed")
    assert status["Text"] == "The referral is closed." and "<" not in status["Text"]
    assert (status["About"], status["Status"]) == ("Referral VPHC-2026-0001", "Waiting to be sent")
    pack = next(e for e in emails if e["To"] == "police@kestrelford.example.org")
    assert pack["Sent"] == "2026-12-01 09:00"
    assert "carried the papers pack" in pack["Attachments"]
    assert "The papers are attached" not in pack["Text"]


def test_the_audit_rows_say_who_what_when_and_from_where(session_factory, settings, child):
    archive = export(session_factory, settings, child["id"])
    rows = table(archive, "audit.csv")
    viewed = next(r for r in rows if r["Action code"] == "referral.viewed")
    assert viewed["Who"] == child["camhs_name"]  # the person's name from the directory
    assert (viewed["Email"], viewed["What"], viewed["Record"], viewed["When"], viewed["From (IP address)"]) == (
        CAMHS,
        "Viewed the referral",
        "Referral VPHC-2026-0001",
        "2026-11-20 15:05",
        "203.0.113.9",
    )
    downloaded = next(r for r in rows if r["Action code"] == "document.downloaded")
    assert (downloaded["What"], downloaded["Record"]) == (
        "Downloaded the document",
        f"Document plan.pdf (document {child['document']})",
    )
    listed = [r for r in rows if r["Action code"] == "referral.listed"]
    assert [(r["What"], r["Record"]) for r in listed] == [
        ("Saw the referral in a list", "A list including VPHC-2026-0001")
    ]


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
    with transaction(session_factory) as s:
        action_id = s.scalar(select(Action.id).where(Action.referral_id == child["referral"]).order_by(Action.id))
        assert action_id, "the demo's closed referral has an action"
        audit.record(s, now=NOW, action="action.viewed", actor_label="police.rep@kestrelford.example.org",
                     record_type="action", record_id=action_id)  # fmt: skip
    archive = export(session_factory, settings, child["id"])
    records = json.loads(archive.read("data.json"))["records"]
    seen = [(a["actor_label"], a["record_type"], a["record_id"]) for a in records["audit"]]
    assert ("police.rep@kestrelford.example.org", "action", str(action_id)) in seen
    row = next(r for r in table(archive, "audit.csv") if r["Action code"] == "action.viewed")
    assert (row["Email"], row["What"], row["Record"]) == (
        "police.rep@kestrelford.example.org",
        "Viewed the action",
        f"Action ACT-{action_id}",
    )


def test_a_meeting_not_yet_minuted_gives_no_minutes_text(session_factory, settings, child):
    with transaction(session_factory) as s:
        kofi = s.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0005"))
        meeting = s.scalar(select(Meeting).join(AgendaItem).where(AgendaItem.referral_id == kofi.id))
        assert meeting.status == "planned"
        child_id = kofi.child_id
    archive = export(session_factory, settings, child_id)
    assert "No meeting has minuted" in archive.read("minutes.txt").decode()
    assert archive.read("minutes.csv").decode().strip() == "Meeting,Date,Minutes status,Item,Part,Text"
