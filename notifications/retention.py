"""The whole retention schedule: the case records' rules (meetings.retention) and the mail rules here, planned
as a dry-run report and then applied, each pass kept as a RetentionRun.

Mail rules: the bodies of sent (or given-up) emails, and the raw text and subject of received ones, are
removed `email_days` after they were sent or received; who, when and the subject the app wrote stay, so the
outbox still shows that an email went. A received message still waiting to be read is never touched.

The audit log is never removed or changed by caseconf: how long it is kept is for the data protection
officer to decide (docs/data-protection.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from meetings import retention
from meetings.models import RetentionRun
from meetings.retention import REMOVED, RetentionRules, Rule
from notifications.models import InboundMessage, InboundStatus, OutboundMessage, OutboundStatus

MAIL_RULES = (
    Rule("sent_email_bodies", "Bodies of sent emails", "redacted", "outbound_message"),
    Rule("received_emails", "Received emails: the raw message and subject", "redacted", "inbound_message"),
)
RULES = (*retention.RULES, *MAIL_RULES)
AUDIT_LOG_KEPT = (
    "The audit log is kept: the app never deletes it. How long to keep it is the data protection officer's decision."
)


def describe(rules: RetentionRules) -> dict[str, str]:
    days = f"{rules.email_days} days"
    return retention.describe(rules) | {
        "sent_email_bodies": f"{days} after the email was sent",
        "received_emails": f"{days} after the email arrived, once it has been dealt with",
    }


# ---- mail ----------------------------------------------------------------------------------------------


def sent_email_bodies_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    cutoff = now - timedelta(days=rules.email_days)
    return list(
        session.scalars(
            select(OutboundMessage.id)
            .where(
                OutboundMessage.status.in_((OutboundStatus.sent, OutboundStatus.failed)),
                func.coalesce(OutboundMessage.sent_at, OutboundMessage.created_at) <= cutoff,
                OutboundMessage.body_text != REMOVED,
            )
            .order_by(OutboundMessage.id)
        )
    )


def received_emails_due(session: Session, now: datetime, rules: RetentionRules) -> list[int]:
    cutoff = now - timedelta(days=rules.email_days)
    return list(
        session.scalars(
            select(InboundMessage.id)
            .where(
                InboundMessage.received_at <= cutoff,
                InboundMessage.status != InboundStatus.received,
                or_(func.length(InboundMessage.raw) > 0, InboundMessage.subject.is_not(None)),
            )
            .order_by(InboundMessage.id)
        )
    )


def _remove_sent_body(session: Session, message_id: int) -> dict[str, Any]:
    message = session.get(OutboundMessage, message_id)
    message.body_text = REMOVED
    message.body_html = None
    message.ics = None
    message.attachments = []
    return {"kind": message.kind}


def _remove_received(session: Session, message_id: int) -> dict[str, Any]:
    message = session.get(InboundMessage, message_id)
    message.raw = b""
    message.subject = None
    return {"kind": message.kind}


MAIL_STEPS = {
    "sent_email_bodies": (sent_email_bodies_due, _remove_sent_body),
    "received_emails": (received_emails_due, _remove_received),
}


# ---- the whole schedule -----------------------------------------------------------------------------------


def plan(session: Session, now: datetime, rules: RetentionRules) -> dict[str, Any]:
    """The dry-run report: for each rule its period, how many records are due and their ids (never anything
    about a child)."""
    due = retention.plan(session, now, rules)
    for key, (find, _act) in MAIL_STEPS.items():
        due[key] = find(session, now, rules)
    periods = describe(rules)
    return {
        "at": now.isoformat(),
        "settings": rules.as_dict(),
        "rules": [
            {
                "key": rule.key,
                "label": rule.label,
                "period": periods[rule.key],
                "action": rule.action,
                "record_type": rule.record_type,
                "count": len(due[rule.key]),
                "ids": due[rule.key],
            }
            for rule in RULES
        ],
        "total": sum(len(ids) for ids in due.values()),
        "audit_log": AUDIT_LOG_KEPT,
    }


def planned_ids(report: dict[str, Any]) -> dict[str, list[int]]:
    return {entry["key"]: [int(i) for i in entry["ids"]] for entry in report.get("rules", [])}


def apply(
    session: Session, now: datetime, rules: RetentionRules, report: dict[str, Any], *, storage_dir: Path
) -> dict[str, Any]:
    """Redact and delete what `report` (from plan) lists and is still due; each record audited."""
    planned = planned_ids(report)
    results = retention.apply(session, now, rules, planned, storage_dir=storage_dir)
    for key, (find, act) in MAIL_STEPS.items():
        rule = next(r for r in MAIL_RULES if r.key == key)
        results[key] = retention.apply_rule(
            session,
            now,
            rule,
            planned.get(key, []),
            lambda find=find: find(session, now, rules),
            lambda record_id, act=act: act(session, record_id),
        )
    return {
        "at": now.isoformat(),
        "settings": rules.as_dict(),
        "rules": [
            {
                "key": rule.key,
                "label": rule.label,
                "action": rule.action,
                "record_type": rule.record_type,
                "count": len(results[rule.key]["done"]),
                "ids": results[rule.key]["done"],
                "skipped": results[rule.key]["skipped"],
            }
            for rule in RULES
        ],
        "total": sum(len(r["done"]) for r in results.values()),
    }


def dry_run(session: Session, now: datetime, rules: RetentionRules) -> RetentionRun:
    """Plan and keep the report as a dry-run RetentionRun."""
    run = RetentionRun(mode="dry_run", started_at=now, report={})
    run.report = plan(session, now, rules)
    run.finished_at = now
    session.add(run)
    session.flush()
    return run


def apply_run(
    session: Session, now: datetime, rules: RetentionRules, dry: RetentionRun, *, storage_dir: Path
) -> RetentionRun:
    """Apply a dry run's report, kept as an apply RetentionRun that names the dry run."""
    report = apply(session, now, rules, dry.report, storage_dir=storage_dir)
    report["dry_run_id"] = dry.id
    run = RetentionRun(mode="apply", started_at=now, finished_at=now, report=report)
    session.add(run)
    session.flush()
    return run


def recent_runs(session: Session, *, limit: int = 20) -> list[RetentionRun]:
    return list(session.scalars(select(RetentionRun).order_by(RetentionRun.id.desc()).limit(limit)))


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report in plain lines, for the command line."""
    lines = []
    for entry in report.get("rules", []):
        ids = ", ".join(str(i) for i in entry["ids"][:20]) + (" ..." if len(entry["ids"]) > 20 else "")
        period = f" ({entry['period']})" if entry.get("period") else ""
        line = f"{entry['label']}{period}: {entry['count']}" + (f" [{ids}]" if ids else "")
        if entry.get("skipped"):
            line += f"; no longer due, left alone: {len(entry['skipped'])}"
        lines.append(line)
    if report.get("audit_log"):
        lines.append(report["audit_log"])
    return lines
