"""The nightly retention flow, run for real under Prefect: the dry run kept, then applied; again, nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from caseconf.db import transaction
from meetings.demo import load_demo
from meetings.models import Referral, RetentionRun

pytestmark = pytest.mark.flows

YEARS_ON = datetime(2033, 6, 1, 1, 30, tzinfo=UTC)


def test_dry_run_then_apply_and_a_second_run_changes_nothing(flow_env, session_factory, session):
    from flows.retention import apply_retention

    with transaction(session_factory) as s:
        load_demo(s, now=datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
    first = apply_retention(now=YEARS_ON)
    assert first["dry_run"]["due"] > 0 and first["apply"]["done"] == first["dry_run"]["due"]
    closed = session.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001"))
    assert closed.redacted_at == YEARS_ON

    second = apply_retention(now=YEARS_ON)
    assert second["dry_run"]["due"] == 0 and second["apply"]["done"] == 0
    runs = session.scalars(select(RetentionRun).order_by(RetentionRun.id)).all()
    assert [r.mode for r in runs] == ["dry_run", "apply", "dry_run", "apply"]
    assert runs[1].report["dry_run_id"] == runs[0].id


def test_report_only_keeps_the_report_and_changes_nothing(flow_env, session_factory, session, monkeypatch):
    from flows.retention import apply_retention

    monkeypatch.setenv("CASECONF_RETENTION_REPORT_ONLY", "true")
    with transaction(session_factory) as s:
        load_demo(s, now=datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
    result = apply_retention(now=YEARS_ON)
    assert result["dry_run"]["due"] > 0 and result["apply"] is None
    assert session.scalar(select(Referral).where(Referral.reference == "VPHC-2026-0001")).redacted_at is None
    assert [r.mode for r in session.scalars(select(RetentionRun))] == ["dry_run"]


def test_the_nightly_schedule():
    from flows.deployments import SCHEDULED, TIMEZONE

    entry = next(e for e in SCHEDULED if e.name == "retention")
    assert (entry.cron, TIMEZONE, entry.concurrency_limit) == ("30 2 * * *", "Europe/London", 1)
