"""Storing, de-duplicating, limiting and removing referral documents, on a real database and real files."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from agencies.models import Person, School
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.errors import Conflict, Invalid, NotFound
from meetings import documents, referrals
from meetings.demo import load_demo
from meetings.models import Document, Referral, ReferralStatus
from tests.unit.test_document_types import make_docx, make_jpeg, make_pdf, make_png

BIG = 10 * documents.MB


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def storage(tmp_path):
    return tmp_path / "var" / "documents"


@pytest.fixture
def borough(session_factory, clock):
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        people = {p.email: p.id for p in session.scalars(select(Person))}
        schools = {s.urn: s.id for s in session.scalars(select(School))}
    return {"people": people, "schools": schools, "referrer": people["dsl@alderbrook.example.org"]}


def new_draft(session_factory, clock, borough, urn="900001") -> int:
    with transaction(session_factory) as session:
        referral = referrals.start_referral(
            session, school_id=borough["schools"][urn], referrer_id=borough["referrer"], now=clock.now()
        )
        return referral.id


def store(session_factory, clock, borough, storage, referral_id, filename, data, **limits) -> int:
    with transaction(session_factory) as session:
        document = documents.store_document(
            session,
            referral=session.get(Referral, referral_id),
            filename=filename,
            data=data,
            description=limits.pop("description", ""),
            uploaded_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
            max_file_bytes=limits.pop("max_file_bytes", BIG),
            max_referral_bytes=limits.pop("max_referral_bytes", 3 * BIG),
        )
        return document.id


def refusal(session_factory, clock, borough, storage, referral_id, filename, data, **limits) -> str:
    with pytest.raises(Invalid) as caught:
        store(session_factory, clock, borough, storage, referral_id, filename, data, **limits)
    return next(iter(caught.value.problems.values()))


def stored_files(storage) -> list:
    return sorted(p for p in storage.rglob("*") if p.is_file()) if storage.exists() else []


def actions(session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_a_document_is_stored_under_its_hash_with_its_row_and_audit(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    data = make_pdf("Attendance since September")
    document_id = store(
        session_factory, clock, borough, storage, referral_id, "Attendance.pdf", data, description="  Autumn\n term "
    )
    document = session.get(Document, document_id)
    assert (document.kind, document.content_type, document.size_bytes) == ("upload", documents.PDF, len(data))
    assert document.original_filename == "Attendance.pdf"
    assert document.description == "Autumn term"
    assert document.uploaded_by_id == borough["referrer"] and document.created_at == clock.now()
    path = storage / document.sha256[:2] / document.sha256
    assert documents.document_path(storage, document) == path
    assert path.read_bytes() == data
    assert stored_files(storage) == [path]  # no temporary file left behind
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    [event] = actions(session, "document.uploaded")
    assert event.record_id == str(document_id) and event.actor_person_id == borough["referrer"]
    assert event.detail["referral_id"] == referral_id and event.detail["size_bytes"] == len(data)


def test_every_allowed_type_is_stored_with_its_sniffed_type(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    files = {"plan.docx": make_docx(), "photo.JPG": make_jpeg(), "chart.png": make_png(), "letter.pdf": make_pdf()}
    for name, data in files.items():
        store(session_factory, clock, borough, storage, referral_id, name, data)
    listed = documents.documents_for(session, referral_id)
    assert [(d.original_filename, d.content_type) for d in listed] == [
        ("plan.docx", documents.DOCX),
        ("photo.JPG", documents.JPEG),
        ("chart.png", documents.PNG),
        ("letter.pdf", documents.PDF),
    ]
    assert documents.bytes_used(session, referral_id) == sum(len(d) for d in files.values())


def test_the_same_content_is_attached_once_per_referral_and_stored_once(
    session_factory, session, clock, borough, storage
):
    first, second = new_draft(session_factory, clock, borough), new_draft(session_factory, clock, borough)
    data = make_pdf("Support plan")
    store(session_factory, clock, borough, storage, first, "plan.pdf", data)
    assert (
        refusal(session_factory, clock, borough, storage, first, "plan (copy).pdf", data)
        == "'plan (copy).pdf' is already attached"
    )
    store(session_factory, clock, borough, storage, second, "plan.pdf", data)
    assert session.scalar(select(func.count()).select_from(Document)) == 2
    assert len(stored_files(storage)) == 1


def test_limits_per_file_and_per_referral(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    big = make_pdf(padding=3000)
    assert (
        refusal(session_factory, clock, borough, storage, referral_id, "big.pdf", big, max_file_bytes=2048)
        == f"'big.pdf' is {documents.format_size(len(big))}; the limit is 2 KB a file"
    )
    assert documents.format_size(len(big)) == "3.6 KB"
    a, b, c = make_pdf("one", padding=900), make_pdf("two", padding=900), make_pdf("three", padding=900)
    limit = len(a) + len(b) + 100
    store(session_factory, clock, borough, storage, referral_id, "a.pdf", a, max_referral_bytes=limit)
    store(session_factory, clock, borough, storage, referral_id, "b.pdf", b, max_referral_bytes=limit)
    message = refusal(session_factory, clock, borough, storage, referral_id, "c.pdf", c, max_referral_bytes=limit)
    assert message.startswith("'c.pdf' would take this referral's documents past the ")
    assert f"({documents.format_size(len(a) + len(b))} attached already)" in message
    assert [d.original_filename for d in documents.documents_for(session, referral_id)] == ["a.pdf", "b.pdf"]


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("empty.pdf", b"", "'empty.pdf' is empty"),
        ("setup.exe", b"MZ\x90\x00" + bytes(100), "'setup.exe' is not a PDF, Word (.docx), JPEG or PNG file"),
        ("setup.exe", make_pdf(), "'setup.exe' is not a PDF, Word (.docx), JPEG or PNG file"),
        ("page.html", b"<html><script>x()</script></html>", "'page.html' is not a PDF, Word (.docx), JPEG or PNG file"),
        (
            "report.pdf",
            b"<html><body>not a pdf</body></html>",
            "'report.pdf' is not a PDF, Word (.docx), JPEG or PNG file, or it is damaged",
        ),
        (
            "report.pdf",
            make_pdf()[:-40],
            "'report.pdf' is not a PDF, Word (.docx), JPEG or PNG file, or it is damaged",
        ),
        (
            "photo.jpg",
            make_png(),
            "'photo.jpg' is a PNG file but its name ends in .jpg: rename it to end in .png and try again",
        ),
    ],
    ids=["empty", "exe", "pdf-named-exe", "html", "html-named-pdf", "truncated", "png-named-jpg"],
)
def test_refusals_name_the_file_and_why(session_factory, session, clock, borough, storage, filename, data, message):
    referral_id = new_draft(session_factory, clock, borough)
    assert refusal(session_factory, clock, borough, storage, referral_id, filename, data) == message
    assert session.scalar(select(func.count()).select_from(Document)) == 0
    assert stored_files(storage) == []
    assert actions(session, "document.uploaded") == []


def test_a_long_description_is_refused(session_factory, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    with pytest.raises(Invalid) as caught:
        store(session_factory, clock, borough, storage, referral_id, "a.pdf", make_pdf(), description="x" * 201)
    assert caught.value.problems == {"description": "Description must be 200 characters or fewer"}
    store(session_factory, clock, borough, storage, referral_id, "a.pdf", make_pdf(), description="x" * 200)


def test_a_path_in_the_filename_is_dropped(session_factory, session, clock, borough, storage, tmp_path):
    referral_id = new_draft(session_factory, clock, borough)
    document_id = store(
        session_factory, clock, borough, storage, referral_id, "../../../../etc/cron.d/x.pdf", make_pdf()
    )
    document = session.get(Document, document_id)
    assert document.original_filename == "x.pdf"
    assert stored_files(storage) == [storage / document.sha256[:2] / document.sha256]
    assert not (tmp_path / "etc").exists()


def test_documents_are_added_only_while_the_school_can_still_change_the_referral(
    session_factory, session, clock, borough, storage
):
    submitted = session.scalar(select(Referral.id).where(Referral.status == ReferralStatus.submitted).limit(1))
    assert submitted is not None
    with pytest.raises(Conflict):
        store(session_factory, clock, borough, storage, submitted, "late.pdf", make_pdf())
    asked = session.scalar(select(Referral.id).where(Referral.status == ReferralStatus.information_requested).limit(1))
    assert asked is not None  # the demo has one: Ferncastle was asked for more
    store(session_factory, clock, borough, storage, asked, "attendance.pdf", make_pdf())
    assert len(documents.documents_for(session, asked)) == 1


def test_a_rolled_back_upload_leaves_no_file(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    kept = make_pdf("kept")
    store(session_factory, clock, borough, storage, referral_id, "kept.pdf", kept)
    with pytest.raises(RuntimeError), transaction(session_factory) as s:
        documents.store_document(
            s,
            referral=s.get(Referral, referral_id),
            filename="new.pdf",
            data=make_pdf("new"),
            description="",
            uploaded_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
            max_file_bytes=BIG,
            max_referral_bytes=3 * BIG,
        )
        assert len(stored_files(storage)) == 2  # written before the commit
        raise RuntimeError("something later in the same request failed")
    [only] = stored_files(storage)
    assert only.read_bytes() == kept  # the earlier, committed file is untouched
    assert [d.original_filename for d in documents.documents_for(session, referral_id)] == ["kept.pdf"]


def remove(session_factory, clock, borough, storage, referral_id, document_id) -> None:
    with transaction(session_factory) as session:
        documents.remove_document(
            session,
            referral=session.get(Referral, referral_id),
            document_id=document_id,
            removed_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
        )


def test_removal_keeps_a_file_another_document_uses_and_deletes_the_last(
    session_factory, session, clock, borough, storage
):
    first, second = new_draft(session_factory, clock, borough), new_draft(session_factory, clock, borough)
    data = make_pdf("shared")
    on_first = store(session_factory, clock, borough, storage, first, "shared.pdf", data)
    on_second = store(session_factory, clock, borough, storage, second, "shared.pdf", data)
    [path] = stored_files(storage)
    remove(session_factory, clock, borough, storage, first, on_first)
    assert session.get(Document, on_first) is None
    assert path.read_bytes() == data  # the second referral still has it
    remove(session_factory, clock, borough, storage, second, on_second)
    assert stored_files(storage) == []
    removed = actions(session, "document.removed")
    assert [(e.record_id, e.detail["file_kept"]) for e in removed] == [(str(on_first), True), (str(on_second), False)]


def test_a_rolled_back_removal_keeps_the_file(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    document_id = store(session_factory, clock, borough, storage, referral_id, "a.pdf", make_pdf())
    with pytest.raises(RuntimeError), transaction(session_factory) as s:
        documents.remove_document(
            s,
            referral=s.get(Referral, referral_id),
            document_id=document_id,
            removed_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
        )
        raise RuntimeError("the request failed after the removal")
    session.expire_all()
    assert session.get(Document, document_id) is not None
    assert len(stored_files(storage)) == 1


def test_removed_and_added_back_in_one_transaction_keeps_the_file(session_factory, session, clock, borough, storage):
    referral_id = new_draft(session_factory, clock, borough)
    data = make_pdf()
    document_id = store(session_factory, clock, borough, storage, referral_id, "a.pdf", data)
    with transaction(session_factory) as s:
        referral = s.get(Referral, referral_id)
        documents.remove_document(
            s,
            referral=referral,
            document_id=document_id,
            removed_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
        )
        documents.store_document(
            s,
            referral=referral,
            filename="a again.pdf",
            data=data,
            description="",
            uploaded_by_id=borough["referrer"],
            now=clock.now(),
            storage_dir=storage,
            max_file_bytes=BIG,
            max_referral_bytes=BIG,
        )
    [path] = stored_files(storage)
    assert path.read_bytes() == data


def test_removal_rules(session_factory, session, clock, borough, storage):
    mine, other = new_draft(session_factory, clock, borough), new_draft(session_factory, clock, borough)
    document_id = store(session_factory, clock, borough, storage, mine, "a.pdf", make_pdf())
    with pytest.raises(NotFound):  # not on that referral
        remove(session_factory, clock, borough, storage, other, document_id)
    with pytest.raises(NotFound):
        remove(session_factory, clock, borough, storage, mine, document_id + 999)
    with transaction(session_factory) as s:
        referral = s.get(Referral, mine)
        referral.status = ReferralStatus.information_requested  # as if submitted and asked a question
        referral.reference = "VPHC-2026-0999"
    with pytest.raises(Conflict):
        remove(session_factory, clock, borough, storage, mine, document_id)
    assert session.get(Document, document_id) is not None
    assert len(stored_files(storage)) == 1


def test_a_referral_takes_at_most_ten_documents(session_factory, clock, borough, storage):
    from tests.unit.test_document_types import make_pdf

    referral_id = new_draft(session_factory, clock, borough)
    for n in range(10):
        store(session_factory, clock, borough, storage, referral_id, f"report-{n}.pdf", make_pdf(f"report {n}"))
    message = refusal(session_factory, clock, borough, storage, referral_id, "report-10.pdf", make_pdf("report 10"))
    assert message == "'report-10.pdf' was not added: a referral can have up to 10 documents"
