"""The mail catcher's inbox, for the embedded set-up only: every email the product has sent."""

from __future__ import annotations

import ipaddress
import re

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from notifications.catcher import get_caught, read_maildir
from web.deps import render, settings_of


def loopback_only(request: Request) -> None:
    """The catcher shows sign-in links: only someone at this machine may read it."""
    host = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = host == "localhost"
    if not local:
        raise HTTPException(status_code=404)


router = APIRouter(prefix="/outbox", dependencies=[Depends(loopback_only)])

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def _caught(request: Request, key: str):
    if not KEY_PATTERN.match(key):
        raise HTTPException(status_code=404)
    caught = get_caught(settings_of(request).maildir, key)
    if caught is None:
        raise HTTPException(status_code=404)
    return caught


@router.get("")
def outbox(request: Request) -> Response:
    return render(request, "outbox/index.html", messages=read_maildir(settings_of(request).maildir))


@router.get("/{key}")
def outbox_message(request: Request, key: str) -> Response:
    caught = _caught(request, key)
    return render(
        request,
        "outbox/message.html",
        caught=caught,
        headers=[(name, str(value)) for name, value in caught.message.items()],
        text_body=caught.part("text/plain"),
        has_html=caught.part("text/html") is not None,
        calendar=caught.part("text/calendar"),
        attachments=caught.attachments(),
    )


@router.get("/{key}/html")
def outbox_message_html(request: Request, key: str) -> Response:
    """The email's own HTML, sandboxed: no scripts, shown only framed by our message page."""
    html = _caught(request, key).part("text/html") or ""
    base = '<base target="_blank">'  # links open in a new tab, not inside the frame
    html = html.replace("<head>", "<head>" + base, 1) if "<head>" in html else base + html
    return Response(
        html,
        media_type="text/html",
        headers={
            "Content-Security-Policy": "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none';"
            " style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


@router.get("/{key}/attachments/{index}")
def outbox_attachment(request: Request, key: str, index: int) -> Response:
    attachments = _caught(request, key).attachments()
    if not 0 <= index < len(attachments):
        raise HTTPException(status_code=404)
    filename, content_type, payload = attachments[index]
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100] or "attachment"
    return Response(
        payload,
        media_type=content_type if content_type != "text/html" else "application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{safe_name}"'},
    )
