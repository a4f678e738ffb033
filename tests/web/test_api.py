"""The JSON API through the real app and database, with the demo borough and bearer tokens."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from agencies.api_tokens import create_api_token, revoke_api_token
from agencies.auth import find_person_by_email
from agencies.models import ApiToken
from caseconf.audit import AuditEvent
from caseconf.clock import FixedClock
from caseconf.db import transaction
from caseconf.security import token_hash
from meetings.demo import load_demo
from meetings.models import Child, ReferenceCounter, Referral, ReferralStatus
from notifications.models import OutboundMessage

REFERRER = "dsl@alderbrook.example.org"  # refers for 900001, 900004 and 900005, all in North
EIP_NORTH = "eip.north@kestrelford.example.org"

VALID = {
    "school_urn": "900004",
    "child_at_immediate_risk": False,
    "child": {
        "legal_first_name": "Juniper",
        "legal_surname": "Quillfeather",
        "date_of_birth": "2016-05-14",
        "year_group": "Year 5",
    },
    "family": {"parent_name": "Rowan Quillfeather", "parent_relationship": "Mother", "parent_knows": True},
    "reasons": {"reasons": ["not_attending", "ebsa"]},
    "concerns": {
        "what_is_happening": "Attendance has fallen since September; anxious on arrival most mornings.",
        "strengths": "Loves art and is kind to younger pupils.",
        "urgency": "routine",
    },
    "attendance": {"attendance_percent": 82.5},
    "suspensions": {"suspensions_this_year": 0, "suspension_days_this_year": 0, "suspensions_this_half_term": 0},
    "exclusion": {"permanent_exclusion": "none"},
    "part_time": {"part_time_timetable": False},
    "send": {
        "sen_status": "sen_support",
        "primary_need": "SEMH",
        "graduated_response_stage": "s3",
        "interventions": "Morning check-in with learning mentor since September\nSoft start from October",
    },
    "agencies": {"social_care_statuses": ["none"], "early_help": "none"},
    "voices": {
        "voice_of_child": "I get a funny tummy before school.",
        "voice_of_parent": "Mum wants help to get mornings back on track.",
        "aces_considered": ["none_identified"],
    },
    "asks": {"asks_of_clinic": "Advice on EBSA support and whether CAMHS or early help should be involved."},
    "consent": {
        "consent_status": "given",
        "consent_given_by": "Rowan Quillfeather (mother)",
        "consent_given_on": "2026-11-09",
    },
}


@pytest.fixture
def clock():
    return FixedClock(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@pytest.fixture
def tokens(session_factory, clock):
    """The demo borough, with a token for the Alderbrook referrer and one for North's EIP."""
    with transaction(session_factory) as session:
        load_demo(session, now=clock.now())
        raw = {}
        for email in (REFERRER, EIP_NORTH):
            person = find_person_by_email(session, email)
            raw[email] = create_api_token(
                session, person_id=person.id, name="test", now=clock.now(), valid_for=timedelta(days=30), actor_label=""
            ).raw_token
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def submission(**changes) -> dict:
    """VALID with changes like attendance__attendance_percent=150; None removes the field."""
    body = copy.deepcopy(VALID)
    for path, value in changes.items():
        *pages, name = path.split("__")
        target = body
        for page in pages:
            target = target[page]
        if value is None:
            del target[name]
        else:
            target[name] = value
    return body


def errors_of(response) -> dict[str | None, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def saved(session) -> tuple[int, int, int, int]:
    """Referrals, children, emails and references issued: what a refused submission must leave alone."""
    session.expire_all()
    return (
        session.scalar(select(func.count()).select_from(Referral)),
        session.scalar(select(func.count()).select_from(Child)),
        session.scalar(select(func.count()).select_from(OutboundMessage)),
        session.scalar(select(func.coalesce(func.sum(ReferenceCounter.last_number), 0))),
    )


def test_a_valid_submission_is_submitted_with_a_reference_and_emails_queued(client, session, tokens):
    response = client.post("/api/v1/referrals", json=VALID, headers=bearer(tokens[REFERRER]))
    assert response.status_code == 201, response.text
    body = response.json()
    assert re.fullmatch(r"VPHC-2026-\d{4}", body["reference"])
    assert body["reference"] == "VPHC-2026-0008"  # the demo has issued seven already this year
    assert (body["status"], body["status_label"]) == ("submitted", "Waiting for triage")
    assert body["links"]["self"].endswith(f"/api/v1/referrals/{body['reference']}")
    assert tokens[REFERRER][3:] not in response.text

    referral = session.get(Referral, body["id"])
    assert referral.status == ReferralStatus.submitted and referral.school.urn == "900004"
    assert referral.child.legal_first_name == "Juniper" and str(referral.child.date_of_birth) == "2016-05-14"
    assert str(referral.attendance_percent) == "82.5" and referral.family["parent_knows_of_referral"] is True
    assert [(c.from_status, c.to_status) for c in referral.history] == [(None, "draft"), ("draft", "submitted")]
    emails = session.scalars(select(OutboundMessage).where(OutboundMessage.referral_id == referral.id)).all()
    assert {(m.kind, m.recipient) for m in emails} == {
        ("referral_received", REFERRER),
        ("referral_received", "dsl@copperbeech.example.org"),
        ("referral_for_triage", EIP_NORTH),
    }
    assert all("Juniper" not in m.subject + m.body_text for m in emails)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "api.referral_submitted")).one()
    assert event.actor_label == REFERRER and event.record_id == str(referral.id)


def test_the_referrer_can_list_and_read_back_what_they_sent(client, tokens):
    reference = client.post("/api/v1/referrals", json=VALID, headers=bearer(tokens[REFERRER])).json()["reference"]
    listed = client.get("/api/v1/referrals", headers=bearer(tokens[REFERRER]))
    assert listed.status_code == 200
    rows = {row["reference"]: row for row in listed.json()["referrals"]}
    assert rows[reference]["school_urn"] == "900004" and rows[reference]["status"] == "submitted"
    assert {row["school_urn"] for row in rows.values()} <= {"900001", "900004", "900005"}
    detail = client.get(f"/api/v1/referrals/{reference}", headers=bearer(tokens[REFERRER]))
    assert detail.status_code == 200
    data = detail.json()
    assert data["child"]["legal_first_name"] == "Juniper" and data["education"]["attendance_percent"] == 82.5
    assert [h["to_status"] for h in data["history"]] == ["draft", "submitted"]
    assert "health" not in data and "community_safety" not in data


def test_malformed_json_is_refused_with_nothing_saved(client, session, tokens):
    before = saved(session)
    response = client.post(
        "/api/v1/referrals",
        content=b'{"school_urn": "900004", "child": {',
        headers={**bearer(tokens[REFERRER]), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert errors_of(response)["body"].startswith("The request body is not valid JSON")
    not_an_object = client.post("/api/v1/referrals", json=[VALID], headers=bearer(tokens[REFERRER]))
    assert not_an_object.status_code == 422 and errors_of(not_an_object) == {
        "body": "Send the referral as a JSON object"
    }
    assert saved(session) == before


def test_missing_answers_are_named_in_the_forms_own_words(client, session, tokens):
    before = saved(session)
    body = submission(child__legal_first_name=None, consent__consent_given_on=None, asks=None)
    response = client.post("/api/v1/referrals", json=body, headers=bearer(tokens[REFERRER]))
    assert response.status_code == 422
    assert errors_of(response) == {
        "child.legal_first_name": "Enter the child's first name",
        "asks.asks_of_clinic": "Enter what you are asking the clinic for",
        "consent.consent_given_on": "Enter when consent was given, for example 27 3 2015",
    }
    assert saved(session) == before


def test_missing_top_level_fields_are_named(client, tokens):
    response = client.post(
        "/api/v1/referrals",
        json=submission(school_urn=None, child_at_immediate_risk=None),
        headers=bearer(tokens[REFERRER]),
    )
    assert response.status_code == 422
    assert set(errors_of(response)) == {"school_urn", "child_at_immediate_risk"}


def test_wrong_types_are_named_field_by_field(client, session, tokens):
    before = saved(session)
    body = submission(
        attendance__attendance_percent="82.5",
        suspensions__suspensions_this_year=1.5,
        family__parent_knows="yes",
        child__date_of_birth="14/05/2016",
        reasons__reasons="ebsa",
        school_urn=900004,
        concerns__invented="x",
    )
    response = client.post("/api/v1/referrals", json=body, headers=bearer(tokens[REFERRER]))
    assert response.status_code == 422
    assert errors_of(response) == {
        "attendance.attendance_percent": "Enter attendance as a number",
        "suspensions.suspensions_this_year": "Enter the number of suspensions this year as a whole number",
        "family.parent_knows": "Enter whether the parent or carer knows about this referral as true or false",
        "child.date_of_birth": "Enter the date of birth as a date in the form YYYY-MM-DD, for example 2016-05-14",
        "reasons.reasons": "Enter at least one reason as a list of codes",
        "school_urn": 'Enter the URN of the child\'s school as text, for example "900001"',
        "concerns.invented": "'invented' is not a question on the 'What is happening' page",
    }
    assert saved(session) == before


def test_the_forms_checks_apply_and_nothing_is_kept(client, session, tokens):
    before = saved(session)
    body = submission(attendance__attendance_percent=100.5, child__date_of_birth="2027-01-01")
    response = client.post("/api/v1/referrals", json=body, headers=bearer(tokens[REFERRER]))
    assert response.status_code == 422
    assert errors_of(response) == {
        "attendance.attendance_percent": "Enter attendance between 0 and 100",
        "child.date_of_birth": "The date of birth must be today or in the past",
    }
    assert saved(session) == before
    rejected = session.scalars(select(AuditEvent).where(AuditEvent.action == "api.referral_rejected")).one()
    assert rejected.detail["fields"] == ["child.date_of_birth", "attendance.attendance_percent"]
    assert "100.5" not in str(rejected.detail)


def test_cross_checks_and_unreal_dates_come_from_the_form(client, tokens):
    body = submission(
        child__date_of_birth="2016-02-30",
        suspensions__suspensions_this_year=1,
        suspensions__suspensions_this_half_term=2,
    )
    response = client.post("/api/v1/referrals", json=body, headers=bearer(tokens[REFERRER]))
    assert errors_of(response) == {
        "child.date_of_birth": "The date of birth must be a real date",
        "suspensions.suspension_days_this_year": "Enter the days lost to suspensions (more than 0)",
        "suspensions.suspensions_this_half_term": "Suspensions this half-term cannot be more than this year",
    }


def test_a_child_at_immediate_risk_is_not_referred(client, session, tokens):
    before = saved(session)
    response = client.post(
        "/api/v1/referrals", json=submission(child_at_immediate_risk=True), headers=bearer(tokens[REFERRER])
    )
    assert response.status_code == 422
    assert "children's front door" in errors_of(response)["child_at_immediate_risk"]
    assert saved(session) == before
    assert session.scalar(select(func.count()).where(AuditEvent.action == "api.immediate_risk_shown")) == 1


@pytest.mark.parametrize("how", ["none", "not-bearer", "unknown", "revoked", "expired"])
def test_requests_without_a_usable_token_are_401(client, session_factory, session, clock, tokens, how):
    raw = tokens[REFERRER]
    headers = {
        "none": {},
        "not-bearer": {"Authorization": f"Basic {raw}"},
        "unknown": bearer("cc_" + "x" * 43),
        "revoked": bearer(raw),
        "expired": bearer(raw),
    }[how]
    if how == "revoked":
        with transaction(session_factory) as s:
            token_id = s.scalar(select(ApiToken.id).where(ApiToken.token_hash == token_hash(raw)))
            revoke_api_token(s, token_id=token_id, now=clock.now(), actor_label="test")
    if how == "expired":
        clock.advance(days=31)
    before = saved(session)
    for response in (
        client.post("/api/v1/referrals", json=VALID, headers=headers),
        client.get("/api/v1/referrals", headers=headers),
        client.get("/api/v1/referrals/VPHC-2026-0001", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert list(errors_of(response)) == [None]
        assert raw[3:] not in response.text
    assert saved(session) == before


def test_a_referrer_cannot_submit_for_a_school_they_do_not_hold(client, session, tokens):
    before = saved(session)
    response = client.post("/api/v1/referrals", json=submission(school_urn="900002"), headers=bearer(tokens[REFERRER]))
    assert response.status_code == 403
    assert errors_of(response) == {"school_urn": "This token cannot make referrals for the school with URN 900002"}
    unknown = client.post("/api/v1/referrals", json=submission(school_urn="999999"), headers=bearer(tokens[REFERRER]))
    assert unknown.status_code == 403
    assert saved(session) == before


def test_an_eip_token_cannot_submit(client, session, tokens):
    before = saved(session)
    response = client.post("/api/v1/referrals", json=VALID, headers=bearer(tokens[EIP_NORTH]))
    assert response.status_code == 403
    assert saved(session) == before


def test_another_schools_referral_is_not_found_like_an_unknown_one(client, session, tokens):
    millrace = session.scalars(
        select(Referral.reference).where(Referral.reference.is_not(None), Referral.school.has(urn="900002"))
    ).first()
    assert millrace is not None
    theirs = client.get(f"/api/v1/referrals/{millrace}", headers=bearer(tokens[REFERRER]))
    unknown = client.get("/api/v1/referrals/VPHC-2026-9999", headers=bearer(tokens[REFERRER]))
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == unknown.json()
    listed = client.get("/api/v1/referrals", headers=bearer(tokens[REFERRER])).json()["referrals"]
    assert millrace not in {row["reference"] for row in listed}


def test_an_eip_token_reads_its_areas_submitted_referrals_only(client, session, tokens):
    reference = client.post("/api/v1/referrals", json=VALID, headers=bearer(tokens[REFERRER])).json()["reference"]
    listed = client.get("/api/v1/referrals", headers=bearer(tokens[EIP_NORTH]))
    assert listed.status_code == 200
    urns = {row["school_urn"] for row in listed.json()["referrals"]}
    assert reference in {row["reference"] for row in listed.json()["referrals"]}
    assert urns and urns <= {"900001", "900004", "900005", "900011"}  # North's schools
    detail = client.get(f"/api/v1/referrals/{reference}", headers=bearer(tokens[EIP_NORTH]))
    assert detail.status_code == 200 and detail.json()["links"]["page"].endswith("/triage/" + str(detail.json()["id"]))
    viewed = session.scalar(select(func.count()).where(AuditEvent.action == "api.referral_viewed"))
    assert viewed == 1


def test_the_openapi_schema_describes_the_api_and_no_pages(client):
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) == {"/api/v1/referrals", "/api/v1/referrals/{reference}"}
    assert schema["components"]["securitySchemes"]["ApiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiToken"]["description"],
    }
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) == 3 and all(op["security"] == [{"ApiToken": []}] for op in operations)
    assert all("401" in op["responses"] and "422" in op["responses"] for op in operations)
    submission_schema = schema["components"]["schemas"]["ReferralSubmission"]
    assert {"school_urn", "child", "attendance", "consent"} <= set(submission_schema["required"])
    education = schema["components"]["schemas"]["ReferralAttendancePage"]["properties"]
    assert {"type": "number"} in education["attendance_percent"]["anyOf"]


def test_pages_keep_their_html_error_page(client):
    response = client.get("/sign-in?signed_out=not-a-boolean")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


def test_unknown_api_paths_answer_in_json(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"field": None, "message": "No such endpoint"}]}
