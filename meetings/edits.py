"""Saving text that two people (or one person on two devices, or a laptop that lost its wifi) may edit.

Every editable text carries a version. A save names the version it started from; when the stored
version has moved on, nothing is overwritten: the caller gets both texts back to show side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from caseconf.errors import Conflict


class EditConflict(Conflict):
    """Someone saved a newer text since `yours` was started; `theirs` is what is stored now."""

    def __init__(self, *, field: str, theirs: str, yours: str, version: int):
        self.field, self.theirs, self.yours, self.version = field, theirs, yours, version
        super().__init__(f"{field} was changed by someone else (now version {version})")


@dataclass(frozen=True)
class Saved:
    field: str
    version: int
    changed: bool  # False when the text sent was already the stored text


def save_text(row, field: str, version_field: str, *, text: str, base_version: int) -> Saved:
    """Set row.<field> to `text` if the stored version is still `base_version`; raise EditConflict if not.
    Sending the stored text again (a retry after a lost response) is not a conflict."""
    stored = getattr(row, field) or ""
    version = getattr(row, version_field) or 0
    if text == stored:
        return Saved(field, version, changed=False)
    if base_version != version:
        raise EditConflict(field=field, theirs=stored, yours=text, version=version)
    setattr(row, field, text)
    setattr(row, version_field, version + 1)
    return Saved(field, version + 1, changed=True)
