"""Schema upgrades through Alembic, run by feedd itself."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from feedd.errors import FeeddError
from feedd.store.engine import WRITE

_ADVISORY_MIGRATE = 0x66656564  # "feed": serialises upgrades across PG workers


def script_location() -> Path:
    """The Alembic scripts: the package ``feedd.migrations``, which pyproject.toml
    maps onto the repository's top-level migrations/ folder, so that a wheel
    installed in a venv, with --user or with --target carries it, and an
    editable install finds it in the checkout.

    Raises FeeddError when it is missing (a broken installation).
    """
    try:
        location = importlib.resources.files("feedd.migrations")
    except ModuleNotFoundError:
        # A checkout imported from its own folder, with no install to map the
        # package: migrations/ is beside feedd/.
        location = Path(__file__).resolve().parents[2] / "migrations"
    if isinstance(location, Path) and (location / "env.py").is_file():
        return location
    raise FeeddError(
        f"feedd's migrations are missing from this installation ({location}); reinstall feedd"
    )


def alembic_config(location: Path | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(location or script_location()))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, target: str = "head", *, location: Path | None = None) -> None:
    """Upgrade in one transaction: an interrupted upgrade leaves the old schema."""
    cfg = alembic_config(location)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # Must be set outside a transaction; batch mode recreates tables
            # and foreign keys would cascade deletes into child rows.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.execution_options(**{WRITE: True}).begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_MIGRATE})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, target)
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def needs_upgrade(engine: Engine) -> bool:
    return current_revision(engine) != head_revision()
