"""The eight invented pupils of the demo, and what has happened to each referral so far.

Data only; `meetings.demo` loads it. Every name here is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from caseconf.clock import LONDON
from meetings.models import Outcome, ReferralStatus

CHAIRS = ("eip.north@kestrelford.example.org", "eip.east@kestrelford.example.org", "eip.west@kestrelford.example.org")


def london_time(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON).astimezone(UTC)


@dataclass(frozen=True)
class Step:
    status: ReferralStatus
    at: datetime
    by: str  # email
    note: str | None = None


@dataclass(frozen=True)
class PlannedAction:
    agency: str
    description: str
    due_on: date
    done_at: datetime | None = None


@dataclass(frozen=True)
class Persona:
    child: dict[str, Any]
    school: str  # URN
    steps: tuple[Step, ...]
    referral: dict[str, Any]
    listed_on: date | None = None
    agencies_needed: tuple[str, ...] = ()
    item_notes: str = ""
    decision: dict[str, Any] | None = None
    actions: tuple[PlannedAction, ...] = field(default_factory=tuple)


S = ReferralStatus
EIP_N, EIP_E, EIP_W = CHAIRS
HELD_ON = (date(2026, 9, 24), date(2026, 11, 12))

# In order of submission, so references run in date order. Every name here is invented.
PERSONAS: tuple[Persona, ...] = (
    Persona(
        school="900002",
        child=dict(
            legal_first_name="Ottilie",
            legal_surname="Bramblewick",
            preferred_name="Tilly",
            date_of_birth=date(2015, 2, 11),
            gender="Female",
            ethnicity="WBRI",
            first_language="English",
            home_postcode="KF2 4LT",
            year_group="Year 6",
        ),
        steps=(
            Step(S.draft, london_time(2026, 9, 7, 14), "senco@millrace.example.org"),
            Step(S.submitted, london_time(2026, 9, 8, 9, 15), "senco@millrace.example.org"),
            Step(S.accepted, london_time(2026, 9, 10, 11), EIP_E, "Listed for 24 September."),
            Step(S.discussed, london_time(2026, 9, 24, 14, 10), EIP_E),
            Step(S.actions_open, london_time(2026, 9, 28, 10, 15), EIP_E, "Minutes approved; two actions."),
            Step(
                S.closed,
                london_time(2026, 11, 5, 10),
                EIP_E,
                "Both actions done: EHC needs assessment agreed and a transition plan is in place.",
            ),
        ),
        listed_on=date(2026, 9, 24),
        agencies_needed=("EPS", "EARLY_HELP", "HEALTH"),
        item_notes="SENCo described progress on the reduced timetable. EPS and early help to act before the "
        "Year 7 applications close; school nursing has nothing further to add.",
        decision=dict(
            outcome=Outcome.support_agreed,
            rationale="Needs persist despite two terms of targeted speech and language support; the clinic agreed "
            "the evidence supports an EHC needs assessment and that the family needs help to plan the move to Year 7.",
        ),
        actions=(
            PlannedAction(
                "EPS",
                "Give educational psychology advice for the EHC needs assessment request.",
                date(2026, 10, 16),
                london_time(2026, 10, 14, 16),
            ),
            PlannedAction(
                "EARLY_HELP",
                "Offer the family an Early Help Assessment focused on the move to Year 7.",
                date(2026, 10, 9),
                london_time(2026, 10, 8, 11),
            ),
        ),
        referral=dict(
            reasons=["part_time_timetable_review", "year_6_to_7_transition", "slcn"],
            what_is_happening="Tilly has been on a reduced timetable (mornings only) since the start of term after "
            "repeated distress at lunchtimes. She struggles to follow spoken instructions and withdraws when group "
            "work gets loud. She is anxious about the move to secondary school next September.",
            strengths="Kind to younger pupils; loves drawing and the school garden; reads well when she can work "
            "one-to-one.",
            voice_of_child='"I like mornings. The hall at lunch is too loud and everyone talks at once."',
            voice_of_parent="Mum wants Tilly back full time but not at the cost of the panic she had last year, and "
            "wants to know what help will follow her to secondary school.",
            aces_considered=["parental_separation"],
            aces_notes="Parents separated in 2025; contact with dad is regular and positive.",
            asks_of_clinic="Advice on an EHC needs assessment and on a plan to extend the timetable safely.",
            family={
                "parents": [{"name": "Dana Bramblewick", "relationship": "mother"}],
                "parent_knows_of_referral": True,
                "young_carer": False,
                "circumstances": [],
            },
            attendance_percent=Decimal("88.4"),
            suspensions_this_year=0,
            suspension_days_this_year=Decimal("0"),
            suspensions_this_half_term=0,
            part_time_timetable={
                "in_place": True,
                "started_on": "2026-09-07",
                "hours_per_week": 15,
                "la_notified": True,
            },
            sen_status="sen_support",
            primary_need="SLCN",
            graduated_response_stage="s6a",
            interventions=[
                {
                    "what": "Small-group language sessions with the school's speech and language assistant",
                    "who": "School",
                    "from": "2026-01-05",
                    "to": "2026-07-17",
                    "outcome": "Some gains in vocabulary",
                },
                {
                    "what": "Quiet lunchtime club",
                    "who": "School",
                    "from": "2026-04-13",
                    "to": None,
                    "outcome": "Fewer incidents at lunch",
                },
            ],
            social_care_statuses=["none"],
            early_help={"status": "none"},
            agencies_involved=[{"agency": "Speech and language therapy", "since": "2025-11-03"}],
            consent_status="given",
            consent_given_by="Dana Bramblewick (mother)",
            consent_given_on=date(2026, 9, 4),
            consent_method="Signed consent form at a meeting with the SENCo",
            child_view_on_sharing="Tilly is happy for the people who help her to talk together.",
        ),
    ),
    Persona(
        school="900005",
        child=dict(
            legal_first_name="Milo",
            legal_surname="Puddingstone",
            date_of_birth=date(2017, 1, 19),
            gender="Male",
            ethnicity="MWBC",
            first_language="English",
            home_postcode="KF1 7DR",
            year_group="Year 4",
        ),
        steps=(
            Step(S.draft, london_time(2026, 10, 5, 15, 30), "dsl@alderbrook.example.org"),
            Step(S.submitted, london_time(2026, 10, 6, 8, 50), "dsl@alderbrook.example.org"),
            Step(
                S.declined,
                london_time(2026, 10, 8, 11),
                EIP_N,
                "Not for clinic yet: the needs described can be met by one agency, and the Step 2 review (pupil "
                "voice, informal parent meeting) is not recorded. Please complete it and use the bereavement "
                "support pathway; refer again if concerns grow.",
            ),
        ),
        referral=dict(
            reasons=["bereavement", "not_engaging"],
            what_is_happening="Since his grandad died in the summer Milo has been quiet and tearful in class and has "
            "stopped joining in at playtime. Work completion has dropped.",
            strengths="Good friendships; enjoys football and maths.",
            voice_of_child='"I miss Grandad. I don\'t want to talk about it at school."',
            voice_of_parent="Dad says Milo is sleeping badly and asks whether school can offer someone to talk to.",
            aces_considered=["none_identified"],
            asks_of_clinic="Whether any agency can offer bereavement support.",
            family={
                "parents": [{"name": "Lewis Puddingstone", "relationship": "father"}],
                "parent_knows_of_referral": True,
                "circumstances": ["bereavement"],
            },
            attendance_percent=Decimal("95.2"),
            suspensions_this_year=0,
            suspension_days_this_year=Decimal("0"),
            suspensions_this_half_term=0,
            part_time_timetable={"in_place": False},
            sen_status="none",
            graduated_response_stage="s2",
            interventions=[
                {
                    "what": "Check-ins with class teacher",
                    "who": "School",
                    "from": "2026-09-07",
                    "to": None,
                    "outcome": "Ongoing",
                }
            ],
            social_care_statuses=["none"],
            early_help={"status": "none"},
            consent_status="given",
            consent_given_by="Lewis Puddingstone (father)",
            consent_given_on=date(2026, 10, 5),
            consent_method="Telephone call with the DSL, recorded on the school's safeguarding log",
        ),
    ),
    Persona(
        school="900001",
        child=dict(
            legal_first_name="Wren",
            legal_surname="Applebarrow",
            date_of_birth=date(2016, 3, 30),
            gender="Female",
            ethnicity="WOTH",
            first_language="Polish",
            home_postcode="KF1 2NB",
            year_group="Year 5",
        ),
        steps=(
            Step(S.draft, london_time(2026, 10, 12, 16), "dsl@alderbrook.example.org"),
            Step(S.submitted, london_time(2026, 10, 13, 10), "dsl@alderbrook.example.org"),
            Step(
                S.signposted,
                london_time(2026, 10, 15, 9, 30),
                EIP_N,
                "Signposted to the educational psychology consultation line and the autism outreach offer from "
                "Oakhaven School; no multi-agency need identified.",
            ),
        ),
        referral=dict(
            reasons=["autism_or_sensory", "slcn"],
            what_is_happening="Wren covers her ears and leaves the classroom several times a day; meltdowns at "
            "transitions between lessons have increased this term. She is on the waiting list for an autism "
            "assessment.",
            strengths="Excellent memory for facts; calm and focused with visual timetables.",
            voice_of_child="Through a drawing: the classroom is 'buzzy' and the library corner is 'the good place'.",
            voice_of_parent="Mum would like advice on what school can do while they wait for the assessment.",
            aces_considered=["none_identified"],
            asks_of_clinic="Strategies and any outreach support while the assessment is awaited.",
            family={
                "parents": [{"name": "Marta Applebarrow", "relationship": "mother"}],
                "parent_knows_of_referral": True,
                "circumstances": [],
            },
            attendance_percent=Decimal("93.0"),
            suspensions_this_year=0,
            suspension_days_this_year=Decimal("0"),
            suspensions_this_half_term=0,
            part_time_timetable={"in_place": False},
            sen_status="sen_support",
            primary_need="ASD",
            graduated_response_stage="s3",
            interventions=[
                {
                    "what": "Visual timetable and ear defenders",
                    "who": "School",
                    "from": "2026-09-14",
                    "to": None,
                    "outcome": "Helps in the mornings",
                }
            ],
            social_care_statuses=["none"],
            early_help={"status": "none"},
            consent_status="given",
            consent_given_by="Marta Applebarrow (mother)",
            consent_given_on=date(2026, 10, 12),
            consent_method="Signed consent form",
        ),
    ),
    Persona(
        school="900012",
        child=dict(
            legal_first_name="Rafferty",
            legal_surname="Quillfeather",
            preferred_name="Raff",
            date_of_birth=date(2012, 5, 3),
            gender="Male",
            ethnicity="BCRB",
            first_language="English",
            home_postcode="KF4 9WE",
            year_group="Year 9",
        ),
        steps=(
            Step(S.draft, london_time(2026, 10, 19, 9), "head@kestrelford-sss.example.org"),
            Step(S.submitted, london_time(2026, 10, 19, 9, 40), "head@kestrelford-sss.example.org"),
            Step(S.accepted, london_time(2026, 10, 21, 14), EIP_W, "Priority: listed for 12 November."),
            Step(S.discussed, london_time(2026, 11, 12, 13, 45), EIP_W),
            Step(S.actions_open, london_time(2026, 11, 16, 10, 15), EIP_W, "Minutes approved; three actions."),
        ),
        listed_on=date(2026, 11, 12),
        agencies_needed=("YARM", "POLICE", "EARLY_HELP", "SAFEGUARDING"),
        item_notes="YARM and police shared concerns about older young people collecting Raff after school. "
        "The family has not engaged with previous offers; early help will try a home visit with the school.",
        decision=dict(
            outcome=Outcome.support_agreed,
            rationale="Indicators of criminal exploitation are present but below the threshold for a strategy "
            "discussion; a coordinated contextual safeguarding plan led by YARM is proportionate. "
            "Review in four weeks.",
            review_on=date(2026, 12, 10),
        ),
        actions=(
            PlannedAction(
                "POLICE",
                "Share relevant information about places of concern with the DSL under the "
                "information-sharing agreement.",
                date(2026, 11, 20),
            ),
            PlannedAction(
                "YARM", "Complete an exploitation screening and share the plan with the school.", date(2026, 11, 27)
            ),
            PlannedAction(
                "EARLY_HELP", "Offer the family a family support worker, with a joint home visit.", date(2026, 12, 4)
            ),
        ),
        referral=dict(
            reasons=["gang_or_peer_on_peer_abuse", "serious_youth_violence_or_exploitation", "coercive_behaviour"],
            what_is_happening="Raff joined us after a permanent exclusion in September. He has new expensive "
            "clothes and two phones, is collected by older teenagers, and missed three afternoons last week. "
            "Staff overheard him pressuring younger pupils to carry items for him.",
            strengths="Warm with staff he trusts; talented at music production; attends every morning.",
            voice_of_child="\"I'm fine. They're my mates. I just want to do my music.\"",
            voice_of_parent="Not obtained: mum did not answer three calls and a letter; see lawful basis.",
            aces_considered=["parental_substance_misuse", "household_member_in_prison"],
            aces_notes="Older brother in custody; historic concerns about mum's alcohol use.",
            asks_of_clinic="A joined-up safety plan and clarity on which agency leads.",
            urgency="priority",
            urgency_reason="Escalating signs of exploitation over two weeks.",
            family={
                "parents": [{"name": "Carla Quillfeather", "relationship": "mother"}],
                "parent_knows_of_referral": False,
                "parent_not_told_because": "Could not be reached; contact attempts recorded.",
                "circumstances": ["worklessness"],
            },
            attendance_percent=Decimal("71.5"),
            suspensions_this_year=3,
            suspension_days_this_year=Decimal("7.5"),
            suspensions_this_half_term=0,
            suspension_dates=["2026-09-08", "2026-09-11", "2026-09-15"],
            permanent_exclusion="excluded",
            permanent_exclusion_on=date(2026, 9, 18),
            part_time_timetable={"in_place": False},
            sen_status="sen_support",
            primary_need="SEMH",
            graduated_response_stage="exclusion",
            interventions=[
                {
                    "what": "Key adult mentoring, daily check-in",
                    "who": "Short Stay School",
                    "from": "2026-09-28",
                    "to": None,
                    "outcome": "Good relationship, attendance still falling",
                }
            ],
            social_care_statuses=["cin"],
            early_help={"status": "closed", "closed_on": "2026-03-20"},
            agencies_involved=[{"agency": "SOCIAL_CARE", "worker": "Allocated social worker", "since": "2026-10-01"}],
            awaiting_feedback=[{"agency": "MASH", "referred_on": "2026-10-14", "feedback_received": False}],
            community_safety={
                "concerns": ["exploitation", "gangs"],
                "notes": "Seen near the bus station late in the evening by staff.",
            },
            consent_status="not_sought",
            lawful_basis="UK GDPR Article 6(1)(e) public task",
            lawful_basis_reason="The parent could not be reached, and waiting would leave Raff at continuing risk of "
            "exploitation; sharing with the clinic is necessary and proportionate to plan his support.",
            lawful_basis_decided_by="Lou Carraway, Head of Centre and DSL",
            child_view_on_sharing="Raff said he did not mind 'as long as it's not the police on my case'.",
        ),
    ),
    Persona(
        school="900008",
        child=dict(
            legal_first_name="Kofi",
            legal_surname="Thistlethorpe",
            date_of_birth=date(2010, 12, 7),
            gender="Male",
            ethnicity="BAFR",
            first_language="English",
            home_postcode="KF5 1HP",
            year_group="Year 10",
        ),
        steps=(
            Step(S.draft, london_time(2026, 11, 9, 15), "dsl@kestrelford-academy.example.org"),
            Step(S.submitted, london_time(2026, 11, 10, 8, 30), "dsl@kestrelford-academy.example.org"),
            Step(S.accepted, london_time(2026, 11, 11, 16), EIP_W, "Listed for 3 December."),
        ),
        listed_on=date(2026, 12, 3),
        agencies_needed=("CAMHS", "POLICE", "YARM"),
        referral=dict(
            reasons=["suspensions_or_pex_risk", "weapon_in_school", "awaiting_camhs_feedback"],
            what_is_happening="Two suspensions this half-term, the second after a craft knife was found in his bag; "
            "he said it was for protection on the walk home. He has become withdrawn and angry since the summer.",
            strengths="Respected by peers; good at science; responds well to his head of year.",
            voice_of_child='"Something happened in the summer. I don\'t feel safe on the way home."',
            voice_of_parent="Dad is worried about the walk home and wants to know why CAMHS have not been in touch.",
            aces_considered=["domestic_abuse"],
            aces_notes="Historic domestic abuse; the parents separated in 2023.",
            asks_of_clinic="Help to avoid a permanent exclusion; an update on the CAMHS referral; a safe route plan.",
            family={
                "parents": [{"name": "Samuel Thistlethorpe", "relationship": "father"}],
                "parent_knows_of_referral": True,
                "circumstances": [],
            },
            attendance_percent=Decimal("86.9"),
            suspensions_this_year=2,
            suspension_days_this_year=Decimal("4"),
            suspensions_this_half_term=2,
            suspension_dates=["2026-11-03", "2026-11-06"],
            permanent_exclusion="at_risk",
            part_time_timetable={"in_place": False},
            sen_status="sen_support",
            primary_need="SEMH",
            graduated_response_stage="s5",
            interventions=[
                {
                    "what": "Pre-exclusion assessment meeting with parent and pupil",
                    "who": "School",
                    "from": "2026-11-09",
                    "to": "2026-11-09",
                    "outcome": "Support plan agreed",
                },
                {
                    "what": "Weekly mentoring with head of year",
                    "who": "School",
                    "from": "2026-09-21",
                    "to": None,
                    "outcome": "Engages when he attends",
                },
            ],
            social_care_statuses=["none"],
            early_help={"status": "none"},
            awaiting_feedback=[{"agency": "CAMHS", "referred_on": "2026-09-30", "feedback_received": False}],
            health={"camhs_history": "awaiting", "screening": [{"tool": "SDQ", "score": "total difficulties 21"}]},
            community_safety={
                "concerns": ["weapons", "serious_youth_violence"],
                "notes": "Reports feeling unsafe on the route home past the retail park.",
            },
            consent_status="given",
            consent_given_by="Samuel Thistlethorpe (father)",
            consent_given_on=date(2026, 11, 9),
            consent_method="Signed at the pre-exclusion meeting",
            child_view_on_sharing="Kofi agreed, and asked that his friends are not named.",
        ),
    ),
    Persona(
        school="900009",
        child=dict(
            legal_first_name="Zara",
            legal_surname="Inkwhistle",
            date_of_birth=date(2011, 11, 22),
            gender="Female",
            ethnicity="ABAN",
            first_language="Bengali",
            home_postcode="KF3 6RS",
            year_group="Year 9",
        ),
        steps=(
            Step(S.draft, london_time(2026, 11, 13, 12), "dsl@ferncastle.example.org"),
            Step(S.submitted, london_time(2026, 11, 16, 9), "dsl@ferncastle.example.org"),
            Step(
                S.information_requested,
                london_time(2026, 11, 17, 14),
                EIP_W,
                "Please add the date of the CAMHS referral and any reply, and attach the latest plan review so the "
                "clinic can see what has been tried.",
            ),
        ),
        referral=dict(
            reasons=["ebsa", "not_attending", "awaiting_camhs_feedback"],
            what_is_happening="Zara's attendance has fallen steadily since Year 8. She reports stomach aches most "
            "mornings and has not attended a full week since September.",
            strengths="Very able in English; writes stories; close to her younger sister.",
            voice_of_child='"I want to come, but when I get to the gate my chest goes tight."',
            voice_of_parent="Mum is exhausted by the morning battles and asks for help getting Zara through the door.",
            aces_considered=["none_identified"],
            asks_of_clinic="A joint plan with CAMHS and early help to support a phased return.",
            family={
                "parents": [{"name": "Ruksana Inkwhistle", "relationship": "mother"}],
                "parent_knows_of_referral": True,
                "young_carer": True,
                "circumstances": [],
            },
            attendance_percent=Decimal("62.0"),
            suspensions_this_year=0,
            suspension_days_this_year=Decimal("0"),
            suspensions_this_half_term=0,
            part_time_timetable={"in_place": False},
            sen_status="sen_support",
            primary_need="SEMH",
            graduated_response_stage="s4",
            interventions=[
                {
                    "what": "Soft-start mornings in the library",
                    "who": "School",
                    "from": "2026-09-21",
                    "to": None,
                    "outcome": "Attends on about half of days",
                }
            ],
            social_care_statuses=["none"],
            early_help={"status": "open", "lead_practitioner": "Early Help worker"},
            awaiting_feedback=[{"agency": "CAMHS", "referred_on": None, "feedback_received": False}],
            consent_status="given",
            consent_given_by="Ruksana Inkwhistle (mother)",
            consent_given_on=date(2026, 11, 12),
            consent_method="Consent form, explained with an interpreter",
        ),
    ),
    Persona(
        school="900007",
        child=dict(
            legal_first_name="Teodor",
            legal_surname="Mallowby",
            preferred_name="Teo",
            date_of_birth=date(2014, 10, 14),
            gender="Male",
            ethnicity="WOTH",
            first_language="Romanian",
            home_postcode=None,
            year_group="Year 6",
        ),
        steps=(
            Step(S.draft, london_time(2026, 11, 18, 13), "senco@larkfield.example.org"),
            Step(S.submitted, london_time(2026, 11, 19, 8, 45), "senco@larkfield.example.org"),
        ),
        referral=dict(
            reasons=["no_recourse_or_housing", "not_attending"],
            what_is_happening="The family were moved to emergency accommodation across the borough in October. "
            "Teo now takes two buses and arrives late or not at all; he is often hungry on arrival.",
            strengths="Cheerful, helpful, quick to learn English; loves football.",
            voice_of_child='"The bus takes ages. I like school, I just can\'t get here."',
            voice_of_parent="Dad asks for help with transport and with the family's housing situation.",
            aces_considered=["none_identified"],
            asks_of_clinic="Help with transport and housing advice, and a plan to stabilise attendance.",
            family={
                "parents": [{"name": "Andrei Mallowby", "relationship": "father"}],
                "parent_knows_of_referral": True,
                "circumstances": ["housing", "no_recourse_to_public_funds"],
            },
            attendance_percent=Decimal("79.3"),
            suspensions_this_year=0,
            suspension_days_this_year=Decimal("0"),
            suspensions_this_half_term=0,
            part_time_timetable={"in_place": False},
            sen_status="none",
            graduated_response_stage="s3",
            interventions=[
                {
                    "what": "Breakfast club place and bus fares from the hardship fund",
                    "who": "School",
                    "from": "2026-10-12",
                    "to": None,
                    "outcome": "Helped for two weeks; money ran out",
                }
            ],
            social_care_statuses=["none"],
            early_help={"status": "none"},
            consent_status="given",
            consent_given_by="Andrei Mallowby (father)",
            consent_given_on=date(2026, 11, 18),
            consent_method="Consent form, explained with an interpreter",
        ),
    ),
    Persona(
        school="900004",
        child=dict(
            legal_first_name="Poppy",
            legal_surname="Nettlefold",
            date_of_birth=date(2019, 6, 2),
            gender="Female",
            ethnicity="WBRI",
            first_language="English",
            home_postcode="KF1 5AJ",
            year_group="Year 2",
        ),
        steps=(Step(S.draft, london_time(2026, 11, 20, 15, 10), "dsl@alderbrook.example.org"),),
        referral=dict(
            reasons=["slcn"],
            what_is_happening="Poppy speaks in single words at school and becomes very upset when she is not "
            "understood.",
            sen_status="sen_support",
            primary_need="SLCN",
            graduated_response_stage="s2",
        ),
    ),
)


@dataclass(frozen=True)
class Concern:
    """A pupil of concern the school has put on its Team Around the School list (label only, no name)."""

    label: str
    concern: str
    ask: str
    added_at: datetime
    parent_agreed_on: date | None


# Team Around the School for Alderbrook Primary: one meeting each half-term (Wednesdays after school), plus
# one extra before Christmas that the school asked for because two pupils are giving cause for concern.
TAS_SCHOOL = "900001"
TAS_NAME = "Alderbrook Primary Team Around the School"
TAS_AGENCIES = ("EARLY_HELP", "HEALTH", "SAFEGUARDING")
TAS_CHAIR = EIP_N
TAS_EXTRA_MEETING = date(2026, 12, 9)
TAS_CONCERNS: tuple[Concern, ...] = (
    Concern(
        label="RM Year 5",
        concern="Lateness has doubled since October and RM has arrived hungry several times; mum has mentioned "
        "a change of address but no new address has been given.",
        ask="Is the family known to early help, and would a family support worker be the right first step?",
        added_at=london_time(2026, 11, 16, 15, 40),
        parent_agreed_on=date(2026, 11, 13),
    ),
    Concern(
        label="Anonymised: Year 3 pupil",
        concern="A Year 3 pupil has been tearful most mornings and has told staff that home is 'shouty'. "
        "The family have not yet agreed to the pupil being named, so the school asks for advice only.",
        ask="Advice on next steps, and on how to talk to the family about an Early Help Assessment.",
        added_at=london_time(2026, 11, 19, 16, 5),
        parent_agreed_on=None,
    ),
)
