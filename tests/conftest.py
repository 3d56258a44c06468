"""Shared fixtures: real SQLite files and a real PostgreSQL, never mocks.

PostgreSQL: FEEDD_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
A fresh database is created per test session and dropped at the end. Under
CI=true an unreachable server fails the run; locally the tests skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from feedd.app import App, build
from feedd.config import load_config
from tests.support import IN_CI, PG_URL, AppFactory


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session; yields its URL."""
    admin_url = make_url(PG_URL)
    name = f"feedd_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {PG_URL} is unreachable: {exc}")
        pytest.skip(
            f"PostgreSQL at {PG_URL} is unreachable ({type(exc).__name__}); "
            "start it or set FEEDD_TEST_PG_URL"
        )
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_pg(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database URL for a test that must hold on both engines."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedd.db'}"
    url: str = request.getfixturevalue("pg_database")
    _reset_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'feedd.db'}"


@pytest.fixture
def make_app(tmp_path: Path, db_url: str) -> Iterator[AppFactory]:
    """Build an App on the parametrised database with config overrides."""
    apps: list[App] = []

    def factory(**overrides: Any) -> App:
        values = {
            "database.url": db_url,
            "ingest.watch_dir": str(tmp_path / "dumps"),
            "ingest.quarantine_dir": str(tmp_path / "quarantine"),
            "feed.output_dir": str(tmp_path / "public"),
        }
        values.update({k.replace("__", "."): v for k, v in overrides.items()})
        (tmp_path / "dumps").mkdir(exist_ok=True)
        app = build(load_config(None, env={}, overrides=values))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()
