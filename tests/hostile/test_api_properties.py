"""Property-based hostile input at the JSON API: generated bodies, content types, headers, paths and query
strings. Whatever arrives, the answer is 2xx or 4xx (never 5xx); every error is the API's JSON error shape;
a 201 made exactly the one referral it reports, and anything else made nothing."""

from __future__ import annotations

import copy
import json
import string
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from agencies.api_tokens import create_api_token
from agencies.auth import find_person_by_email
from caseconf.db import transaction
from caseconf.validation import has_control_characters
from meetings.models import Child, Referral
from notifications.models import OutboundMessage
from tests.hostile.conftest import EIP_NORTH, REFERRER, still_serving
from tests.web.test_api import VALID

BOUNDED = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Text a person, or an attacker, might send: control characters, NUL, lone surrogates, right-to-left
# overrides, combining marks, markup and template syntax, and the occasional very long string.
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202egnp.exe",
    "\ufeff",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${7*7}",
    "'; DROP TABLE referral; --",
    "\r\nBcc: evil@example.org",
    "e\u0301" * 50,
    "\U0001f600" * 100,
    "A" * 100_000,
    "9" * 400,
    "NaN",
    "Infinity",
    "2016-02-30",
    "0000-00-00",
    "9999-99-99",
]
nasty_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=40), st.text(st.characters(codec="utf-8"), max_size=40))
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**31, 2**63, -(2**63) - 1, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 0.1, 100.0000001]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=4)
    ),
    max_leaves=12,
)


def deep(levels: int, leaf=1):
    value = leaf
    for _ in range(levels):
        value = {"a": [value]}
    return value


@pytest.fixture(scope="module")
def tokens(world) -> dict[str, str]:
    with transaction(world.session_factory) as session:
        made = {}
        for email in (REFERRER, EIP_NORTH):
            person = find_person_by_email(session, email)
            made[email] = create_api_token(
                session, person_id=person.id, name="hostile", now=world.clock.now(),
                valid_for=timedelta(days=30), actor_label="",
            ).raw_token
    return made


@pytest.fixture(scope="module")
def api(world):
    with world.client() as client:
        yield client


@pytest.fixture(scope="module")
def guesser(world):
    with world.client("192.0.2.7") as client:
        yield client


def counts(world) -> tuple[int, int, int]:
    with world.session_factory() as session:
        return (
            session.scalar(select(func.count()).select_from(Referral)),
            session.scalar(select(func.count()).select_from(Child)),
            session.scalar(select(func.count()).select_from(OutboundMessage)),
        )


def check_answer(world, response, before) -> None:
    """Never 5xx; errors in the API's shape; a 201 made one referral, with the reference it reports."""
    assert response.status_code < 500, response.text[:2000]
    after = counts(world)
    if response.status_code == 201:
        body = response.json()
        assert after[0] == before[0] + 1 and after[1] == before[1] + 1
        with world.session_factory() as session:
            made = session.scalar(select(Referral).where(Referral.reference == body["reference"]))
            assert made is not None and made.id == body["id"] and made.status == body["status"]
        return
    assert after == before, f"a refused request changed the database: {response.status_code} {response.text[:500]}"
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    errors = response.json()["errors"]
    assert errors and all(set(e) == {"field", "message"} and isinstance(e["message"], str) for e in errors)
    assert all(e["field"] is None or isinstance(e["field"], str) for e in errors)


def post_json_text(api, token: str, text: str, content_type: str = "application/json"):
    return api.post(
        "/api/v1/referrals",
        content=text.encode("utf-8", "surrogatepass"),
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )


def dumps(value) -> str:
    # ensure_ascii keeps lone surrogates as \\ud800 escapes, which JSON parsers accept.
    return json.dumps(value, ensure_ascii=True, allow_nan=False)


# ---- whole bodies ---------------------------------------------------------------------------------------


@BOUNDED
@given(body=json_values)
def test_any_json_body_is_answered_cleanly(world, api, tokens, body):
    before = counts(world)
    response = post_json_text(api, tokens[REFERRER], dumps(body))
    check_answer(world, response, before)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))


VALID_PATHS = list(_paths(VALID))


@BOUNDED
@given(
    path=st.sampled_from(VALID_PATHS),
    value=st.one_of(json_values, st.just(deep(40)), st.sampled_from(["__drop__", "__extra__"])),
    second=st.sampled_from(VALID_PATHS),
)
def test_a_valid_submission_with_one_hostile_answer_is_answered_cleanly(world, api, tokens, path, value, second):
    body = copy.deepcopy(VALID)
    body["school_urn"] = "900001"
    target = body
    for key in path[:-1]:
        target = target[key]
    if value == "__drop__":
        del target[path[-1]]
    elif value == "__extra__":
        target["not_a_question\x00"] = "<script>alert(1)</script>"
    else:
        target[path[-1]] = value
    before = counts(world)
    response = post_json_text(api, tokens[REFERRER], dumps(body))
    check_answer(world, response, before)


@BOUNDED
@given(text=st.sampled_from(NASTY), field=st.sampled_from(VALID_PATHS))
def test_hostile_text_in_a_text_answer_is_saved_exactly_or_refused(world, api, tokens, text, field):
    """Text answers take anything printable; what is saved reads back exactly as sent."""
    body = copy.deepcopy(VALID)
    target = body
    for key in field[:-1]:
        target = target[key]
    if not isinstance(target.get(field[-1]), str) or field[-1] in ("school_urn",) or "_on" in field[-1]:
        return
    target[field[-1]] = text
    before = counts(world)
    response = post_json_text(api, tokens[REFERRER], dumps(body))
    check_answer(world, response, before)
    if response.status_code == 201:
        read = api.get(f"/api/v1/referrals/{response.json()['reference']}", headers={
            "Authorization": f"Bearer {tokens[REFERRER]}"})
        assert read.status_code == 200
        assert "<script>" not in read.text or read.headers["content-type"].startswith("application/json")


def test_deeply_nested_and_huge_bodies_are_refused(world, api, tokens):
    for text in (
        "[" * 100_000 + "]" * 100_000,
        '{"a": [' * 5000 + "1" + "]}" * 5000,
        '{"school_urn": "' + "9" * 3_000_000 + '"}',
        '{"a": 1e99999}',
        '{"school_urn": "900001", "school_urn": "900004"}',
        '{"child": {"date_of_birth": "\\ud800-01-01"}}',
        "\ufeff" + dumps(VALID),
        dumps(VALID)[:-1],
        "null",
        "",
        '"just a string"',
        "1",
    ):
        before = counts(world)
        check_answer(world, post_json_text(api, tokens[REFERRER], text), before)
    still_serving(world)


@BOUNDED
@given(
    content_type=st.one_of(
        st.sampled_from([
            "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
            "multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/json; charset=nope",
            "application/xml", "application/json\r\nX-Injected: 1".replace("\r\n", " "), "*/*", "application/",
        ]),
        st.text(string.printable.strip(), max_size=30),
    ),
    payload=st.one_of(
        st.binary(max_size=200),
        st.just(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>"),
        st.just(json.dumps(VALID).encode("utf-16")),
        st.just(b"school_urn=900001&child_at_immediate_risk=false"),
        st.just(b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--x--\r\n"),
    ),
)
def test_any_content_type_and_bytes_are_answered_cleanly(world, api, tokens, content_type, payload):
    before = counts(world)
    response = api.post(
        "/api/v1/referrals",
        content=payload,
        headers={"Authorization": f"Bearer {tokens[REFERRER]}", "Content-Type": content_type},
    )
    check_answer(world, response, before)


# ---- who is calling, paths and query strings -----------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)


@BOUNDED
@given(
    authorization=st.one_of(
        header_text,
        st.builds(lambda s: "Bearer " + s, header_text),
        st.sampled_from(["Bearer", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer cc_", "bearer  cc_x", "Bearer " + "A" * 8000]),
    ),
    method=st.sampled_from(["GET", "POST"]),
)
def test_any_authorization_header_is_401_unless_it_is_a_real_token(world, guesser, authorization, method):
    """From an address of its own: after many bad tokens the answer becomes 429, which is clean too."""
    api = guesser
    before = counts(world)
    headers = {"Authorization": authorization.encode("latin-1")}
    if method == "GET":
        response = api.get("/api/v1/referrals", headers=headers)
    else:
        response = api.post("/api/v1/referrals", content=dumps(VALID), headers={**headers, "Content-Type": "application/json"})
    check_answer(world, response, before)
    assert response.status_code in (401, 429)


@BOUNDED
@given(
    reference=st.one_of(
        st.text(max_size=60),
        st.sampled_from(["VPHC-2026-0001", "../../etc/passwd", "..%2f..%2fapi", "%00", "VPHC-2026-0001%00",
                         "VPHC-2026-" + "9" * 500, "' OR 1=1 --", "%ZZ", "%", "\u202e1000-6202-CHPV"]),
    ),
    query=st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=4),
    token_of=st.sampled_from([REFERRER, EIP_NORTH]),
)
def test_any_reference_or_query_string_reads_nothing_it_should_not(world, api, tokens, reference, query, token_of):
    from urllib.parse import quote

    headers = {"Authorization": f"Bearer {tokens[token_of]}"}
    before = counts(world)
    one = api.get(f"/api/v1/referrals/{quote(reference.encode('utf-8', 'surrogatepass'), safe='%/')}",
                  params=query, headers=headers)
    listed = api.get("/api/v1/referrals", params=query, headers=headers)
    for response in (one, listed):
        assert response.status_code < 500, response.text[:1000]
        if response.is_redirect:  # a trailing slash: sent to the same API path without it
            assert response.headers["location"].startswith("http://127.0.0.1:8000/api/v1/referrals")
            continue
        assert response.headers["content-type"].startswith("application/json")
    assert counts(world) == before
    # An address holding a control character (a NUL, a line break) is refused before any handler.
    controls = any(has_control_characters(k + v) for k, v in query.items())
    assert listed.status_code == (400 if controls else 200)
    if one.status_code == 200:
        # Only what the list shows this token may be read one by one.
        assert one.json()["reference"] in {r["reference"] for r in listed.json()["referrals"]}
    elif not one.is_redirect:
        assert one.status_code in (400, 404, 405, 422) and one.json()["errors"]


def test_the_schema_describes_the_error_shape_and_the_app_still_serves(world, api, tokens):
    schema = api.get("/api/openapi.json")
    assert schema.status_code == 200
    components = schema.json()["components"]["schemas"]
    assert set(components["ApiError"]["properties"]) == {"field", "message"}
    responses = schema.json()["paths"]["/api/v1/referrals"]["post"]["responses"]
    assert {"201", "401", "403", "422"} <= set(responses)
    # After everything above: the real submission still works, and the pages still answer.
    before = counts(world)
    response = api.post("/api/v1/referrals", json=VALID, headers={"Authorization": f"Bearer {tokens[REFERRER]}"})
    assert response.status_code == 201, response.text
    check_answer(world, response, before)
    still_serving(world, world.signed_in(REFERRER), "/referrals")


def test_a_lone_surrogate_in_any_text_answer_is_refused_by_name(world, api, tokens):
    """JSON can carry \\ud800 as an escape; it is not text, cannot be stored, and is refused field by field."""
    body = copy.deepcopy(VALID)
    body["child"]["legal_first_name"] = "Jun\ud800iper"
    body["reasons"]["reasons"] = ["ebsa", "\udfff"]
    before = counts(world)
    response = post_json_text(api, tokens[REFERRER], dumps(body))
    check_answer(world, response, before)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"child.legal_first_name", "reasons.reasons"}
    extra = copy.deepcopy(VALID)
    extra["child"]["\ud800"] = "x"
    response = post_json_text(api, tokens[REFERRER], dumps(extra))
    check_answer(world, response, before)
    assert response.status_code == 422 and response.json()["errors"][0]["field"].startswith("child")
