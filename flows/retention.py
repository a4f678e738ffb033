"""The nightly retention run: first the dry-run report, kept; then, unless settings say report only, what it
lists is redacted or deleted (each record re-checked as still due and audited). Each half commits on its own,
so the report survives a failed apply, and a run repeated at once finds nothing left to do."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from caseconf.clock import FixedClock, SystemClock
from caseconf.db import transaction
from flows.context import run_context
from meetings.models import RetentionRun
from meetings.retention import RetentionRules
from notifications import retention


@task(cache_policy=NO_CACHE)
def dry_run(now: datetime) -> int:
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        return retention.dry_run(session, now, RetentionRules.from_settings(ctx.settings)).id


@task(cache_policy=NO_CACHE)
def apply(now: datetime, dry_run_id: int) -> int:
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        dry = session.get(RetentionRun, dry_run_id)
        rules = RetentionRules.from_settings(ctx.settings)
        return retention.apply_run(session, now, rules, dry, storage_dir=ctx.settings.documents_dir).id


@flow(name="retention")
def apply_retention(now: datetime | None = None) -> dict[str, Any]:
    """Report what the retention schedule makes due, then redact or delete it (unless report-only)."""
    moment = (FixedClock(now) if now else SystemClock()).now()
    with run_context() as ctx:
        report_only = ctx.settings.retention_report_only
    dry_id = dry_run(moment)
    applied_id = None if report_only else apply(moment, dry_id)
    with run_context() as ctx, transaction(ctx.session_factory) as session:
        dry = session.get(RetentionRun, dry_id)
        applied = session.get(RetentionRun, applied_id) if applied_id else None
        return {
            "at": moment.isoformat(),
            "dry_run": {"id": dry_id, "due": dry.report["total"]},
            "apply": None if applied is None else {"id": applied_id, "done": applied.report["total"]},
        }
