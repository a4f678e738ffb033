"""Random tokens, their stored hashes, and signatures (comparisons are constant-time); text made safe for one line."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def sign(secret: str, value: str) -> str:
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def signature_matches(secret: str, value: str, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, value), signature)


# Characters that end a line for some reader: CR, LF, NUL and the other C0/C1 controls (NEL, VT, FF, the
# file separators), and the Unicode line and paragraph separators. Any of them in a header or a calendar
# property could start a new one (Bcc:, ATTENDEE:), so text from people never keeps them there.
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


def one_line(value: str, limit: int | None = None) -> str:
    """The text as one line: every control character or line/paragraph separator becomes a space, and runs of
    whitespace become one space. For email headers and single-line calendar properties."""
    cleaned = "".join(" " if unicodedata.category(ch) in _LINE_BREAKING else ch for ch in value)
    cleaned = " ".join(cleaned.split())
    return cleaned if limit is None else cleaned[:limit]


def text_lines(value: str) -> str:
    """Multi-line text with only plain newlines: CR LF and CR become LF, a line or paragraph separator becomes
    LF, other control characters (NUL, VT, NEL...) become spaces. For a calendar DESCRIPTION."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return "\n".join(one_line(line) for line in value.split("\n"))
