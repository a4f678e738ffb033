"""Data protection: the agency access window, consent withdrawal, redaction and retention runs, withdrawn
documents, and audit events that the database itself refuses to change or delete.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retention_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.CheckConstraint("mode IN ('dry_run', 'apply')", name=op.f('ck_retention_run_mode_valid')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_run'))
    )
    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('agency_access_days', sa.Integer(), nullable=False, server_default='28'))
        batch_op.create_check_constraint(op.f('ck_meeting_series_access_days_not_negative'), 'agency_access_days >= 0')

    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_withdrawn_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('consent_withdrawal_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('redacted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_referral_consent_withdrawn_by_id_person'), 'person', ['consent_withdrawn_by_id'], ['id'])

    _protect_audit_events()


# Deleting a person sets actor_person_id to NULL (the label snapshot stays); nothing else may change.
AUDIT_COLUMNS = ("occurred_at", "actor_label", "action", "record_type", "record_id", "ip_address", "detail")


def _protect_audit_events() -> None:
    if op.get_bind().dialect.name == "postgresql":
        changed = " OR ".join(f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text" for c in AUDIT_COLUMNS)
        op.execute(
            "CREATE FUNCTION audit_event_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'DELETE' OR {changed} THEN "
            "RAISE EXCEPTION 'audit events cannot be changed or deleted'; END IF; RETURN NEW; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_event_immutable BEFORE UPDATE OR DELETE ON audit_event "
            "FOR EACH ROW EXECUTE FUNCTION audit_event_immutable()"
        )
    else:
        op.execute(
            "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit events cannot be deleted'); END"
        )
        op.execute(
            f"CREATE TRIGGER audit_event_no_update BEFORE UPDATE OF {', '.join(AUDIT_COLUMNS)} ON audit_event "
            "BEGIN SELECT RAISE(ABORT, 'audit events cannot be changed'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_event_immutable ON audit_event")
        op.execute("DROP FUNCTION audit_event_immutable()")
    else:
        op.execute("DROP TRIGGER audit_event_no_delete")
        op.execute("DROP TRIGGER audit_event_no_update")
    with op.batch_alter_table('referral', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_referral_consent_withdrawn_by_id_person'), type_='foreignkey')
        batch_op.drop_column('redacted_at')
        batch_op.drop_column('consent_withdrawal_note')
        batch_op.drop_column('consent_withdrawn_by_id')

    with op.batch_alter_table('meeting_series', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_meeting_series_access_days_not_negative'), type_='check')
        batch_op.drop_column('agency_access_days')

    with op.batch_alter_table('document', schema=None) as batch_op:
        batch_op.drop_column('withdrawn_at')

    op.drop_table('retention_run')
