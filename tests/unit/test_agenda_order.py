"""Agenda order and time slots, on plain objects with no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from meetings.agenda import arrange, item_label, listed_items, slots
from meetings.models import AgendaItem, Meeting, MeetingSeries, Referral
from meetings.schedule import meeting_window


def referral(reference: str, *, submitted: datetime, urgency: str = "routine") -> Referral:
    return Referral(reference=reference, submitted_at=submitted, urgency=urgency, status="accepted")


def item(item_id: int, ref: Referral, *, carried: bool = False, minutes: int = 15, status="listed") -> AgendaItem:
    return AgendaItem(
        id=item_id,
        kind="referral",
        referral=ref,
        referral_id=item_id,
        position=item_id,
        slot_minutes=minutes,
        status=status,
        carried_from_id=99 if carried else None,
    )


def meeting_on(day: date, items: list[AgendaItem], *, locked: bool = False) -> Meeting:
    starts_at, ends_at = meeting_window(day, time(13, 30), 120)
    meeting = Meeting(
        meeting_date=day, start_time=time(13, 30), starts_at=starts_at, ends_at=ends_at, agenda_order_locked=locked
    )
    meeting.series = MeetingSeries(capacity_items=8, item_minutes=15, duration_minutes=120)
    meeting.items = items
    return meeting


OLD = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
MIDDLE = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NEW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_urgent_first_then_carried_forward_then_oldest():
    routine_new = item(1, referral("R-NEW", submitted=NEW))
    routine_old = item(2, referral("R-OLD", submitted=OLD))
    routine_carried = item(3, referral("R-CARRIED", submitted=NEW), carried=True)
    urgent_new = item(4, referral("U-NEW", submitted=NEW, urgency="priority"))
    urgent_old = item(5, referral("U-OLD", submitted=MIDDLE, urgency="priority"))
    urgent_carried = item(6, referral("U-CARRIED", submitted=NEW, urgency="priority"), carried=True)
    meeting = meeting_on(date(2026, 12, 3), [routine_new, routine_old, routine_carried, urgent_new, urgent_old])
    meeting.items.append(urgent_carried)
    arrange(meeting)
    assert [i.referral.reference for i in listed_items(meeting)] == [
        "U-CARRIED",
        "U-OLD",
        "U-NEW",
        "R-CARRIED",
        "R-OLD",
        "R-NEW",
    ]
    assert [i.position for i in listed_items(meeting)] == [1, 2, 3, 4, 5, 6]


def test_items_not_listed_go_after_the_listed_ones():
    removed = item(1, referral("GONE", submitted=OLD, urgency="priority"), status="removed")
    kept = item(2, referral("KEPT", submitted=NEW))
    meeting = meeting_on(date(2026, 12, 3), [removed, kept])
    arrange(meeting)
    assert (kept.position, removed.position) == (1, 2)
    assert [s.item for s in slots(meeting)] == [kept]


def test_a_locked_order_is_kept_and_only_renumbered():
    first = item(5, referral("LATE", submitted=NEW))
    second = item(9, referral("URGENT", submitted=OLD, urgency="priority"))
    meeting = meeting_on(date(2026, 12, 3), [first, second], locked=True)
    arrange(meeting)
    assert [i.referral.reference for i in listed_items(meeting)] == ["LATE", "URGENT"]
    assert (first.position, second.position) == (1, 2)


@pytest.mark.parametrize(
    ("day", "first_utc", "zone"),
    [
        (date(2026, 12, 3), datetime(2026, 12, 3, 13, 30, tzinfo=UTC), "GMT"),
        (date(2026, 6, 4), datetime(2026, 6, 4, 12, 30, tzinfo=UTC), "BST"),  # 13:30 London is 12:30Z
        (date(2026, 10, 22), datetime(2026, 10, 22, 12, 30, tzinfo=UTC), "BST"),  # before the clocks go back
        (date(2026, 10, 29), datetime(2026, 10, 29, 13, 30, tzinfo=UTC), "GMT"),  # and after
    ],
)
def test_slots_run_in_15_minute_steps_from_1330_london(day, first_utc, zone):
    items = [item(n, referral(f"R{n}", submitted=OLD)) for n in range(1, 4)]
    items[1].slot_minutes = 30
    meeting = meeting_on(day, items)
    arrange(meeting)
    found = slots(meeting)
    assert [(s.starts.strftime("%H:%M"), s.ends.strftime("%H:%M")) for s in found] == [
        ("13:30", "13:45"),
        ("13:45", "14:15"),
        ("14:15", "14:30"),
    ]
    assert found[0].starts == first_utc
    assert {s.starts.tzname() for s in found} == {zone}


def test_item_labels():
    carried = item(1, referral("A", submitted=OLD), carried=True)
    review = item(2, Referral(reference="B", submitted_at=OLD, urgency="routine", status="review"))
    new = item(3, referral("C", submitted=OLD))
    assert [item_label(i) for i in (carried, review, new)] == ["carried forward", "review", "new"]


def test_an_empty_agenda_has_no_slots():
    assert slots(meeting_on(date(2026, 12, 3), [])) == []
