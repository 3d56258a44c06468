"""Shared fixtures: real SQLite files and a real PostgreSQL, never mocks.

PostgreSQL: FEEDD_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
A fresh database is created per test session and dropped at the end. Under
CI=true an unreachable server fails the run; locally the tests skip.
"""

from __future__ import annotations

import fcntl
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from feedd.app import App, build
from feedd.config import load_config
from tests.support import IN_CI, PG_URL, AppFactory

# The PostgreSQL tests of every xdist worker hold this file locked shared; a
# test that stops or restarts the server (marked postgres_restart) holds it
# exclusive, so it never pulls the server from under another worker's test.
# That happened: a restart in one worker made `feedd status` of a daemon test
# in the other fail with "server closed the connection unexpectedly".
_PG_LOCK = Path(tempfile.gettempdir()) / "feedd-tests-postgres.lock"


@pytest.fixture(autouse=True)
def _postgres_server_shared(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("postgres") is None:
        yield
        return
    exclusive = request.node.get_closest_marker("postgres_restart") is not None
    with open(_PG_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PgServer:
    """Creates databases on the test server and drops them all at the end."""

    def __init__(self) -> None:
        self.admin_url = make_url(PG_URL)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.prefix = f"feedd_test_{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def database(self, suffix: str) -> str:
        """A fresh, empty database; the same suffix gives the same (reset) one."""
        name = f"{self.prefix}_{suffix}"
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        if name not in self.names:
            self.names.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        server = PgServer()
        with server.admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server"
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {PG_URL} is unreachable: {exc}")
        pytest.skip(
            f"PostgreSQL at {PG_URL} is unreachable ({type(exc).__name__}); "
            "start it or set FEEDD_TEST_PG_URL"
        )
    yield server
    server.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Fresh databases on the parametrised engine: db_factory("a") -> URL."""
    if request.param == "sqlite":
        return lambda name="feedd": f"sqlite:///{tmp_path / f'{name}.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return lambda name="feedd": server.database(name)


@pytest.fixture
def db_url(db_factory: Callable[[str], str]) -> str:
    """The database URL for a test that must hold on both engines."""
    return db_factory("feedd")


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
