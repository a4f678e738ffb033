"""Supporting documents through the real app: uploading, refusals, downloads and who may have them."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from agencies.models import Person, School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from meetings import documents, referrals
from meetings.demo import load_demo
from meetings.models import Document, Referral
from tests.unit.test_document_types import make_docx, make_jpeg, make_pdf, make_png
from tests.web.conftest import csrf_from, sign_in

REFERRER = "dsl@alderbrook.example.org"  # Alderbrook (900001), Copperbeech and Greywater
OTHER_SCHOOL = "senco@millrace.example.org"  # Millrace (900002)


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def settings(settings):
    """Small limits, so the tests can cross them with small files: 1 MB a file, 2 MB a referral."""
    return settings.model_copy(update={"upload_max_file_mb": 1, "upload_max_referral_mb": 2})


@pytest.fixture
def draft(session_factory, clock) -> int:
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        referrer = session.scalar(select(Person).where(Person.email == REFERRER))
        school = session.scalar(select(School).where(School.urn == "900001"))
        return referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=clock.now()).id


def page_text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.text))


def upload(client, referral_id, files, description="", csrf=None):
    if csrf is None:
        csrf = csrf_from(client.get(f"/referrals/{referral_id}/documents").text)
    return client.post(
        f"/referrals/{referral_id}/documents",
        data={"csrf_token": csrf, "description": description},
        files=[("documents", (name, data, "application/octet-stream")) for name, data in files],
    )


def stored(session, referral_id) -> list[Document]:
    session.expire_all()
    return documents.documents_for(session, referral_id)


def audit_rows(session, action) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_the_referrer_uploads_documents_and_sees_them_listed(client, session_factory, session, settings, draft):
    sign_in(client, session_factory, REFERRER)
    page = client.get(f"/referrals/{draft}/documents")
    assert page.status_code == 200
    assert 'enctype="multipart/form-data"' in page.text and 'type="file"' in page.text and " multiple" in page.text
    assert "No documents are attached" in page.text
    files = [
        ("attendance.pdf", make_pdf()),
        ("plan.docx", make_docx()),
        ("drawing.png", make_png()),
        ("letter.jpg", make_jpeg()),
    ]
    response = upload(client, draft, files, description="Evidence for the clinic")
    assert response.status_code == 303
    assert response.headers["location"] == f"/referrals/{draft}/documents?added=4"
    listed = stored(session, draft)
    assert [(d.original_filename, d.content_type, d.description) for d in listed] == [
        ("attendance.pdf", documents.PDF, "Evidence for the clinic"),
        ("plan.docx", documents.DOCX, "Evidence for the clinic"),
        ("drawing.png", documents.PNG, "Evidence for the clinic"),
        ("letter.jpg", documents.JPEG, "Evidence for the clinic"),
    ]
    for document, (_, data) in zip(listed, files, strict=True):
        assert documents.document_path(settings.documents_dir, document).read_bytes() == data
    text = page_text(client.get(response.headers["location"]))
    assert "4 files added" in text
    for name in ("attendance.pdf", "plan.docx", "drawing.png", "letter.jpg"):
        assert name in text
    assert "Word (.docx)" in text and f'href="/documents/{listed[0].id}"' in text
    assert f'action="/referrals/{draft}/documents/{listed[0].id}/remove"' in text
    assert f'href="/referrals/{draft}"' in text  # Continue, back to the task list


def test_a_refused_type_is_named_the_description_kept_and_good_files_saved(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    response = upload(
        client,
        draft,
        [("notes.exe", b"MZ\x90\x00 not really a program"), ("report.pdf", make_pdf("report"))],
        description="Attendance & behaviour logs",
    )
    assert response.status_code == 400
    text = page_text(response)
    assert "There is a problem" in text
    assert "'notes.exe' is not a PDF, Word (.docx), JPEG or PNG file" in text
    assert 'href="#documents"' in response.text
    assert ">Attendance &amp; behaviour logs</textarea>" in response.text
    assert "1 file added: report.pdf" in text
    assert [d.original_filename for d in stored(session, draft)] == ["report.pdf"]


def test_an_oversized_file_is_refused_by_name_and_size(client, session_factory, session, settings, draft):
    sign_in(client, session_factory, REFERRER)
    big = make_pdf(padding=documents.MB + 50_000)
    response = upload(client, draft, [("scan.pdf", big), ("small.png", make_png())], description="Scans")
    assert response.status_code == 400
    text = page_text(response)
    assert f"'scan.pdf' is {documents.format_size(len(big))}; the limit is 1 MB a file" in text
    assert ">Scans</textarea>" in response.text
    assert [d.original_filename for d in stored(session, draft)] == ["small.png"]
    assert [p.name for p in settings.documents_dir.rglob("*") if p.is_file()] == [stored(session, draft)[0].sha256]


def test_a_file_that_takes_the_referral_past_its_total_is_refused(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    near_limit = [(f"part{n}.pdf", make_pdf(f"part {n}", padding=900_000)) for n in range(3)]
    response = upload(client, draft, near_limit)
    assert response.status_code == 400
    assert "'part2.pdf' would take this referral's documents past the 2 MB limit" in page_text(response)
    assert len(stored(session, draft)) == 2


def test_choosing_no_file_and_a_long_description_are_explained(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    response = upload(client, draft, [("", b"")], description="x" * 201)
    assert response.status_code == 400
    text = page_text(response)
    assert "Description must be 200 characters or fewer" in text and "Select a file to upload" in text
    assert stored(session, draft) == []


def test_a_body_larger_than_a_referral_can_hold_is_refused_before_it_is_read(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    csrf = csrf_from(client.get(f"/referrals/{draft}/documents").text)
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="documents"; filename="huge.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + make_pdf(padding=4 * documents.MB)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    declared = client.post(f"/referrals/{draft}/documents", content=body, headers=headers)
    assert declared.status_code == 413
    assert "The files are too large" in declared.text
    assert f'href="/referrals/{draft}/documents"' in declared.text

    def chunks():  # no Content-Length: counted as it arrives
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = client.post(f"/referrals/{draft}/documents", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert stored(session, draft) == []


def test_a_declared_length_over_the_limit_is_refused_unread(client, session_factory, session, draft):
    """Judged on the Content-Length header alone: the small body behind it is never parsed."""
    sign_in(client, session_factory, REFERRER)
    csrf = csrf_from(client.get(f"/referrals/{draft}/documents").text)
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{csrf}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="documents"; filename="small.pdf"\r\n\r\n'
        ).encode()
        + make_pdf()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert client.post(f"/referrals/{draft}/documents", content=body, headers=headers).status_code == 303
    headers["Content-Length"] = str(4 * documents.MB)  # the limit is 2 MB plus 1 MB for the form
    refused = client.post(f"/referrals/{draft}/documents", content=body, headers=headers)
    assert refused.status_code == 413
    assert len(stored(session, draft)) == 1


def test_the_referrer_downloads_with_safe_headers_and_it_is_audited(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    data = make_pdf("Attendance")
    assert upload(client, draft, [("Attendance – Clément.pdf", data)]).status_code == 303
    [document] = stored(session, draft)
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"Attendance _ Clement.pdf\"; filename*=UTF-8''Attendance%20%E2%80%93%20Cl%C3%A9ment.pdf"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "sandbox" in response.headers["content-security-policy"]
    referrer_id = session.scalar(select(Person.id).where(Person.email == REFERRER))
    [event] = audit_rows(session, "document.downloaded")
    assert (event.record_id, event.actor_person_id, event.ip_address) == (str(document.id), referrer_id, "127.0.0.1")


def test_another_schools_referrer_cannot_download_or_list(client, session_factory, session, draft, app):
    sign_in(client, session_factory, REFERRER)
    upload(client, draft, [("private.pdf", make_pdf("private"))])
    [document] = stored(session, draft)
    client.cookies.clear()
    sign_in(client, session_factory, OTHER_SCHOOL)
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 403
    assert b"%PDF" not in response.content
    assert client.get(f"/referrals/{draft}/documents").status_code == 403
    csrf = csrf_from(client.get("/sign-out").text)
    refused = upload(client, draft, [("mine.pdf", make_pdf("mine"))], csrf=csrf)
    assert refused.status_code == 403
    removal = client.post(f"/referrals/{draft}/documents/{document.id}/remove", data={"csrf_token": csrf})
    assert removal.status_code == 403
    assert [d.original_filename for d in stored(session, draft)] == ["private.pdf"]
    assert audit_rows(session, "document.downloaded") == []
    assert len(audit_rows(session, "access.refused")) == 4


def test_a_signed_out_visitor_cannot_download(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    upload(client, draft, [("private.pdf", make_pdf("private"))])
    [document] = stored(session, draft)
    client.cookies.clear()
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 303
    assert response.headers["location"] == f"/sign-in?next=/documents/{document.id}"
    assert b"%PDF" not in response.content
    assert audit_rows(session, "document.downloaded") == []


def test_an_unknown_document_is_not_found(client, session_factory, draft):
    sign_in(client, session_factory, REFERRER)
    assert client.get("/documents/987654").status_code == 404


def test_a_path_traversal_filename_is_stored_safely(client, session_factory, session, settings, draft, tmp_path):
    sign_in(client, session_factory, REFERRER)
    data = make_pdf("traversal")
    response = upload(client, draft, [("../../../../tmp/evil.pdf", data), ("..\\..\\win.pdf", make_pdf("win"))])
    assert response.status_code == 303
    names = [d.original_filename for d in stored(session, draft)]
    assert names == ["evil.pdf", "win.pdf"]
    on_disk = sorted(p for p in settings.documents_dir.rglob("*") if p.is_file())
    assert on_disk == sorted(documents.document_path(settings.documents_dir, d) for d in stored(session, draft))
    assert not any(p.name in ("evil.pdf", "win.pdf") for p in tmp_path.rglob("*"))
    download = client.get(f"/documents/{stored(session, draft)[0].id}")
    assert download.headers["content-disposition"].startswith('attachment; filename="evil.pdf"')


def test_the_referrer_removes_a_document_from_the_draft(client, session_factory, session, settings, draft):
    sign_in(client, session_factory, REFERRER)
    upload(client, draft, [("wrong.pdf", make_pdf("wrong"))])
    [document] = stored(session, draft)
    path = documents.document_path(settings.documents_dir, document)
    csrf = csrf_from(client.get(f"/referrals/{draft}/documents").text)
    response = client.post(f"/referrals/{draft}/documents/{document.id}/remove", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/referrals/{draft}/documents?removed=1"
    assert stored(session, draft) == []
    assert not path.exists()
    assert "File removed" in client.get(response.headers["location"]).text
    assert len(audit_rows(session, "document.removed")) == 1


def test_an_upload_without_the_csrf_token_is_refused(client, session_factory, session, draft):
    sign_in(client, session_factory, REFERRER)
    response = upload(client, draft, [("a.pdf", make_pdf())], csrf="forged")
    assert response.status_code == 403
    assert stored(session, draft) == []


def test_a_submitted_referral_lists_documents_without_upload_or_remove(client, session_factory, session, draft):
    """Once submitted (and not asked for more), the school still sees its documents but changes nothing."""
    sign_in(client, session_factory, REFERRER)
    upload(client, draft, [("a.pdf", make_pdf())])
    with transaction(session_factory) as s:
        referral = s.get(Referral, draft)
        referral.status, referral.reference = "submitted", "VPHC-2026-0900"
    page = client.get(f"/referrals/{draft}/documents")
    assert page.status_code == 200
    assert "a.pdf" in page.text
    assert 'type="file"' not in page.text and "/remove" not in page.text
    csrf = csrf_from(page.text)
    assert upload(client, draft, [("b.pdf", make_pdf("b"))], csrf=csrf).status_code == 403
    assert session.scalar(select(func.count()).select_from(Document)) == 1
