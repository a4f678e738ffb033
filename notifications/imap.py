"""Reading the app mailbox over IMAP, for when replies land in a mailbox rather than our SMTP listener.

Each unseen message is fetched without marking it (BODY.PEEK), handed to `keep` (which stores it raw in
the inbox), and only then flagged \\Seen: a crash in between leaves it unseen, to be fetched again,
and store_inbound keeps the same bytes once.
"""

from __future__ import annotations

import imaplib
from collections.abc import Callable
from datetime import datetime
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from caseconf.db import transaction
from notifications.inbox import store_inbound

TIMEOUT_SECONDS = 30


class ImapProblem(Exception):
    """The mailbox could not be read: refused sign-in, no such folder, or a failed command."""


def _ok(result: tuple[str, list], what: str) -> list:
    status, data = result
    if status != "OK":
        raise ImapProblem(f"{what} failed: {status}")
    return data


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def poll_imap(imap_url: str, keep: Callable[[bytes], None], *, limit: int = 100) -> int:
    """Pass up to `limit` unseen messages to `keep`, flagging each \\Seen once kept; returns how many."""
    parts = urlsplit(imap_url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ImapProblem("not an imap:// or imaps:// address")
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    port = parts.port or (993 if parts.scheme == "imaps" else 143)
    try:
        if parts.scheme == "imaps":
            client = imaplib.IMAP4_SSL(parts.hostname, port, timeout=TIMEOUT_SECONDS)
        else:
            client = imaplib.IMAP4(parts.hostname, port, timeout=TIMEOUT_SECONDS)
    except OSError as exc:
        raise ImapProblem(f"cannot connect to {parts.hostname}:{port}: {exc}") from exc
    kept = 0
    try:
        _ok(client.login(unquote(parts.username or ""), unquote(parts.password or "")), "sign-in")
        _ok(client.select(_quoted(folder)), f"opening {folder}")
        found = _ok(client.uid("SEARCH", None, "UNSEEN"), "search")
        for uid in (found[0] or b"").split()[:limit]:
            fetched = _ok(client.uid("FETCH", uid, "(BODY.PEEK[])"), "fetch")
            raw = next((item[1] for item in fetched if isinstance(item, tuple)), None)
            if raw is None:
                continue  # expunged by someone else meanwhile
            keep(raw)
            _ok(client.uid("STORE", uid, "+FLAGS", "(\\Seen)"), "flagging")
            kept += 1
    except imaplib.IMAP4.error as exc:
        raise ImapProblem(str(exc)) from exc
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return kept


def keep_in_inbox(factory: sessionmaker[Session], now: Callable[[], datetime]) -> Callable[[bytes], None]:
    """A `keep` for poll_imap that stores each message in the inbox in a transaction of its own."""

    def keep(raw: bytes) -> None:
        with transaction(factory) as session:
            store_inbound(session, raw=raw, now=now())

    return keep
