"""Default referral reasons (domain brief, section 8), so a new installation can take referrals.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen here as they were when first shipped; later changes are made in the service, not by editing this.
REASONS = (
    ("not_attending", "Not attending"),
    ("not_engaging", "Not engaging"),
    ("awaiting_mash_feedback", "Awaiting MASH feedback"),
    ("awaiting_camhs_feedback", "Awaiting CAMHS feedback"),
    ("serious_youth_violence_or_exploitation", "Serious youth violence or exploitation risk"),
    ("weapon_in_school", "Weapon in school"),
    ("gang_or_peer_on_peer_abuse", "Gang or peer-on-peer abuse"),
    ("ebsa", "Emotionally based school avoidance (EBSA)"),
    ("suspensions_or_pex_risk", "Two or more suspensions in a half-term, or at risk of permanent exclusion"),
    ("year_6_to_7_transition", "Year 6 to Year 7 transition"),
    ("no_recourse_or_housing", "No recourse to public funds, or housing"),
    ("bereavement", "Bereavement"),
    ("slcn", "Speech, language and communication needs (SLCN)"),
    ("autism_or_sensory", "Autism or sensory needs"),
    ("part_time_timetable_review", "Part-time timetable review"),
    ("coercive_behaviour", "Coercive behaviour"),
)


reason_table = sa.table(
    "referral_reason_option",
    sa.column("code", sa.String),
    sa.column("label", sa.String),
    sa.column("position", sa.Integer),
    sa.column("active", sa.Boolean),
)


def upgrade() -> None:
    existing = {row[0] for row in op.get_bind().execute(sa.select(reason_table.c.code))}
    op.bulk_insert(
        reason_table,
        [
            {"code": code, "label": label, "position": position, "active": True}
            for position, (code, label) in enumerate(REASONS, 1)
            if code not in existing
        ],
    )


def downgrade() -> None:
    op.execute(reason_table.delete().where(reason_table.c.code.in_([code for code, _ in REASONS])))
