"""Planning a series' meetings: dates in term, chairs in rotation, and when each sweep falls due."""

from __future__ import annotations

from meetings.models import Meeting, MeetingSeries
from meetings.schedule import meeting_deadlines, meeting_window


def apply_times(meeting: Meeting, series: MeetingSeries) -> None:
    """Set the meeting's UTC window and sweep deadlines from its date, local start time and the series."""
    meeting.starts_at, meeting.ends_at = meeting_window(
        meeting.meeting_date, meeting.start_time, series.duration_minutes
    )
    deadlines = meeting_deadlines(
        meeting.meeting_date,
        cutoff_weekday=series.cutoff_weekday,
        cutoff_time=series.cutoff_time,
        papers_weekday=series.papers_weekday,
        papers_time=series.papers_time,
        quorum_check_time=series.quorum_check_time,
    )
    meeting.cutoff_at = deadlines.cutoff_at
    meeting.papers_due_at = deadlines.papers_due_at
    meeting.quorum_check_at = deadlines.quorum_check_at
