"""The circulation benchmark's core, small and untimed: every message arrives once, every row ends sent."""

from __future__ import annotations

from bench.circulation import QUICK, run


def test_quick_circulation_delivers_each_message_exactly_once(database_url, tmp_path):
    results = run(QUICK, database_url=database_url, work=tmp_path, use_flow=True, batch=20)

    assert results.messages == 50
    assert set(results.checks) == {"flow", "direct", "plain"}
    for phase, check in results.checks.items():
        assert check.expected == 50, phase
        assert check.arrived == check.distinct == 50, phase
        assert (check.duplicates, check.missing, check.unexpected) == (0, 0, 0), phase
    assert results.flow_runs == 1  # one run sends the burst, in passes of 20
    assert results.rows_not_sent == 0
    assert results.all_correct
