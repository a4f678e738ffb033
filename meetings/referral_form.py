"""The referral form: its pages, their questions and every check, with no database.

Each page is a list of fields. `check_page` turns what was typed (strings, as a browser sends
them) into clean values and plain-English problems, GOV.UK style. The web pages, the API and the
submission check all use this one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

YEAR_GROUPS = ("Nursery", "Reception", *(f"Year {n}" for n in range(1, 15)))
SOCIAL_CARE = (
    ("none", "None of these"),
    ("looked_after", "Looked after"),
    ("previously_looked_after", "Previously looked after"),
    ("child_in_need", "Child in need"),
    ("child_protection", "Child protection plan"),
)
ACES = (
    ("none_identified", "None identified"),
    ("domestic_abuse", "Domestic abuse"),
    ("parental_substance_misuse", "Parental substance misuse"),
    ("parental_mental_illness", "Parental mental illness"),
    ("parental_separation", "Parental separation"),
    ("parental_imprisonment", "A parent in prison"),
    ("abuse_or_neglect", "Abuse or neglect"),
    ("bereavement", "Bereavement"),
)
LAWFUL_BASES = (
    ("risk_of_significant_harm", "Risk of significant harm to the child"),
    ("public_task", "Public task (UK GDPR article 6(1)(e)) with a safeguarding condition"),
    ("vital_interests", "Vital interests (UK GDPR article 6(1)(d))"),
)
UPN = re.compile(r"^[A-HJ-NP-RT-Z][0-9]{11}[0-9A-HJ-NP-RT-Z]$")


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    kind: str  # text, textarea, date, integer, decimal, radios, checkboxes, select
    hint: str = ""
    required: bool = True
    options: tuple[tuple[str, str], ...] = ()
    max_length: int = 200
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    # Required only when another field has one of these values, e.g. ("consent_status", ("given",))
    when: tuple[str, tuple[str, ...]] | None = None
    # A noun phrase for messages: "the date of birth"
    noun: str = ""

    @property
    def called(self) -> str:
        return self.noun or f"the {self.label[0].lower()}{self.label[1:]}".rstrip("?")


@dataclass(frozen=True)
class Page:
    key: str
    title: str
    fields: tuple[Field, ...]
    caption: str = ""


@dataclass
class PageResult:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _options(*values: str) -> tuple[tuple[str, str], ...]:
    return tuple((v.lower().replace(" ", "_"), v) for v in values)


YES_NO = (("yes", "Yes"), ("no", "No"))

PAGES: tuple[Page, ...] = (
    Page(
        "child",
        "About the child",
        (
            Field("legal_first_name", "First name", "text", max_length=100, noun="the child's first name"),
            Field("legal_surname", "Last name", "text", max_length=100, noun="the child's last name"),
            Field("preferred_name", "Preferred name", "text", "If different", required=False, max_length=100),
            Field("date_of_birth", "Date of birth", "date", "For example, 27 3 2015", noun="the date of birth"),
            Field("year_group", "Year group", "select", options=tuple((y, y) for y in YEAR_GROUPS)),
            Field(
                "upn",
                "Unique pupil number (UPN)",
                "text",
                "13 characters, for example A123456789012",
                required=False,
                max_length=13,
                noun="the UPN",
            ),
        ),
    ),
    Page(
        "family",
        "Parents and carers",
        (
            Field("parent_name", "Name of a parent or carer", "text", noun="the name of a parent or carer"),
            Field(
                "parent_relationship",
                "Their relationship to the child",
                "text",
                "For example, mother",
                max_length=60,
                noun="their relationship to the child",
            ),
            Field(
                "parent_knows",
                "Does the parent or carer know about this referral?",
                "radios",
                options=YES_NO,
                noun="whether the parent or carer knows about this referral",
            ),
            Field(
                "parent_not_told_reason",
                "Why not?",
                "textarea",
                required=False,
                max_length=1000,
                when=("parent_knows", ("no",)),
                noun="why the parent or carer has not been told",
            ),
        ),
    ),
    Page(
        "reasons",
        "Reasons for referral",
        (
            Field(
                "reasons",
                "Why are you referring the child?",
                "checkboxes",
                "Select all that apply",
                noun="at least one reason",
            ),
            Field("reasons_other", "Anything else", "textarea", required=False, max_length=1000),
        ),
    ),
    Page(
        "concerns",
        "What is happening",
        (
            Field(
                "what_is_happening",
                "What is happening?",
                "textarea",
                "Behaviours, how often and how intense, triggers and patterns",
                max_length=4000,
                noun="what is happening",
            ),
            Field(
                "strengths",
                "Strengths and what works",
                "textarea",
                max_length=2000,
                noun="the child's strengths and what works",
            ),
            Field(
                "urgency",
                "How urgent is this?",
                "radios",
                "Urgent safeguarding concerns go to the children's front door now, not to clinic",
                options=(("routine", "Routine"), ("priority", "Priority")),
                noun="how urgent this is",
            ),
            Field(
                "urgency_reason",
                "Why is it a priority?",
                "textarea",
                required=False,
                max_length=1000,
                when=("urgency", ("priority",)),
                noun="why it is a priority",
            ),
        ),
    ),
    Page(
        "attendance",
        "Attendance",
        (
            Field(
                "attendance_percent",
                "Attendance this academic year (%)",
                "decimal",
                "For example, 87.5",
                minimum=Decimal(0),
                maximum=Decimal(100),
                noun="attendance",
            ),
        ),
    ),
    Page(
        "suspensions",
        "Suspensions",
        (
            Field(
                "suspensions_this_year",
                "Suspensions this academic year",
                "integer",
                "Enter 0 if none",
                minimum=Decimal(0),
                maximum=Decimal(190),
                noun="the number of suspensions this year",
            ),
            Field(
                "suspension_days_this_year",
                "Days lost to suspensions this academic year",
                "decimal",
                "Enter 0 if none",
                minimum=Decimal(0),
                maximum=Decimal(190),
                noun="the days lost to suspensions",
            ),
            Field(
                "suspensions_this_half_term",
                "Suspensions this half-term",
                "integer",
                "Enter 0 if none",
                minimum=Decimal(0),
                maximum=Decimal(60),
                noun="the number of suspensions this half-term",
            ),
            Field(
                "suspension_dates",
                "Dates of the suspensions this year",
                "textarea",
                "One a line, for example 3 10 2026",
                required=False,
                max_length=1000,
                noun="the dates of the suspensions",
            ),
        ),
    ),
    Page(
        "exclusion",
        "Permanent exclusion",
        (
            Field(
                "permanent_exclusion",
                "Permanent exclusion",
                "radios",
                options=(("none", "None"), ("at_risk", "At risk"), ("excluded", "Permanently excluded")),
                noun="whether the child is at risk of or has had a permanent exclusion",
            ),
            Field(
                "permanent_exclusion_on",
                "Date of the permanent exclusion",
                "date",
                required=False,
                when=("permanent_exclusion", ("excluded",)),
                noun="the date of the permanent exclusion",
            ),
        ),
    ),
    Page(
        "part_time",
        "Part-time timetable",
        (
            Field(
                "part_time_timetable",
                "Is the child on a part-time timetable?",
                "radios",
                options=YES_NO,
                noun="whether the child is on a part-time timetable",
            ),
            Field(
                "part_time_started_on",
                "When did the part-time timetable start?",
                "date",
                required=False,
                when=("part_time_timetable", ("yes",)),
                noun="when the part-time timetable started",
            ),
            Field(
                "part_time_hours",
                "Hours a week in school",
                "decimal",
                "For example, 12.5",
                required=False,
                minimum=Decimal(0),
                maximum=Decimal("32.5"),
                when=("part_time_timetable", ("yes",)),
                noun="the hours a week in school",
            ),
            Field(
                "part_time_la_notified",
                "Has the local authority been told about the part-time timetable?",
                "radios",
                required=False,
                options=YES_NO,
                when=("part_time_timetable", ("yes",)),
                noun="whether the local authority has been told",
            ),
        ),
    ),
    Page(
        "send",
        "Special educational needs and support so far",
        (
            Field(
                "sen_status",
                "SEN status",
                "radios",
                options=(("none", "None"), ("sen_support", "SEN support (K)"), ("ehcp", "EHC plan (E)")),
                noun="the SEN status",
            ),
            Field(
                "primary_need",
                "Primary need",
                "select",
                required=False,
                options=tuple((n, n) for n in ("SEMH", "SLCN", "ASD", "MLD", "SpLD", "Other")),
                when=("sen_status", ("sen_support", "ehcp")),
                noun="the primary need",
            ),
            Field(
                "graduated_response_stage",
                "Graduated response stage",
                "select",
                options=(
                    ("s1", "Step 1: universal"),
                    ("s2", "Step 2: staff-led"),
                    ("s3", "Step 3: with SENDCo"),
                    ("s4", "Step 4: SENDCo-led"),
                    ("s5", "Step 5: specialist"),
                    ("s6a", "Step 6: EHC needs assessment"),
                    ("s6b", "Step 6: outreach"),
                    ("exclusion", "Suspension or exclusion"),
                ),
                noun="the graduated response stage",
            ),
            Field(
                "interventions",
                "Interventions already tried",
                "textarea",
                "One a line: what, who, when and what happened. Write 'none yet' and why if none",
                max_length=4000,
                noun="the interventions already tried",
            ),
        ),
    ),
    Page(
        "agencies",
        "Social care and other agencies",
        (
            Field(
                "social_care_statuses",
                "Is the child…",
                "checkboxes",
                "Select all that apply",
                options=SOCIAL_CARE,
                noun="the child's social care status, or 'None of these'",
            ),
            Field(
                "early_help",
                "Early help assessment",
                "radios",
                options=(("none", "None"), ("open", "Open"), ("closed", "Closed")),
                noun="whether there is an early help assessment",
            ),
            Field(
                "agencies_involved", "Agencies involved now", "textarea", "One a line", required=False, max_length=2000
            ),
            Field(
                "mash_referred_on",
                "Referred to MASH, still awaiting feedback: date referred",
                "date",
                required=False,
                noun="the date of the MASH referral",
            ),
            Field(
                "camhs_referred_on",
                "Referred to CAMHS, still awaiting feedback: date referred",
                "date",
                required=False,
                noun="the date of the CAMHS referral",
            ),
        ),
    ),
    Page(
        "voices",
        "Voice of the child and family",
        (
            Field(
                "voice_of_child",
                "What does the child say?",
                "textarea",
                "In their words where you can; if you could not ask, say why",
                max_length=2000,
                noun="the voice of the child",
            ),
            Field(
                "voice_of_parent",
                "What does the parent or carer say?",
                "textarea",
                "If you could not ask, say why",
                max_length=2000,
                noun="the voice of the parent or carer",
            ),
            Field(
                "aces_considered",
                "Adverse childhood experiences considered",
                "checkboxes",
                "Select all that apply",
                options=ACES,
                noun="the adverse childhood experiences considered",
            ),
            Field("aces_notes", "Notes on adverse childhood experiences", "textarea", required=False, max_length=2000),
        ),
    ),
    Page(
        "asks",
        "What you are asking for",
        (
            Field(
                "asks_of_clinic",
                "What are you asking the clinic for?",
                "textarea",
                max_length=1000,
                noun="what you are asking the clinic for",
            ),
        ),
    ),
    Page(
        "consent",
        "Consent to share",
        (
            Field(
                "consent_status",
                "Has a parent or carer consented to sharing with the clinic's agencies?",
                "radios",
                options=(
                    ("given", "Yes"),
                    ("refused", "No, they refused"),
                    ("not_sought", "No, consent was not sought"),
                ),
                noun="whether consent was given",
            ),
            Field(
                "consent_given_by",
                "Who gave consent?",
                "text",
                "Name and relationship",
                required=False,
                when=("consent_status", ("given",)),
                noun="who gave consent",
            ),
            Field(
                "consent_given_on",
                "When was consent given?",
                "date",
                required=False,
                when=("consent_status", ("given",)),
                noun="when consent was given",
            ),
            Field(
                "lawful_basis",
                "Lawful basis for sharing without consent",
                "radios",
                required=False,
                options=LAWFUL_BASES,
                when=("consent_status", ("refused", "not_sought")),
                noun="the lawful basis for sharing without consent",
            ),
            Field(
                "lawful_basis_reason",
                "Why is sharing without consent necessary?",
                "textarea",
                required=False,
                max_length=2000,
                when=("consent_status", ("refused", "not_sought")),
                noun="why sharing without consent is necessary",
            ),
            Field(
                "lawful_basis_decided_by",
                "Who decided?",
                "text",
                "The DSL's name",
                required=False,
                when=("consent_status", ("refused", "not_sought")),
                noun="who decided",
            ),
            Field(
                "child_view_on_sharing",
                "What does the child think about sharing this information?",
                "textarea",
                "Where the child is old enough to have a view",
                required=False,
                max_length=2000,
            ),
        ),
    ),
)
PAGES_BY_KEY = {page.key: page for page in PAGES}


def page_for(key: str) -> Page | None:
    return PAGES_BY_KEY.get(key)


def _age_on(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _check_date(f: Field, answers: dict[str, Any], today: date) -> tuple[date | None, str | None]:
    parts = {p: str(answers.get(f"{f.name}-{p}", "")).strip() for p in ("day", "month", "year")}
    if not any(parts.values()):
        return None, None
    missing = [p for p, v in parts.items() if not v]
    label = f.called[0].upper() + f.called[1:]
    if missing:
        return None, f"{label} must include a {missing[0]}"
    try:
        value = date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
    except (ValueError, OverflowError):
        return None, f"{label} must be a real date"
    if value.year < 1900:
        return None, f"{label} must be a real date"
    if value > today:
        return None, f"{label} must be today or in the past"
    return value, None


def _check_field(f: Field, answers: dict[str, Any], today: date, options) -> tuple[Any, str | None]:
    if f.kind == "date":
        return _check_date(f, answers, today)
    if f.kind == "checkboxes":
        raw = answers.get(f.name) or []
        chosen = [raw] if isinstance(raw, str) else [str(v) for v in raw]
        allowed = {code for code, _ in options}
        if any(c not in allowed for c in chosen):
            return None, f"Select {f.called} from the list"  # noqa: S608 - an error message, not SQL  # nosec B608
        return chosen or None, None
    raw = str(answers.get(f.name) or "").strip()
    if not raw:
        return None, None
    if len(raw) > f.max_length:
        return None, f"{f.called[0].upper() + f.called[1:]} must be {f.max_length} characters or fewer"
    if f.kind in ("radios", "select"):
        if raw not in {code for code, _ in options}:
            return None, f"Select {f.called}"
        return raw, None
    if f.kind in ("integer", "decimal"):
        try:
            number = Decimal(raw)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or (f.kind == "integer" and number != number.to_integral()):
            kind = "a whole number" if f.kind == "integer" else "a number"
            return None, f"Enter {f.called} as {kind}"
        if (f.minimum is not None and number < f.minimum) or (f.maximum is not None and number > f.maximum):
            return None, f"Enter {f.called} between {f.minimum} and {f.maximum}"
        return (int(number) if f.kind == "integer" else number.quantize(Decimal("0.1"))), None
    return raw, None


def check_page(
    page: Page, answers: dict[str, Any], *, today: date, reasons: tuple[tuple[str, str], ...] = ()
) -> PageResult:
    """Clean values for the page's fields, and a problem for each that is wrong or missing."""
    result = PageResult()
    for f in page.fields:
        options = reasons if f.name == "reasons" else f.options
        value, error = _check_field(f, answers, today, options)
        needed = f.required or (f.when is not None and str(answers.get(f.when[0], "")) in f.when[1])
        if error:
            result.errors[f.name] = error
        elif value is None and needed:
            verb = "Select" if f.kind in ("radios", "checkboxes", "select") else "Enter"
            example = ", for example 27 3 2015" if f.kind == "date" else ""
            result.errors[f.name] = f"{verb} {f.called}{example}"
        else:
            result.values[f.name] = value
    _cross_checks(page.key, result, today)
    return result


DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})[\s/.-]+(\d{1,2})[\s/.-]+(\d{4})$")


def _suspension_dates(text: str | None, today: date) -> tuple[list[str], str | None]:
    """One date a line, as people write them ("3 10 2026", "03/10/2026"); ISO strings back."""
    dates = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        found = DAY_MONTH_YEAR.match(line.strip())
        try:
            day = date(int(found.group(3)), int(found.group(2)), int(found.group(1))) if found else None
        except (ValueError, OverflowError):
            day = None
        if day is None:
            return [], f"Enter each suspension date on its own line, for example 3 10 2026 ('{line.strip()[:30]}')"
        if day > today:
            return [], "Suspension dates must be today or in the past"
        dates.append(day.isoformat())
    return dates, None


def _cross_checks(key: str, result: PageResult, today: date) -> None:
    values, errors = result.values, result.errors
    if key == "child":
        born = values.get("date_of_birth")
        if born and not 3 <= _age_on(born, today) <= 19:
            errors["date_of_birth"] = "The child must be between 3 and 19 years old today"
        upn = values.get("upn")
        if upn and not UPN.match(upn.upper()):
            errors["upn"] = "Enter the UPN as 13 characters: a letter, 11 digits, then a digit or letter"
    if key == "suspensions":
        count, days = values.get("suspensions_this_year"), values.get("suspension_days_this_year")
        half = values.get("suspensions_this_half_term")
        if count is not None and half is not None and half > count:
            errors["suspensions_this_half_term"] = "Suspensions this half-term cannot be more than this year"
        if count == 0 and days:
            errors["suspension_days_this_year"] = "Days lost must be 0 when there have been no suspensions"
        if count and days == 0:
            errors["suspension_days_this_year"] = "Enter the days lost to suspensions (more than 0)"
        dates, problem = _suspension_dates(values.get("suspension_dates"), today)
        if problem:
            errors["suspension_dates"] = problem
        elif count is not None and len(dates) > count:
            errors["suspension_dates"] = "There are more suspension dates than suspensions this year"
        else:
            values["suspension_dates"] = dates
    if key == "agencies":
        statuses = values.get("social_care_statuses") or []
        if "none" in statuses and len(statuses) > 1:
            errors["social_care_statuses"] = "Select 'None of these' on its own, or the statuses that apply"
    if key == "voices":
        aces = values.get("aces_considered") or []
        if "none_identified" in aces and len(aces) > 1:
            errors["aces_considered"] = "Select 'None identified' on its own, or the experiences considered"
    for name in list(values):
        if name in errors:
            values.pop(name)
