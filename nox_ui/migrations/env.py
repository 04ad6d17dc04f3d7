"""Alembic environment: the target metadata is SQLModel's, the URL comes from the caller's Config."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import nox_ui.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from nox_ui.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Engine):  # pytest-alembic hands over an engine
        with connection.connect() as conn:
            _run(conn)
        return
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    # Batch mode copies a table, drops the old one and renames the copy. With foreign keys on, SQLite
    # would cascade that drop into the rows that refer to the table (a rule's alerts, an alert's
    # deliveries), so they are off while migrating (the pragma must be set outside a transaction).
    toggle = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if toggle:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if toggle:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
