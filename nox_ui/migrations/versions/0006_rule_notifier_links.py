"""rule notifiers as a join table; JSON columns for alert labels and silence matchers

Each rule's JSON list of notifier ids (`alert_rules.notifiers`) becomes rows of
`alert_rule_notifiers` (ON DELETE CASCADE both ways); ids of notifiers that no longer exist, repeated
ids and anything unreadable are dropped. `alerts.labels` and `silences.matchers` change to the JSON
type (SQLite keeps the same text); a value that is not a JSON object becomes `{}`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ids(text: Any) -> list[int]:
    try:
        ids = json.loads(text or "[]")
    except (TypeError, ValueError):
        return []
    if not isinstance(ids, list):
        return []
    return list(dict.fromkeys(i for i in ids if isinstance(i, int) and not isinstance(i, bool)))


def _objects_only(table: str, column: str) -> None:
    """Rewrite values that are not a JSON object as `{}`, so the JSON type can read every row."""
    bind = op.get_bind()
    for row_id, text in bind.execute(sa.text(f"SELECT id, {column} FROM {table}")).all():
        try:
            ok = isinstance(json.loads(text), dict)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            bind.execute(sa.text(f"UPDATE {table} SET {column} = '{{}}' WHERE id = :id"), {"id": row_id})


def upgrade() -> None:
    op.create_table(
        "alert_rule_notifiers",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("notifier_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["notifier_id"], ["notifiers.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("rule_id", "notifier_id"),
    )
    with op.batch_alter_table("alert_rule_notifiers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_rule_notifiers_notifier_id"), ["notifier_id"], unique=False
        )

    bind = op.get_bind()
    known = {row[0] for row in bind.execute(sa.text("SELECT id FROM notifiers")).all()}
    links = [
        {"rule_id": rule_id, "notifier_id": notifier_id}
        for rule_id, text in bind.execute(sa.text("SELECT id, notifiers FROM alert_rules")).all()
        for notifier_id in _ids(text)
        if notifier_id in known
    ]
    if links:
        bind.execute(
            sa.text(
                "INSERT INTO alert_rule_notifiers (rule_id, notifier_id) VALUES (:rule_id, :notifier_id)"
            ),
            links,
        )
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.drop_column("notifiers")

    _objects_only("alerts", "labels")
    _objects_only("silences", "matchers")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("labels", existing_type=sa.Text(), type_=sa.JSON(), existing_nullable=False)
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.alter_column("matchers", existing_type=sa.Text(), type_=sa.JSON(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.alter_column("matchers", existing_type=sa.JSON(), type_=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("labels", existing_type=sa.JSON(), type_=sa.Text(), existing_nullable=False)

    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notifiers", sa.Text(), nullable=False, server_default="[]"))
    bind = op.get_bind()
    lists: dict[int, list[int]] = {}
    rows = bind.execute(
        sa.text("SELECT rule_id, notifier_id FROM alert_rule_notifiers ORDER BY rule_id, notifier_id")
    ).all()
    for rule_id, notifier_id in rows:
        lists.setdefault(rule_id, []).append(notifier_id)
    for rule_id, ids in lists.items():
        bind.execute(
            sa.text("UPDATE alert_rules SET notifiers = :ids WHERE id = :id"),
            {"ids": json.dumps(ids), "id": rule_id},
        )
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.alter_column(
            "notifiers", server_default=None, existing_type=sa.Text(), existing_nullable=False
        )

    with op.batch_alter_table("alert_rule_notifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_rule_notifiers_notifier_id"))
    op.drop_table("alert_rule_notifiers")
