"""Supporting documents on a referral: checked, stored once under their SHA-256, listed and removed.

Files live outside the web root at <storage_dir>/<sha[:2]>/<sha>. The type is judged from the bytes,
never from the name. Files are written before the Document row is committed, so each session keeps
a note of what it wrote and what it no longer needs: a rolled-back upload takes its new file with it,
and a removed file is deleted only once the removal has committed.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from caseconf import audit
from caseconf.errors import Conflict, Invalid, NotFound
from meetings.models import Document, DocumentKind, Referral, ReferralStatus

MB = 1024 * 1024

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# The names each type may carry: what a person's computer will use to open the download.
EXTENSIONS = {PDF: (".pdf",), DOCX: (".docx",), JPEG: (".jpg", ".jpeg"), PNG: (".png",)}
TYPE_NAMES = {PDF: "PDF", DOCX: "Word (.docx)", JPEG: "JPEG", PNG: "PNG"}
ALLOWED_WORDS = "a PDF, Word (.docx), JPEG or PNG file"
ACCEPT = ",".join(ext for extensions in EXTENSIONS.values() for ext in extensions)

MAX_DESCRIPTION = 200
MAX_FILENAME = 255

# A .docx is a zip: refuse any that would unpack to more than this, or hold more parts (zip bombs).
MAX_DOCX_UNZIPPED = 100 * MB
MAX_DOCX_MEMBERS = 2000
DOCX_MAIN_PART = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"

# Where a school may still add evidence: while drafting, and when triage has asked for more.
OPEN_FOR_UPLOADS = frozenset({ReferralStatus.draft, ReferralStatus.information_requested})

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PDF_HEADER = re.compile(rb"%PDF-[12]\.\d")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# notes/referral-form.md: up to 10 files a referral, each with a short description.
MAX_DOCUMENTS_PER_REFERRAL = 10


# ---- recognising the bytes ------------------------------------------------------------------------


def sniff_type(data: bytes) -> str | None:
    """PDF, PNG, JPEG or DOCX judged from the content alone; None for anything else or anything damaged."""
    if _is_pdf(data):
        return PDF
    if _is_png(data):
        return PNG
    if _is_jpeg(data):
        return JPEG
    if _is_docx(data):
        return DOCX
    return None


def _is_pdf(data: bytes) -> bool:
    # Starts with the header (so nothing, such as HTML, comes before it) and ends with its trailer.
    return bool(PDF_HEADER.match(data)) and b"%%EOF" in data[-1024:]


def _is_png(data: bytes) -> bool:
    """Every chunk whole with a good CRC, IHDR first, some image data, IEND last and nothing after it."""
    if not data.startswith(PNG_SIGNATURE):
        return False
    view = memoryview(data)
    position, first, has_image_data = len(PNG_SIGNATURE), True, False
    while position + 12 <= len(data):
        length = int.from_bytes(view[position : position + 4], "big")
        end = position + 12 + length
        if end > len(data):
            return False
        kind = bytes(view[position + 4 : position + 8])
        if zlib.crc32(view[position + 4 : end - 4]) != int.from_bytes(view[end - 4 : end], "big"):
            return False
        if first:
            width = int.from_bytes(view[position + 8 : position + 12], "big")
            height = int.from_bytes(view[position + 12 : position + 16], "big")
            if kind != b"IHDR" or length != 13 or width == 0 or height == 0:
                return False
            first = False
        has_image_data = has_image_data or kind == b"IDAT"
        if kind == b"IEND":
            return has_image_data and end == len(data)
        position = end
    return False


def _is_jpeg(data: bytes) -> bool:
    # Start-of-image, then a marker; end-of-image last (a cut-off upload loses it).
    return len(data) >= 6 and data[:3] == b"\xff\xd8\xff" and data[3] >= 0xC0 and data.endswith(b"\xff\xd9")


def _is_docx(data: bytes) -> bool:
    # The zip must start at the first byte: zipfile alone would accept a zip appended to an HTML page.
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_DOCX_MEMBERS or sum(m.file_size for m in members) > MAX_DOCX_UNZIPPED:
                return False
            names = {m.filename for m in members}
            if not {"[Content_Types].xml", "word/document.xml"} <= names:
                return False
            if any(name.lower().endswith("vbaproject.bin") for name in names):
                return False  # macros: a .docm under another name
            # Reading is bounded by the declared sizes checked above, and verifies each CRC.
            content_types = archive.read("[Content_Types].xml")
            archive.read("word/document.xml")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, RuntimeError, ValueError, EOFError, OSError):
        return False  # damaged or encrypted (NotImplementedError, an unknown compression, is a RuntimeError)
    return DOCX_MAIN_PART in content_types


# ---- names, sizes and descriptions ------------------------------------------------------------------


def clean_filename(name: str | None) -> str:
    """The last part of what the browser sent, without control or format characters (such as a
    right-to-left override that disguises an extension) or characters that are unsafe in headers
    and on common file systems; at most 255 characters, keeping the extension."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    name = re.sub(r'[<>:"|?*;]', "_", name)
    name = " ".join(name.split()).strip(" .")
    if not name:
        return "document"
    if len(name) > MAX_FILENAME:
        stem, extension = os.path.splitext(name)
        extension = extension[:20]
        name = stem[: MAX_FILENAME - len(extension)].rstrip(" .") + extension
    return name


def format_size(size_bytes: int) -> str:
    """12.3 MB, 10 MB, 512 KB or 300 bytes; rounded up, so a file just over a limit never shows as equal to it."""
    if size_bytes >= MB:
        return f"{math.ceil(size_bytes * 10 / MB) / 10:g} MB"
    if size_bytes >= 1024:
        return f"{math.ceil(size_bytes * 10 / 1024) / 10:g} KB"
    return f"{size_bytes} bytes"


def check_file_size(*, filename: str, size_bytes: int, max_file_bytes: int) -> None:
    """Refuse an empty or oversized file by its size alone, before anything reads it."""
    name = clean_filename(filename)
    if size_bytes <= 0:
        raise Invalid({"file": f"'{name}' is empty"})
    if size_bytes > max_file_bytes:
        raise Invalid(
            {"file": f"'{name}' is {format_size(size_bytes)}; the limit is {format_size(max_file_bytes)} a file"}
        )


def clean_description(description: str | None) -> str:
    text = " ".join((description or "").split())
    if len(text) > MAX_DESCRIPTION:
        raise Invalid({"description": f"Description must be {MAX_DESCRIPTION} characters or fewer"})
    return text


def _check_type(name: str, content_type: str | None) -> str:
    extension = os.path.splitext(name)[1].lower()
    allowed = {ext for extensions in EXTENSIONS.values() for ext in extensions}
    if extension not in allowed:
        raise Invalid({"file": f"'{name}' is not {ALLOWED_WORDS}"})
    if content_type is None:
        raise Invalid({"file": f"'{name}' is not {ALLOWED_WORDS}, or it is damaged"})
    if extension not in EXTENSIONS[content_type]:
        raise Invalid(
            {
                "file": f"'{name}' is a {TYPE_NAMES[content_type]} file but its name ends in {extension}: "
                f"rename it to end in {EXTENSIONS[content_type][0]} and try again"
            }
        )
    return content_type


# ---- files on disk, settled when the transaction ends ----------------------------------------------


_CHANGES = "meetings.documents.file_changes"
_LISTENING = "meetings.documents.listening"


@dataclass
class FileChanges:
    created: set[Path] = field(default_factory=set)  # deleted if the transaction rolls back
    unneeded: set[Path] = field(default_factory=set)  # deleted once the transaction commits
    committed: bool = False


def file_changes(session: Session) -> FileChanges:
    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _note_commit)
        event.listen(session, "after_transaction_end", _settle_files)
        session.info[_LISTENING] = True
    return session.info.setdefault(_CHANGES, FileChanges())


def _note_commit(session: Session) -> None:
    changes = session.info.get(_CHANGES)
    if changes is not None and session.get_nested_transaction() is None:  # the outermost commit only
        changes.committed = True


def _settle_files(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    changes = session.info.pop(_CHANGES, None)
    if changes is None:
        return
    # A narrow race remains: another session committing the same content between our check and
    # this delete. Content-addressed files make that rare; a sweep can restore or report it.
    for path in changes.unneeded if changes.committed else changes.created:
        path.unlink(missing_ok=True)


def document_path(storage_dir: Path, document: Document) -> Path:
    if not SHA256_HEX.fullmatch(document.sha256):
        raise ValueError(f"document {document.id} has a malformed hash")
    return Path(storage_dir) / document.sha256[:2] / document.sha256


def store_file(session: Session, storage_dir: Path, document: Document, data: bytes) -> None:
    """Write a new document's content, deleted again if the transaction rolls back."""
    changes = file_changes(session)
    target = document_path(storage_dir, document)
    changes.unneeded.discard(target)  # removed and added back in one transaction: keep it
    if write_once(target, data):
        changes.created.add(target)


def write_once(target: Path, data: bytes) -> bool:
    """Write atomically (temporary file, then rename); False when the content is already there."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")  # created 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


# ---- commands and queries -----------------------------------------------------------------------


def documents_for(session: Session, referral_id: int) -> list[Document]:
    """The referral's uploaded documents, oldest first."""
    return list(
        session.scalars(
            select(Document)
            .where(Document.referral_id == referral_id, Document.kind == DocumentKind.upload)
            .order_by(Document.created_at, Document.id)
        )
    )


def bytes_used(session: Session, referral_id: int) -> int:
    return session.scalar(
        select(func.coalesce(func.sum(Document.size_bytes), 0)).where(
            Document.referral_id == referral_id, Document.kind == DocumentKind.upload
        )
    )


def get_document(session: Session, document_id: int) -> Document:
    document = session.get(Document, document_id) if 0 < document_id < 2**31 else None
    if document is None:
        raise NotFound(f"document {document_id}")
    return document


def store_document(
    session: Session,
    *,
    referral: Referral,
    filename: str,
    data: bytes,
    description: str,
    uploaded_by_id: int,
    now: datetime,
    storage_dir: Path,
    max_file_bytes: int,
    max_referral_bytes: int,
    ip_address: str | None = None,
) -> Document:
    """Check one file and attach it. Everything is checked before anything is written, so a refused
    file (Invalid, naming the file and why) leaves the session usable for the next one."""
    if referral.status not in OPEN_FOR_UPLOADS:
        raise Conflict("Documents can be added only to a draft referral, or when more information is asked for")
    name = clean_filename(filename)
    description = clean_description(description)
    check_file_size(filename=name, size_bytes=len(data), max_file_bytes=max_file_bytes)
    content_type = _check_type(name, sniff_type(data))
    sha256 = hashlib.sha256(data).hexdigest()

    # Hold the referral row so two uploads at once cannot both fit under the total.
    session.execute(select(Referral.id).where(Referral.id == referral.id).with_for_update())
    duplicate = session.scalar(
        select(Document.id).where(Document.referral_id == referral.id, Document.sha256 == sha256).limit(1)
    )
    if duplicate is not None:
        raise Invalid({"file": f"'{name}' is already attached"})
    attached = session.scalar(select(func.count()).select_from(Document).where(Document.referral_id == referral.id))
    if attached >= MAX_DOCUMENTS_PER_REFERRAL:
        raise Invalid(
            {"file": f"'{name}' was not added: a referral can have up to {MAX_DOCUMENTS_PER_REFERRAL} documents"}
        )
    used = bytes_used(session, referral.id)
    if used + len(data) > max_referral_bytes:
        raise Invalid(
            {
                "file": f"'{name}' would take this referral's documents past the {format_size(max_referral_bytes)} "
                f"limit ({format_size(used)} attached already)"
            }
        )

    document = Document(
        kind=DocumentKind.upload,
        sha256=sha256,
        size_bytes=len(data),
        content_type=content_type,
        original_filename=name,
        description=description,
        referral_id=referral.id,
        uploaded_by_id=uploaded_by_id,
        created_at=now,
    )
    session.add(document)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"'{name}' was attached by someone else at the same moment") from exc

    store_file(session, storage_dir, document, data)
    referral.updated_at = now
    audit.record(
        session,
        now=now,
        action="document.uploaded",
        actor_person_id=uploaded_by_id,
        record_type="document",
        record_id=document.id,
        ip_address=ip_address,
        referral_id=referral.id,
        sha256=sha256,
        size_bytes=len(data),
        content_type=content_type,
    )
    return document


def remove_document(
    session: Session,
    *,
    referral: Referral,
    document_id: int,
    removed_by_id: int,
    now: datetime,
    storage_dir: Path,
    ip_address: str | None = None,
) -> Document:
    """Take an upload off a draft. The stored file goes too, once committed, unless another
    document has the same content."""
    if referral.status != ReferralStatus.draft:
        raise Conflict("Documents can be removed only while the referral is a draft")
    document = session.get(Document, document_id)
    if document is None or document.referral_id != referral.id or document.kind != DocumentKind.upload:
        raise NotFound(f"document {document_id} on referral {referral.id}")
    target = document_path(storage_dir, document)
    session.delete(document)
    session.flush()
    still_used = session.scalar(select(Document.id).where(Document.sha256 == document.sha256).limit(1))
    if still_used is None:
        file_changes(session).unneeded.add(target)
    referral.updated_at = now
    audit.record(
        session,
        now=now,
        action="document.removed",
        actor_person_id=removed_by_id,
        record_type="document",
        record_id=document_id,
        ip_address=ip_address,
        referral_id=referral.id,
        sha256=document.sha256,
        file_kept=still_used is not None,
    )
    return document


def record_download(
    session: Session, *, document: Document, person_id: int, now: datetime, ip_address: str | None = None
) -> None:
    audit.record(
        session,
        now=now,
        action="document.downloaded",
        actor_person_id=person_id,
        record_type="document",
        record_id=document.id,
        ip_address=ip_address,
        referral_id=document.referral_id,
        sha256=document.sha256,
    )
