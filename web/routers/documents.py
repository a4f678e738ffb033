"""Supporting documents on a referral: the list and upload page, removal, and downloads."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from caseconf.errors import Forbidden, Invalid
from caseconf.settings import Settings
from meetings import documents
from meetings.access import Principal, access_referral, can_on_referral
from meetings.consent import may_download
from meetings.models import Referral
from web.deps import DbSession, SignedIn, client_ip, current_principal, now_of, read_referral, render, settings_of
from web.security import SAFE_METHODS

# Room for the multipart framing, the description and the CSRF token around the files themselves.
BODY_MARGIN = 1024 * 1024


class BodyTooLarge(Exception):
    pass


def body_limit(settings: Settings) -> int:
    return settings.upload_max_referral_mb * documents.MB + BODY_MARGIN


class LimitedBodyRoute(APIRoute):
    """Refuses a body larger than a referral's documents could be, before anything reads it: by its
    Content-Length when given, and by counting as it arrives when not. This runs ahead of every
    dependency, the CSRF check (which parses the form) included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            if request.method in SAFE_METHODS:
                return await handler(request)
            limit = body_limit(settings_of(request))
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > limit):
                return await _too_large(request)
            received = 0

            async def receive():
                nonlocal received
                message = await request.receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise BodyTooLarge()
                return message

            try:
                return await handler(Request(request.scope, receive))
            except BodyTooLarge:
                return await _too_large(request)

        return limited


router = APIRouter(route_class=LimitedBodyRoute)


async def _too_large(request: Request) -> Response:
    await run_in_threadpool(current_principal, request)  # for the page header; nothing of the referral is shown
    settings = settings_of(request)
    referral_id = str(request.path_params.get("referral_id", ""))
    return render(
        request,
        "documents/too_large.html",
        status_code=413,
        referral_id=referral_id if referral_id.isdigit() else None,
        max_file=documents.format_size(settings.upload_max_file_mb * documents.MB),
        max_referral=documents.format_size(settings.upload_max_referral_mb * documents.MB),
    )


async def upload_form(request: Request) -> AsyncIterator[FormData]:
    """The form the CSRF check has already parsed (files spooled to disk), closed after the response."""
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


UploadForm = Annotated[FormData, Depends(upload_form)]


def _may_upload(principal: Principal, referral: Referral) -> bool:
    return can_on_referral(principal, "edit_draft", referral) or can_on_referral(principal, "answer", referral)


def _page(
    request: Request,
    session: Session,
    principal: Principal,
    referral: Referral,
    *,
    status_code: int = 200,
    errors: list[dict[str, str]] | None = None,
    description: str = "",
    added: list[str] | None = None,
    added_count: int = 0,
    removed: bool = False,
) -> Response:
    settings = settings_of(request)
    max_referral = settings.upload_max_referral_mb * documents.MB
    used = documents.bytes_used(session, referral.id)
    return render(
        request,
        "documents/index.html",
        status_code=status_code,
        referral=referral,
        documents=documents.documents_for(session, referral.id),
        can_upload=_may_upload(principal, referral),
        can_remove=can_on_referral(principal, "edit_draft", referral),
        errors=errors or [],
        description=description,
        added=added or [],
        added_count=added_count,
        removed=removed,
        format_size=documents.format_size,
        type_names=documents.TYPE_NAMES,
        accept=documents.ACCEPT,
        max_description=documents.MAX_DESCRIPTION,
        max_file=documents.format_size(settings.upload_max_file_mb * documents.MB),
        max_referral=documents.format_size(max_referral),
        space_left=documents.format_size(max(max_referral - used, 0)),
    )


@router.get("/referrals/{referral_id}/documents")
def documents_page(
    request: Request, session: DbSession, principal: SignedIn, referral_id: int, added: int = 0, removed: int = 0
) -> Response:
    referral = read_referral(request, session, principal, referral_id, "view")
    return _page(request, session, principal, referral, added_count=max(added, 0), removed=removed > 0)


def _size_of(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


@router.post("/referrals/{referral_id}/documents")
def upload_documents(
    request: Request, session: DbSession, principal: SignedIn, form: UploadForm, referral_id: int
) -> Response:
    settings = settings_of(request)
    now = now_of(request)
    max_file = settings.upload_max_file_mb * documents.MB
    typed = str(form.get("description") or "")
    # A file input left empty still sends a part, with no name and no bytes.
    uploads = [u for u in form.getlist("documents") if isinstance(u, UploadFile) and (u.filename or _size_of(u))]
    errors: list[dict[str, str]] = []
    added: list[str] = []
    with session.begin():
        referral = access_referral(session, principal, referral_id, "view")
        if not _may_upload(principal, referral):
            raise Forbidden("referral.edit_draft")
        try:
            description = documents.clean_description(typed)
        except Invalid as exc:
            errors.append({"text": exc.problems["description"], "href": "#description"})
        if not uploads:
            errors.append({"text": "Select a file to upload", "href": "#documents"})
        for upload in uploads if not errors else []:
            try:
                # Sized before reading, so an oversized file is never read into memory.
                documents.check_file_size(
                    filename=upload.filename, size_bytes=_size_of(upload), max_file_bytes=max_file
                )
                upload.file.seek(0)
                document = documents.store_document(
                    session,
                    referral=referral,
                    filename=upload.filename or "",
                    data=upload.file.read(max_file + 1),
                    description=description,
                    uploaded_by_id=principal.person_id,
                    now=now,
                    storage_dir=settings.documents_dir,
                    max_file_bytes=max_file,
                    max_referral_bytes=settings.upload_max_referral_mb * documents.MB,
                    ip_address=client_ip(request),
                )
                added.append(document.original_filename)
            except Invalid as exc:
                errors.append({"text": exc.problems["file"], "href": "#documents"})
    if not errors:
        return RedirectResponse(f"/referrals/{referral_id}/documents?added={len(added)}", status_code=303)
    return _page(request, session, principal, referral, status_code=400, errors=errors, description=typed, added=added)


@router.post("/referrals/{referral_id}/documents/{document_id}/remove")
def remove_document(request: Request, session: DbSession, principal: SignedIn, referral_id: int, document_id: int):
    with session.begin():
        referral = access_referral(session, principal, referral_id, "edit_draft")
        documents.remove_document(
            session,
            referral=referral,
            document_id=document_id,
            removed_by_id=principal.person_id,
            now=now_of(request),
            storage_dir=settings_of(request).documents_dir,
            ip_address=client_ip(request),
        )
    return RedirectResponse(f"/referrals/{referral_id}/documents?removed=1", status_code=303)


def content_disposition(filename: str) -> str:
    """attachment, with an ASCII name for old clients and the exact name (RFC 6266/5987) for the rest.
    Compatibility decomposition turns look-alikes such as a full-width solidus into '/', so separators
    are replaced after it."""
    ascii_name = "".join(
        ch if " " <= ch <= "~" and ch not in '"\\/' else "_"
        for ch in unicodedata.normalize("NFKD", filename)
        if not unicodedata.combining(ch)
    )
    return f"attachment; filename=\"{ascii_name or 'document'}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get("/documents/{document_id}")
def download_document(request: Request, session: DbSession, principal: SignedIn, document_id: int) -> Response:
    settings = settings_of(request)
    with session.begin():
        document = documents.get_document(session, document_id)
        if document.referral_id is None:
            raise Forbidden("document.download")  # meeting packs are served with their meeting's rules
        access_referral(session, principal, document.referral_id, "download")
        if not may_download(session, principal, document):
            return render(request, "data_protection/document_withdrawn.html", status_code=410, document=document)
        path = documents.document_path(settings.documents_dir, document)
        if not path.is_file():
            raise RuntimeError(f"document {document.id} has no stored file")
        documents.record_download(
            session,
            document=document,
            person_id=principal.person_id,
            now=now_of(request),
            ip_address=client_ip(request),
        )
    content_type = (
        document.content_type if document.content_type in documents.TYPE_NAMES else "application/octet-stream"
    )
    return FileResponse(
        path,
        media_type=content_type,
        headers={
            "Content-Disposition": content_disposition(document.original_filename),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            # Should a browser render it anyway, it runs nothing and loads nothing.
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
