"""SQLite's write-ahead log stays in proportion to the database.

A fixed 64 MB checkpoint cadence (chosen for big backfills) let the WAL reach
64 MB beside a database of 3 MB; the cadence now follows the database's size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from feedd.app import build
from feedd.config import load_config
from feedd.store.engine import WAL_MAX_PAGES, WAL_MIN_PAGES, wal_pages
from tests.support import generate_stream, seed_files

MiB = 2**20


@pytest.mark.parametrize(
    ("database_pages", "cadence"),
    [
        (0, 1024),
        (1, 1024),
        (1024, 1024),
        (1025, 2048),
        (3000, 4096),
        (16384, 16384),
        (10**6, 16384),
    ],
)
def test_the_checkpoint_cadence_follows_the_database_size(
    database_pages: int, cadence: int
) -> None:
    assert wal_pages(database_pages) == cadence
    assert WAL_MIN_PAGES <= cadence <= WAL_MAX_PAGES


def test_the_wal_of_a_small_database_stays_small(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    for seed in seed_files():
        (dumps / f"seed_{seed.name}").write_bytes(seed.read_bytes())
    # One commit per dump, as the daemon does: about 19 MB of WAL frames in all,
    # which a fixed 64 MB cadence kept in the file.
    for name, data in generate_stream(600):
        (dumps / name).write_bytes(data)
    database = tmp_path / "feedd.db"
    app = build(
        load_config(
            None,
            env={},
            overrides={
                "database.url": f"sqlite:///{database}",
                "feed.output_dir": str(tmp_path / "public"),
            },
        )
    )
    try:
        results = app.ingester.ingest_paths(sorted(dumps.iterdir()))
        assert {r.status for r in results} <= {"ingested", "unchanged"}
        # The connection is still open, so the WAL is still there: its length is
        # the most it ever held (SQLite reuses the file and never shrinks it
        # unless journal_size_limit says so).
        wal = Path(f"{database}-wal").stat().st_size
        size = database.stat().st_size
        assert wal <= 8 * MiB, f"WAL {wal / MiB:.1f} MiB beside a {size / MiB:.1f} MiB database"
        with app.store.engine.connect() as conn:
            pages = conn.execute(text("PRAGMA page_count")).scalar_one()
            cadence = conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
            limit = conn.execute(text("PRAGMA journal_size_limit")).scalar_one()
        assert cadence == wal_pages(pages)
        assert limit == cadence * 4096
    finally:
        app.close()
