"""Checks on text that people type or import, shared so each rule lives in one place."""

from __future__ import annotations

import re

# One @, a dot in the domain, no spaces, nothing that lists, names or quotes addresses ("a,b@x", "<b@x>");
# control characters are refused separately.
_ADDRESS_PART = r"[^@\s,;<>\"()\[\]\\:]+"
EMAIL_PATTERN = re.compile(rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
MAX_EMAIL_LENGTH = 320


def has_control_characters(value: str) -> bool:
    return bool(CONTROL_CHARACTERS.search(value))


def is_email_address(value: str) -> bool:
    return len(value) <= MAX_EMAIL_LENGTH and not has_control_characters(value) and bool(EMAIL_PATTERN.match(value))
