"""Alembic environment for feedd.

feedd runs migrations itself (``feedd db upgrade``, and on every start) and
hands Alembic an open connection inside a write transaction, so an interrupted
upgrade rolls back whole. The plain ``alembic`` command works too, with
``-x url=...`` or ``sqlalchemy.url`` in alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from feedd.store.engine import WRITE, make_engine
from feedd.store.schema import include_name, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,  # the search index is not in the metadata
        render_as_batch=True,  # SQLite can only ALTER through table copies
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("alembic: pass -x url=DATABASE_URL (or set sqlalchemy.url)")
    engine = make_engine(url)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Batch mode copies tables; with foreign keys on, dropping the old
            # parent table would cascade into child rows.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.execution_options(**{WRITE: True}).begin():
            _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("feedd migrations run online only")
run_migrations_online()
