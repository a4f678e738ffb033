"""The only module that talks SMTP. Classifies failures as permanent (5xx) or temporary."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool = False
    error: str | None = None


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        use_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (465 if use_tls else 25),
            use_tls=use_tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def _classify(exc: Exception) -> SendResult:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    code = getattr(exc, "code", None)
    if isinstance(code, int) and 500 <= code < 600:
        return SendResult(ok=False, permanent=True, error=f"{code} {getattr(exc, 'message', exc)}")
    if isinstance(code, int) and code > 0:
        return SendResult(ok=False, error=f"{code} {getattr(exc, 'message', exc)}")
    return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")


async def _send_all(target: SmtpTarget, messages: Sequence[EmailMessage], timeout: float) -> list[SendResult]:
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        use_tls=target.use_tls,
        start_tls=None,  # STARTTLS when the server offers it
        username=target.username,
        password=target.password,
        timeout=timeout,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        failure = _classify(exc)
        return [failure for _ in messages]
    results = []
    try:
        for message in messages:
            try:
                await client.send_message(message)
                results.append(SendResult(ok=True))
            except aiosmtplib.SMTPServerDisconnected as exc:
                failure = _classify(exc)
                results.extend(failure for _ in messages[len(results) :])
                break
            except (aiosmtplib.SMTPException, OSError) as exc:
                results.append(_classify(exc))
                await _reset(client)
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return results


async def _reset(client: aiosmtplib.SMTP) -> None:
    try:
        await client.rset()
    except (aiosmtplib.SMTPException, OSError):
        pass


def send_messages(smtp_url: str, messages: Sequence[EmailMessage], *, timeout: float = 30) -> list[SendResult]:
    """Send over one connection; one result per message, in order. Never raises for SMTP trouble."""
    if not messages:
        return []
    run = functools.partial(asyncio.run, _send_all(SmtpTarget.from_url(smtp_url), messages, timeout))
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from code that already runs an event loop in this thread: send from another thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()
