"""Start-up cost of the command line: what each command imports.

bench/startup.py times the commands; these tests only say which modules a
command loads, so that an import added at the top of feedd/cli.py or
feedd/app.py shows here as a failure rather than as a slower `feedd --help`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feedd.app import build, head_of, schema_head
from feedd.config import load_config
from feedd.store import migrate

# Modules that cost tens of milliseconds each to import, and that neither
# `feedd --help` nor `feedd status` has any use for.
NOT_FOR_STATUS = ("feedgen", "lxml", "apscheduler", "waitress", "jinja2", "watchdog", "feedd.web")
NOT_FOR_HELP = ("sqlalchemy", "numpy", "alembic", *NOT_FOR_STATUS)
# Loaded by `feedd status` today through files outside the CLI: Alembic by
# feedd/store/sql.py (`from feedd.store import migrate`), numpy by
# feedd/config.py (the matcher's settings) and feedd/store/ingest_tx.py.
NOT_FOR_STATUS_LATER = ("alembic", "numpy")

_PROBE = """
import atexit, json, os, sys
def _report():
    with open(os.environ["MODULES_OUT_FOR_TEST"], "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(_report)
from feedd.cli import main
main(sys.argv[1:])
"""


def modules_loaded(tmp_path: Path, *args: str) -> set[str]:
    """The modules that `feedd ARGS` had imported when it exited (exit 0)."""
    out = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "MODULES_OUT_FOR_TEST": str(out)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(out.read_text()))


def loaded_of(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def status_database(tmp_path: Path) -> Path:
    """A config over a SQLite database at the schema head, with feed files."""
    config = tmp_path / "config.toml"
    config.write_text(
        "[database]\nurl = 'sqlite:///feedd.db'\n"
        "[ingest]\nwatch_dir = 'watch'\n[feed]\noutput_dir = 'public'\n"
    )
    (tmp_path / "watch").mkdir()
    app = build(load_config(config, env={}))
    try:
        app.publish()
    finally:
        app.close()
    return config


def test_the_schema_head_read_from_the_scripts_is_alembics() -> None:
    assert head_of(migrate.script_location() / "versions") == migrate.head_revision()
    assert schema_head() == migrate.head_revision()


def _scripts(folder: Path, *assignments: str) -> Path:
    folder.mkdir()
    for n, text in enumerate(assignments):
        (folder / f"{n:04d}_x.py").write_text(f'"""revision = "doc"\n"""\n{text}\n')
    (folder / "__init__.py").write_text("")
    return folder


@pytest.mark.parametrize(
    ("assignments", "head"),
    [
        (
            [
                'revision = "0001"\ndown_revision = None',
                "revision = '0002'\ndown_revision = '0001'",
            ],
            "0002",
        ),
        (['revision: str = "a"\ndown_revision: str | None = None'], "a"),
        # A merge: one head revising two.
        (
            [
                'revision = "a"\ndown_revision = None',
                'revision = "b"\ndown_revision = "a"',
                'revision = "c"\ndown_revision = "a"',
                'revision = "m"\ndown_revision = ("b", "c")',
            ],
            "m",
        ),
        # In doubt, Alembic is asked: two heads, a value that is no literal,
        # an assignment missing, no scripts at all.
        (['revision = "a"\ndown_revision = None', 'revision = "b"\ndown_revision = None'], None),
        (["revision = NAME\ndown_revision = None"], None),
        (['revision = "a"'], None),
        ([], None),
    ],
)
def test_head_of_the_scripts_or_none_when_in_doubt(
    tmp_path: Path, assignments: list[str], head: str | None
) -> None:
    assert head_of(_scripts(tmp_path / "versions", *assignments)) == head


@pytest.mark.parametrize("args", [("--help",), ("status", "--help"), ("--version",)])
def test_help_and_version_load_no_database_or_feed_stack(tmp_path: Path, args: tuple[str]) -> None:
    assert loaded_of(modules_loaded(tmp_path, *args), NOT_FOR_HELP) == []


def test_status_loads_the_store_only(tmp_path: Path) -> None:
    config = status_database(tmp_path)
    modules = modules_loaded(tmp_path, "-c", str(config), "status")
    assert "sqlalchemy" in modules  # it did read the database
    assert loaded_of(modules, NOT_FOR_STATUS) == []


def test_status_loads_neither_alembic_nor_numpy(tmp_path: Path) -> None:
    config = status_database(tmp_path)
    modules = modules_loaded(tmp_path, "-c", str(config), "status")
    assert loaded_of(modules, NOT_FOR_STATUS_LATER) == []


def test_status_refuses_a_schema_behind_head_without_alembic(tmp_path: Path) -> None:
    """The head check that replaced Alembic's still tells an old schema apart."""
    config = status_database(tmp_path)
    engine_url = f"sqlite:///{tmp_path / 'feedd.db'}"
    from sqlalchemy import create_engine, text

    engine = create_engine(engine_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDD_")}
    done = subprocess.run(
        [sys.executable, "-m", "feedd", "-c", str(config), "status"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert f"revision 0003, this feedd needs {migrate.head_revision()}" in done.stderr
