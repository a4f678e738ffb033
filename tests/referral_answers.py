"""A complete, valid set of referral form answers, as a browser would post them."""

from __future__ import annotations

CHILD_FIRST, CHILD_LAST = "Juniper", "Quillfeather"
CHILD_DOB = ("14", "5", "2016")

VALID = {
    "child": {
        "legal_first_name": CHILD_FIRST,
        "legal_surname": CHILD_LAST,
        "date_of_birth-day": CHILD_DOB[0],
        "date_of_birth-month": CHILD_DOB[1],
        "date_of_birth-year": CHILD_DOB[2],
        "year_group": "Year 5",
    },
    "family": {"parent_name": "Rowan Quillfeather", "parent_relationship": "Mother", "parent_knows": "yes"},
    "reasons": {"reasons": ["not_attending", "ebsa"], "reasons_other": ""},
    "concerns": {
        "what_is_happening": "Attendance has fallen since September; anxious on arrival most mornings.",
        "strengths": "Loves art and is kind to younger pupils.",
        "urgency": "routine",
    },
    "attendance": {"attendance_percent": "82.5"},
    "suspensions": {
        "suspensions_this_year": "0",
        "suspension_days_this_year": "0",
        "suspensions_this_half_term": "0",
    },
    "exclusion": {"permanent_exclusion": "none"},
    "part_time": {"part_time_timetable": "no"},
    "send": {
        "sen_status": "sen_support",
        "primary_need": "SEMH",
        "graduated_response_stage": "s3",
        "interventions": "Morning check-in with learning mentor since September\nSoft start from October",
    },
    "agencies": {"social_care_statuses": ["none"], "early_help": "none", "agencies_involved": ""},
    "voices": {
        "voice_of_child": "I get a funny tummy before school.",
        "voice_of_parent": "Mum wants help to get mornings back on track.",
        "aces_considered": ["none_identified"],
    },
    "asks": {"asks_of_clinic": "Advice on EBSA support and whether CAMHS or early help should be involved."},
    "consent": {
        "consent_status": "given",
        "consent_given_by": "Rowan Quillfeather (mother)",
        "consent_given_on-day": "9",
        "consent_given_on-month": "11",
        "consent_given_on-year": "2026",
    },
}
