"""The only module that talks SMTP.

`SmtpConnection` is a synchronous wrapper over one aiosmtplib connection (its event loop runs in
a thread of its own, so it works from plain code and from code already inside an event loop).
Each send returns a `SendResult` and never raises: a refused recipient or rejected message is
permanent (5xx), anything about the connection, the login or the server being busy is temporary.

Every message goes to exactly one envelope recipient, the single address in its To header: a To that
smuggles in a second address ("x,evil@example.org"), a Cc or Bcc, or any header value holding a line
break is refused here, permanently, whoever built the message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from urllib.parse import unquote, urlsplit

import aiosmtplib

from caseconf.validation import is_email_address


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

    @property
    def on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def start_tls(self) -> bool | None:
        # Off this machine, mail and credentials never go in clear: STARTTLS is required.
        # On loopback (the built-in catcher) it is used only if offered.
        if self.use_tls:
            return False
        return None if self.on_loopback else True


class UnsafeMessage(ValueError):
    """A message that could send to someone other than its one recipient."""


def envelope_recipient(message: EmailMessage) -> str:
    """The one address a message is sent to; UnsafeMessage for anything that could reach anyone else."""
    for name, value in message.items():
        if "\r" in str(value) or "\n" in str(value):
            raise UnsafeMessage(f"the {name} header is not one line")
    if message.get_all("Cc") or message.get_all("Bcc"):
        raise UnsafeMessage("a message goes to one recipient: no Cc or Bcc")
    to = message.get_all("To") or []
    found = getaddresses([str(value) for value in to])
    if len(to) != 1 or len(found) != 1 or not is_email_address(found[0][1]):
        raise UnsafeMessage("the To header must be exactly one email address")
    return found[0][1]


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    return f"{code} {message}" if isinstance(code, int) and code > 0 else f"{type(exc).__name__}: {message}"


def classify_send_error(exc: BaseException) -> SendResult:
    """What one failed send means for that message."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPServerDisconnected | OSError | TimeoutError):
        return SendResult(ok=False, error=_describe(exc))  # about us or the link, not this message
    if isinstance(exc, aiosmtplib.SMTPResponseException) and isinstance(code, int):
        return SendResult(ok=False, permanent=500 <= code < 600, error=_describe(exc))
    if isinstance(exc, aiosmtplib.SMTPException):
        return SendResult(ok=False, error=_describe(exc))
    # Anything else (a malformed address the client will not even try) will never succeed.
    return SendResult(ok=False, permanent=True, error=f"cannot be sent: {_describe(exc)}")


class SmtpConnection:
    """with SmtpConnection(url) as smtp: result = smtp.send(message); results = smtp.send_many(messages)"""

    def __init__(self, url: str, *, timeout: float = 30):
        self.target = SmtpTarget.from_url(url)
        self.timeout = timeout
        self.problem: SendResult | None = None  # set when the connection cannot be used
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp", daemon=True)
        self._client: aiosmtplib.SMTP | None = None

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> SmtpConnection:
        self._thread.start()
        target = self.target
        self._client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            username=target.username,
            password=target.password,
            timeout=self.timeout,
        )
        try:
            self._run(self._client.connect())
        except Exception as exc:  # refused, TLS, login: nothing can be sent this time
            self.problem = SendResult(
                ok=False, error=f"could not connect to {target.host}:{target.port}: {_describe(exc)}"
            )
        return self

    @property
    def usable(self) -> bool:
        return self.problem is None

    def send(self, message: EmailMessage) -> SendResult:
        return self.send_many([message])[0]

    def send_many(self, messages: list[EmailMessage]) -> list[SendResult]:
        """Send in order over the connection, one result each; once the connection is lost, the rest get
        that problem. One hand-over to the connection's thread for the lot, not one a message."""
        if self.problem:
            return [self.problem] * len(messages)
        return self._run(self._send_all(messages))

    async def _send_all(self, messages: list[EmailMessage]) -> list[SendResult]:
        return [self.problem or await self._send_one(message) for message in messages]

    async def _send_one(self, message: EmailMessage) -> SendResult:
        try:
            recipient = envelope_recipient(message)
        except UnsafeMessage as exc:
            return SendResult(ok=False, permanent=True, error=f"not sent: {exc}")
        try:
            await self._client.send_message(message, recipients=[recipient])
        except Exception as exc:
            result = classify_send_error(exc)
            if isinstance(exc, aiosmtplib.SMTPServerDisconnected | OSError | TimeoutError):
                self.problem = result
            else:
                try:  # a refused message leaves the session mid-transaction: start the next one afresh
                    await self._client.rset()
                except Exception as reset_exc:
                    self.problem = SendResult(ok=False, error=f"connection lost: {_describe(reset_exc)}")
            return result
        return SendResult(ok=True)

    def __exit__(self, *exc_info) -> None:
        try:
            if self._client is not None and self._client.is_connected:
                try:
                    self._run(self._client.quit())
                except Exception:
                    self._client.close()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
