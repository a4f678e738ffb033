"""The retention schedule for case records: what is due (plan) and doing it (apply).

Each rule names the records it would change by id only: a report never holds anything about a child.
`apply` re-checks every record is still due before it redacts or deletes it, and writes an audit row
per record ('retention.redacted' or 'retention.deleted'). The audit log itself is never touched here.

Rules (defaults in caseconf.settings, described in docs/data-protection.md):
- referrals: closed, withdrawn, declined or signposted `referral_years` after they ended (and, with
  `until_age`, not before the child reaches that age) lose what identifies the child; the reference,
  school, dates, status, reasons and outcomes stay for statistics;
- children: a child whose every referral is redacted keeps only their birth year, gender, ethnicity,
  school and year group;
- referral_documents: the uploads of redacted referrals: files deleted, rows kept and marked withdrawn;
- meeting_documents: stored papers packs and minutes PDFs, once the meeting is `referral_years` old and
  every referral on its agenda is redacted;
- drafts: referrals never submitted, `draft_days` after their last change, deleted with their documents;
- sign_in_tokens, web_sessions: deleted `session_days` after they expired or ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agencies.models import SignInToken, WebSession
from caseconf import audit
from caseconf.clock import london_today
from caseconf.settings import Settings
from meetings.documents import document_path, file_changes
from meetings.models import (
    Action,
    ActionEvent,
    AgencyWait,
    AgendaItem,
    Child,
    Contribution,
    Decision,
    Document,
    DocumentKind,
    Meeting,
    MinuteCorrection,
    PupilOfConcern,
    Referral,
    ReferralStatus,
    ReferralStatusChange,
)

REMOVED = "Removed under the retention schedule"
ACTOR = "retention schedule"
ENDED = (ReferralStatus.closed, ReferralStatus.withdrawn, ReferralStatus.declined, ReferralStatus.signposted)
MEETING_FILES = (DocumentKind.papers_pack, DocumentKind.minutes)


@dataclass(frozen=True)
class RetentionRules:
    referral_years: int = 6
    until_age: int = 0  # 0: not used
    draft_days: int = 90
    email_days: int = 180
    session_days: int = 30

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionRules:
        return cls(
            referral_years=settings.retention_referral_years,
            until_age=settings.retention_until_age,
            draft_days=settings.retention_draft_days,
            email_days=settings.retention_email_days,
            session_days=settings.retention_session_days,
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Rule:
    key: str
    label: str
    action: str  # "redacted" or "deleted"
    record_type: str


RULES = (
    Rule("referrals", "Ended referrals: what identifies the child removed", "redacted", "referral"),
    Rule("children", "Children whose every referral is redacted", "redacted", "child"),
    Rule("referral_documents", "Uploaded documents of redacted referrals: files deleted", "deleted", "document"),
    Rule("meeting_documents", "Stored papers packs and minutes of old meetings: files deleted", "deleted", "document"),
    Rule("drafts", "Draft referrals never submitted", "deleted", "referral"),
    Rule("sign_in_tokens", "Expired sign-in links", "deleted", "sign_in_token"),
    Rule("web_sessions", "Expired or ended web sessions", "deleted", "web_session"),
)


def describe(rules: RetentionRules) -> dict[str, str]:
    """Each rule's period in words, for reports and the data protection page."""
    age = f", and not before the child is {rules.until_age}" if rules.until_age else ""
    years = f"{rules.referral_years} year{'s' if rules.referral_years != 1 else ''}"
    return {
        "referrals": f"{years} after the referral ended{age}",
        "children": "when their last referral is redacted",
        "referral_documents": "when their referral is redacted",
        "meeting_documents": f"{years} after the meeting, once every referral on its agenda is redacted",
        "drafts": f"{rules.draft_days} days after the draft last changed",
        "sign_in_tokens": f"{rules.session_days} days after the link expired",
        "web_sessions": f"{rules.session_days} days after the session expired or ended",
    }


# ---- dates ----------------------------------------------------------------------------------------


def add_years(moment, years: int):
    """The same day `years` later (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def ended_at(referral: Referral) -> datetime:
    """When the referral reached its final status (its last change to that status), else its last change."""
    return max((c.changed_at for c in referral.history if c.to_status == referral.status), default=referral.updated_at)


# ---- what is due ------------------------------------------------------------------------------------


def _referral_due(referral: Referral, now: datetime, rules: RetentionRules) -> bool:
    if referral.status not in ENDED or referral.redacted_at is not None:
        return False
    if add_years(ended_at(referral), rules.referral_years) > now:
        return False
    child = referral.child
    if rules.until_age and child is not None and child.redacted_at is None:
        return add_years(child.date_of_birth, rules.until_age) <= london_today(now)
    return True


def referrals_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    candidates = session.scalars(
        select(Referral).where(Referral.status.in_(ENDED), Referral.redacted_at.is_(None)).order_by(Referral.id)
    )
    return [r.id for r in candidates if _referral_due(r, now, rules)]


def _child_due(session: Session, child: Child, also_redacted: frozenset[int]) -> bool:
    if child.redacted_at is not None:
        return False
    referrals = session.scalars(select(Referral).where(Referral.child_id == child.id)).all()
    return bool(referrals) and all(r.redacted_at is not None or r.id in also_redacted for r in referrals)


def children_due(
    session: Session, now: datetime, rules: RetentionRules, *, referral_ids: Iterable[int] = ()
) -> list[int]:
    """Children whose referrals are all redacted, counting `referral_ids` (due in the same run) as redacted."""
    also = frozenset(referral_ids)
    candidates = session.scalars(
        select(Child).where(Child.redacted_at.is_(None), Child.id.in_(select(Referral.child_id))).order_by(Child.id)
    )
    return [c.id for c in candidates if _child_due(session, c, also)]


def referral_documents_due(
    session: Session, now: datetime, rules: RetentionRules, *, referral_ids: Iterable[int] = ()
) -> list[int]:
    also = list(referral_ids)
    return list(
        session.scalars(
            select(Document.id)
            .join(Referral, Referral.id == Document.referral_id)
            .where(
                Document.kind == DocumentKind.upload,
                Document.file_deleted_at.is_(None),
                Referral.status != ReferralStatus.draft,  # a draft's documents go with the draft
                or_(Referral.redacted_at.is_not(None), Referral.id.in_(also)),
            )
            .order_by(Document.id)
        )
    )


def _meeting_due(
    session: Session, meeting: Meeting, now: datetime, rules: RetentionRules, also: frozenset[int]
) -> bool:
    if add_years(meeting.starts_at, rules.referral_years) > now:
        return False
    referral_ids = {i.referral_id for i in meeting.items if i.referral_id is not None}
    if not referral_ids:
        return True
    redacted = set(
        session.scalars(select(Referral.id).where(Referral.id.in_(referral_ids), Referral.redacted_at.is_not(None)))
    )
    return referral_ids <= redacted | also


def meeting_documents_due(
    session: Session, now: datetime, rules: RetentionRules, *, referral_ids: Iterable[int] = ()
) -> list[int]:
    also = frozenset(referral_ids)
    documents = session.scalars(
        select(Document)
        .where(Document.kind.in_(MEETING_FILES), Document.file_deleted_at.is_(None), Document.meeting_id.is_not(None))
        .order_by(Document.id)
    ).all()
    due_meetings: dict[int, bool] = {}
    found = []
    for document in documents:
        if document.meeting_id not in due_meetings:
            meeting = session.get(Meeting, document.meeting_id)
            due_meetings[document.meeting_id] = meeting is not None and _meeting_due(session, meeting, now, rules, also)
        if due_meetings[document.meeting_id]:
            found.append(document.id)
    return found


def drafts_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    return list(
        session.scalars(
            select(Referral.id)
            .where(
                Referral.status == ReferralStatus.draft, Referral.updated_at <= now - timedelta(days=rules.draft_days)
            )
            .order_by(Referral.id)
        )
    )


def sign_in_tokens_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    cutoff = now - timedelta(days=rules.session_days)
    return list(
        session.scalars(select(SignInToken.id).where(SignInToken.expires_at <= cutoff).order_by(SignInToken.id))
    )


def web_sessions_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    cutoff = now - timedelta(days=rules.session_days)
    return list(
        session.scalars(
            select(WebSession.id)
            .where(or_(WebSession.expires_at <= cutoff, WebSession.ended_at <= cutoff))
            .order_by(WebSession.id)
        )
    )


def plan(session: Session, now: datetime, rules: RetentionRules) -> dict[str, list[int]]:
    """Record ids due under each rule now, by rule key. Reads only."""
    referrals = referrals_due(session, now, rules)
    return {
        "referrals": referrals,
        "children": children_due(session, now, rules, referral_ids=referrals),
        "referral_documents": referral_documents_due(session, now, rules, referral_ids=referrals),
        "meeting_documents": meeting_documents_due(session, now, rules, referral_ids=referrals),
        "drafts": drafts_due(session, now, rules),
        "sign_in_tokens": sign_in_tokens_due(session, now, rules),
        "web_sessions": web_sessions_due(session, now, rules),
    }


# ---- doing it -----------------------------------------------------------------------------------------


def audit_record(session: Session, now: datetime, rule: Rule, record_id: int, **detail) -> None:
    audit.record(
        session,
        now=now,
        action=f"retention.{rule.action}",
        actor_label=ACTOR,
        record_type=rule.record_type,
        record_id=record_id,
        rule=rule.key,
        **detail,
    )


def _removed(value: str | None) -> str | None:
    return REMOVED if value else value


def redact_referral(session: Session, referral: Referral, *, now: datetime) -> None:
    """Remove what identifies the child from the referral and everything said about it at meetings.
    Kept: reference, school, referrer, dates, status, urgency, reasons, SEN, attendance and exclusion
    figures, and the outcomes decided (without their reasons)."""
    for name in (
        "reasons_other",
        "what_is_happening",
        "strengths",
        "voice_of_child",
        "voice_of_parent",
        "aces_notes",
        "asks_of_clinic",
        "urgency_reason",
        "lawful_basis_reason",
        "child_view_on_sharing",
        "consent_withdrawal_note",
    ):
        setattr(referral, name, _removed(getattr(referral, name)))
    for name in ("consent_given_by", "lawful_basis_decided_by"):
        setattr(referral, name, _removed(getattr(referral, name)))
    referral.draft_answers = {}
    referral.family = {}
    referral.health = {}
    referral.community_safety = {}
    referral.early_help = {}
    referral.part_time_timetable = {}
    referral.aces_considered = []
    referral.social_care_statuses = []
    referral.suspension_dates = []
    referral.interventions = []
    referral.agencies_involved = []
    referral.awaiting_feedback = []
    referral.redacted_at = now
    for change in session.scalars(select(ReferralStatusChange).where(ReferralStatusChange.referral_id == referral.id)):
        change.note = _removed(change.note)
    item_ids = list(session.scalars(select(AgendaItem.id).where(AgendaItem.referral_id == referral.id)))
    for item in session.scalars(select(AgendaItem).where(AgendaItem.id.in_(item_ids))):
        item.notes = _removed(item.notes) or ""
    for decision in session.scalars(select(Decision).where(Decision.agenda_item_id.in_(item_ids))):
        decision.rationale = REMOVED
        decision.dissent = _removed(decision.dissent)
    for contribution in session.scalars(select(Contribution).where(Contribution.agenda_item_id.in_(item_ids))):
        contribution.body = _removed(contribution.body) or ""
    for correction in session.scalars(select(MinuteCorrection).where(MinuteCorrection.agenda_item_id.in_(item_ids))):
        correction.body = REMOVED
        correction.response = _removed(correction.response)
    actions = session.scalars(
        select(Action).where(or_(Action.referral_id == referral.id, Action.agenda_item_id.in_(item_ids)))
    ).all()
    for action in actions:
        action.description = REMOVED
        action.latest_update = _removed(action.latest_update)
    action_ids = [a.id for a in actions]
    for event in session.scalars(select(ActionEvent).where(ActionEvent.action_id.in_(action_ids))):
        event.note = _removed(event.note)
    for wait in session.scalars(select(AgencyWait).where(AgencyWait.referral_id == referral.id)):
        wait.waiting_for = REMOVED
        wait.resolution = _removed(wait.resolution)


def redact_child(child: Child, *, now: datetime) -> None:
    child.legal_first_name = "Redacted"
    child.legal_surname = "Redacted"
    child.preferred_name = None
    child.date_of_birth = date(child.date_of_birth.year, 1, 1)
    child.upn = None
    child.home_postcode = None
    child.first_language = None
    child.redacted_at = now


def delete_file(session: Session, document: Document, *, now: datetime, storage_dir: Path) -> bool:
    """Withdraw the document and delete its stored file once committed (unless another live document holds
    the same content). True when the file goes."""
    document.withdrawn_at = document.withdrawn_at or now
    document.file_deleted_at = now
    if document.kind == DocumentKind.upload:
        document.original_filename = f"document-{document.id}"  # names of uploads often name the child
        document.description = ""
    session.flush()
    shared = session.scalar(
        select(Document.id)
        .where(Document.sha256 == document.sha256, Document.file_deleted_at.is_(None), Document.id != document.id)
        .limit(1)
    )
    if shared is None:
        file_changes(session).unneeded.add(document_path(storage_dir, document))
    return shared is None


def delete_draft(session: Session, referral_id: int, *, storage_dir: Path) -> list[Path]:
    """A draft and everything only it holds: its documents, its history, its child if no other record names
    them. Returns the stored files no longer needed (for the caller to delete once this has worked)."""
    documents = session.scalars(select(Document).where(Document.referral_id == referral_id)).all()
    hashes = {d.sha256: document_path(storage_dir, d) for d in documents}
    child_id = session.scalar(select(Referral.child_id).where(Referral.id == referral_id))
    session.execute(delete(Document).where(Document.referral_id == referral_id))
    session.execute(delete(ReferralStatusChange).where(ReferralStatusChange.referral_id == referral_id))
    session.execute(delete(Referral).where(Referral.id == referral_id))
    if child_id is not None:
        others = session.scalar(select(Referral.id).where(Referral.child_id == child_id).limit(1))
        concerns = session.scalar(select(PupilOfConcern.id).where(PupilOfConcern.child_id == child_id).limit(1))
        if others is None and concerns is None:
            session.execute(delete(Child).where(Child.id == child_id))
    still_used = set(session.scalars(select(Document.sha256).where(Document.sha256.in_(list(hashes)))))
    return [path for sha, path in hashes.items() if sha not in still_used]


def _rule(key: str) -> Rule:
    return next(r for r in RULES if r.key == key)


def apply_rule(
    session: Session,
    now: datetime,
    rule: Rule,
    planned_ids: list[int],
    due_now: Callable[[], list[int]],
    act: Callable[[int], dict | None],
) -> dict[str, list[int]]:
    """Act on each planned record that is still due (act returns None when there was nothing to do), auditing
    each; the rest are skipped for the next run."""
    still_due = set(due_now())
    done, skipped = [], []
    for record_id in planned_ids:
        detail = act(record_id) if record_id in still_due else None
        if detail is None:
            skipped.append(record_id)
            continue
        audit_record(session, now, rule, record_id, **detail)
        done.append(record_id)
    session.flush()
    return {"done": done, "skipped": skipped}


def apply(
    session: Session, now: datetime, rules: RetentionRules, planned: dict[str, list[int]], *, storage_dir: Path
) -> dict[str, dict[str, list[int]]]:
    """Do what `planned` (from plan) lists, re-checking each record is still due; records that became due
    since are left for the next run. Returns, per rule, the ids done and the ids skipped."""
    results: dict[str, dict[str, list[int]]] = {}

    def run(key: str, due_now: Callable[[], list[int]], act: Callable[[int], dict | None]) -> None:
        results[key] = apply_rule(session, now, _rule(key), planned.get(key, []), due_now, act)

    def referral(record_id: int) -> dict:
        row = session.get(Referral, record_id)
        redact_referral(session, row, now=now)
        return {"reference": row.reference}

    def child(record_id: int) -> dict:
        redact_child(session.get(Child, record_id), now=now)
        return {}

    def document(record_id: int) -> dict:
        row = session.get(Document, record_id)
        return {"file_deleted": delete_file(session, row, now=now, storage_dir=storage_dir), "kind": row.kind}

    def draft(record_id: int) -> dict | None:
        try:
            with session.begin_nested():
                unneeded = delete_draft(session, record_id, storage_dir=storage_dir)
        except IntegrityError:
            return None  # something else (an email, say) still names it: kept, and reported as skipped
        file_changes(session).unneeded.update(unneeded)
        return {"files_deleted": len(unneeded)}

    def token(record_id: int) -> dict:
        session.execute(delete(SignInToken).where(SignInToken.id == record_id))
        return {}

    def web_session(record_id: int) -> dict:
        session.execute(delete(WebSession).where(WebSession.id == record_id))
        return {}

    run("referrals", lambda: referrals_due(session, now, rules), referral)
    run("children", lambda: children_due(session, now, rules), child)
    run("referral_documents", lambda: referral_documents_due(session, now, rules), document)
    run("meeting_documents", lambda: meeting_documents_due(session, now, rules), document)
    run("drafts", lambda: drafts_due(session, now, rules), draft)
    run("sign_in_tokens", lambda: sign_in_tokens_due(session, now, rules), token)
    run("web_sessions", lambda: web_sessions_due(session, now, rules), web_session)
    return results
