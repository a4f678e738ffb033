from datetime import UTC, datetime

from caseconf.clock import RehearsalClock, write_rehearsal_time


def test_the_rehearsal_time_is_followed_while_a_rehearsal_runs_and_the_system_time_after(tmp_path):
    path = tmp_path / "rehearsal-now"
    clock = RehearsalClock(path)
    before = datetime.now(UTC)
    assert clock.rehearsal_time() is None and clock.now() >= before

    at = datetime(2026, 12, 3, 13, 30, tzinfo=UTC)
    write_rehearsal_time(path, at)
    assert clock.now() == at and clock.rehearsal_time() == at

    write_rehearsal_time(path, None)
    assert not path.exists() and clock.now() >= before


def test_a_damaged_or_naive_time_is_ignored_rather_than_trusted(tmp_path):
    path = tmp_path / "rehearsal-now"
    clock = RehearsalClock(path)
    for text in ("not a time", "2026-12-03T13:30:00", ""):
        path.write_text(text)
        assert clock.rehearsal_time() is None
        assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 60
