"""The built-in mail catcher: an SMTP server on loopback that keeps every message in a Maildir."""

from __future__ import annotations

import asyncio
import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from aiosmtpd.controller import Controller


class MaildirHandler:
    def __init__(self, maildir: Path):
        maildir.parent.mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, create=True)
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        self.maildir.add(header + raw)
        return "250 Message accepted for delivery"


def start_catcher(maildir: Path, host: str, port: int) -> Controller:
    controller = Controller(MaildirHandler(maildir), hostname=host, port=port)
    controller.start()
    return controller


@dataclass
class CaughtMessage:
    key: str
    message: EmailMessage
    received: datetime | None

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def recipient(self) -> str:
        return str(self.message.get("To", ""))

    def part(self, content_type: str) -> str | None:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_attachment():
                return part.get_content()
        return None

    def attachments(self) -> list[tuple[str, str, bytes]]:
        found = []
        for part in self.message.iter_attachments():
            payload = part.get_payload(decode=True) or b""
            found.append((part.get_filename() or "attachment", part.get_content_type(), payload))
        return found


def read_maildir(maildir: Path) -> list[CaughtMessage]:
    """Every caught message, newest first."""
    if not maildir.exists():
        return []
    box = mailbox.Maildir(maildir, create=False)
    caught = []
    for key in box.keys():
        raw = box.get_bytes(key)
        message = message_from_bytes(raw, policy=policy.default)
        try:
            received = parsedate_to_datetime(message["Date"]) if message["Date"] else None
        except (TypeError, ValueError):
            received = None
        caught.append(CaughtMessage(key=key, message=message, received=received))
    # Maildir keys start with the delivery time, so they sort in arrival order.
    caught.sort(key=lambda m: m.key, reverse=True)
    return caught


def get_caught(maildir: Path, key: str) -> CaughtMessage | None:
    return next((m for m in read_maildir(maildir) if m.key == key), None)


class InboxHandler:
    """The app mailbox's SMTP listener: hands every message, raw, to `keep` (which stores it)."""

    def __init__(self, keep: Callable[[bytes], None], max_bytes: int = 25 * 1024 * 1024):
        self.keep = keep
        self.max_bytes = max_bytes

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        if len(raw) > self.max_bytes:
            return "552 5.3.4 Message too big"
        try:
            # Stored before we answer 250, so an accepted message is never lost.
            await asyncio.get_running_loop().run_in_executor(None, self.keep, raw)
        except Exception:
            return "451 4.3.0 Could not store the message; try again later"
        return "250 Message accepted"


def start_inbox_listener(host: str, port: int, keep: Callable[[bytes], None]) -> Controller:
    controller = Controller(InboxHandler(keep), hostname=host, port=port)
    controller.start()
    return controller
