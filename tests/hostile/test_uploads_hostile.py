"""Hostile uploads through the real app: path-traversal names, polyglots, empty and oversized files, lying
content types and many files at once. Each is refused with the error shown and the form kept, or stored
under its hash inside the storage directory and served only as an attachment with a safe type."""

from __future__ import annotations

import html
import io
import os
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from agencies.models import Person, School
from caseconf.db import transaction
from meetings import documents, referrals
from meetings.models import Document
from tests.hostile.conftest import REFERRER, still_serving
from tests.unit.test_document_types import make_docx, make_jpeg, make_pdf, make_png
from tests.web.conftest import csrf_from

DESCRIPTION = 'Evidence <script>alert(1)</script> "quoted" {{7*7}}'
SAFE_TYPES = set(documents.TYPE_NAMES) | {"application/octet-stream"}


@pytest.fixture(scope="module")
def school_client(world):
    client = world.signed_in(REFERRER)
    yield client
    client.__exit__(None, None, None)


def new_draft(world) -> int:
    with transaction(world.session_factory) as session:
        referrer = session.scalar(select(Person).where(Person.email == REFERRER))
        school = session.scalar(select(School).where(School.urn == "900001"))
        return referrals.start_referral(session, school_id=school.id, referrer_id=referrer.id, now=world.clock.now()).id


def upload(client, referral_id: int, files, description: str = DESCRIPTION):
    csrf = csrf_from(client.get(f"/referrals/{referral_id}/documents").text)
    return client.post(
        f"/referrals/{referral_id}/documents",
        data={"csrf_token": csrf, "description": description},
        files=files,
    )


def stored(world, referral_id: int) -> list[Document]:
    with world.session_factory() as session:
        return documents.documents_for(session, referral_id)


def files_outside_storage(world) -> set[Path]:
    storage = Path(world.settings.documents_dir).resolve()
    found = set()
    for root, _, names in os.walk(world.tmp):
        for name in names:
            path = Path(root, name).resolve()
            if storage not in path.parents:
                found.add(path)
    return found


def assert_refused_with_form_kept(response, *words: str) -> None:
    assert response.status_code in (400, 413), response.status_code
    assert "govuk-error-summary" in response.text or response.status_code == 413
    if response.status_code == 400:
        # The description typed is kept in the form, escaped; the error names the problem.
        assert html.escape(DESCRIPTION, quote=False).replace('"', "&#34;") in response.text or (
            "Evidence &lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        )
        assert "<script>alert(1)" not in response.text
        text = html.unescape(response.text)
        for word in words:
            assert word in text, word


def assert_served_safely(client, document: Document) -> bytes:
    response = client.get(f"/documents/{document.id}")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"].split(";")[0] in SAFE_TYPES
    assert "sandbox" in response.headers["content-security-policy"]
    disposition = response.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition.split("filename*")[0]
    return response.content


TRAVERSAL_NAMES = [
    "../../etc/passwd.pdf",
    "..\\..\\x.pdf",
    "/etc/cron.d/evil.pdf",
    "C:\\Windows\\System32\\evil.pdf",
    "evil\x00.pdf",
    "a" * 1000 + ".pdf",
    "\u202efdp.exe",
    "report\u2024pdf",  # one-dot leader, a look-alike of '.'
    "\uff0e\uff0e\uff0fpasswd.pdf",  # full-width ../
    "..",
    ".",
    "",
    "con.pdf",
    '"; filename="evil.html',
    "x\r\nContent-Type: text/html\r\n\r\n<script>.pdf",
]


def test_traversal_names_are_stored_by_hash_inside_the_storage_dir(world, school_client):
    draft = new_draft(world)
    outside = files_outside_storage(world)
    results = []
    for index, name in enumerate(TRAVERSAL_NAMES):
        data = make_pdf(f"Evidence {index}")
        try:
            response = upload(school_client, draft if index < 9 else new_draft(world), [("documents", (name, data, "application/pdf"))])
        except Exception as exc:  # the test client itself could not send such a name: nothing to check
            results.append((name, type(exc).__name__))
            continue
        assert response.status_code in (303, 400), (name, response.status_code)
        results.append((name, response.status_code))
    assert files_outside_storage(world) == outside, "an upload wrote a file outside the storage directory"
    storage = Path(world.settings.documents_dir)
    for path in storage.rglob("*"):
        if path.is_file():
            assert path.parent.parent == storage and path.name.startswith(path.parent.name) and len(path.name) == 64
    with world.session_factory() as session:
        kept = session.scalars(select(Document).where(Document.referral_id.is_not(None))).all()
        for document in kept:
            name = document.original_filename
            assert "/" not in name and "\\" not in name and "\x00" not in name and "\u202e" not in name
            assert "\r" not in name and "\n" not in name and len(name) <= documents.MAX_FILENAME
            assert name not in ("", ".", "..")
            assert_served_safely(school_client, document)
    assert any(code == 303 for _, code in results), results
    still_serving(world, school_client, f"/referrals/{draft}/documents")


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil.html", "<script>alert(1)</script>")
    return buffer.getvalue()


REFUSED = [
    ("html-then-pdf.pdf", b"<html><script>alert(1)</script></html>\n" + make_pdf(), "text/html"),
    ("pdf-in-html.pdf", b"<!DOCTYPE html><html><body>" + make_pdf() + b"</body></html>", "application/pdf"),
    ("jpeg-then-html.jpg", make_jpeg() + b"<html><script>alert(1)</script></html>", "image/jpeg"),
    ("png-then-html.png", make_png() + b"<script>alert(1)</script>", "image/png"),
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"),
    ("svg-named.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/png"),
    ("archive.pdf", zip_bytes(), "application/pdf"),
    ("zip-named.docx", zip_bytes(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("page.pdf", b"<html><body onload=alert(1)>hi</body></html>", "application/pdf"),
    ("empty.pdf", b"", "application/pdf"),
    ("truncated.pdf", make_pdf()[:-20], "application/pdf"),
    ("script.js", b"alert(1)", "application/javascript"),
    ("macro.docx", make_docx(extra={"word/vbaProject.bin": b"\x00" * 64}), "application/octet-stream"),
    ("pdf-named.png", make_pdf(), "image/png"),
]


@pytest.mark.parametrize(("name", "data", "content_type"), REFUSED, ids=[r[0] for r in REFUSED])
def test_polyglots_and_wrong_content_are_refused_with_the_form_kept(world, school_client, name, data, content_type):
    draft = new_draft(world)
    response = upload(school_client, draft, [("documents", (name, data, content_type))])
    assert_refused_with_form_kept(response)
    assert stored(world, draft) == []


def test_a_lying_content_type_is_judged_by_the_bytes_and_served_safely(world, school_client):
    draft = new_draft(world)
    # A real PDF carrying script, sent as text/html: kept as a PDF (PDF readers do not run page script here)
    # and only ever served as an attachment with its own type, nosniff and a sandbox.
    pdf = make_pdf("<script>alert(1)</script>")
    response = upload(school_client, draft, [("documents", ("notes.pdf", pdf, "text/html"))])
    assert response.status_code == 303
    (document,) = stored(world, draft)
    assert document.content_type == documents.PDF
    assert assert_served_safely(school_client, document) == pdf
    # A real JPEG named .html: the name must match the type.
    response = upload(school_client, draft, [("documents", ("photo.html", make_jpeg(), "text/html"))])
    assert_refused_with_form_kept(response)


def test_over_the_size_limit_and_too_many_files_are_refused(world, school_client):
    draft = new_draft(world)
    big = make_pdf(padding=1024 * 1024 + 10)
    assert_refused_with_form_kept(upload(school_client, draft, [("documents", ("big.pdf", big, "application/pdf"))]))
    assert stored(world, draft) == []
    huge = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024)
    response = upload(school_client, draft, [("documents", ("huge.pdf", huge, "application/pdf"))])
    assert response.status_code == 413 and "too" in response.text.lower()
    assert stored(world, draft) == []
    many = [("documents", (f"doc{i}.png", make_png(width=2 + i), "image/png")) for i in range(40)]
    response = upload(school_client, draft, many)
    assert response.status_code == 400
    assert len(stored(world, draft)) <= documents.MAX_DOCUMENTS_PER_REFERRAL
    assert "govuk-error-summary" in response.text
    still_serving(world, school_client, f"/referrals/{draft}/documents")


def test_a_broken_multipart_body_is_a_clean_4xx(world, school_client):
    draft = new_draft(world)
    csrf = csrf_from(school_client.get(f"/referrals/{draft}/documents").text)
    bodies = [
        (b"--x\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n" + csrf.encode() + b"\r\n--x\r\n"
         b"Content-Disposition: form-data; name=\"documents\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.4", "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data"),
        (b"--x--", "multipart/form-data; boundary=" + "x" * 5000),
        (b"\xff\xfe" * 100, "multipart/form-data; boundary=x; charset=x-nope"),
    ]
    for body, content_type in bodies:
        response = school_client.post(f"/referrals/{draft}/documents", content=body, headers={"Content-Type": content_type})
        assert 400 <= response.status_code < 500, (content_type[:60], response.status_code)
    assert stored(world, draft) == []
    still_serving(world, school_client, f"/referrals/{draft}/documents")
