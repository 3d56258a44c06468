"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from feedd.app import App

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
if not SEEDS.is_dir():  # a checkout with shared/ inside rather than beside it
    SEEDS = ROOT / "shared" / "seeds"

PG_URL = os.environ.get("FEEDD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

AppFactory = Callable[..., App]


def seed_files() -> list[Path]:
    """The sample dumps in ../shared/seeds (skip without them; CI must have them)."""
    import pytest

    if not SEEDS.is_dir():
        message = f"the sample dumps are missing: expected {SEEDS} (../shared beside the checkout)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)
    return sorted(SEEDS.glob("*.txt"))


def dump_bytes(*items: str, final_newline: bool = True) -> bytes:
    body = "INCOMING TRANSMISSION\n\nLATEST UPDATES\n" + "\n".join(items)
    return (body + ("\n" if final_newline else "")).encode("utf-8")


def seed_texts() -> list[str]:
    from feedd.core.parse import parse_dump

    texts = [i.text for f in seed_files() for i in parse_dump(f.read_bytes()).items]
    return list(dict.fromkeys(texts))


def generate_stream(dumps: int, seed: int = 7, listing: int = 12) -> list[tuple[str, bytes]]:
    """A listing that scrolls: new articles on top, old ones drop off, some edited.

    Articles are seed texts with a distinct marker sentence, so every one is a
    different article; edits change one character, which feedd must call an
    update, never a new article.
    """
    import random

    rng = random.Random(seed)
    base = seed_texts()
    made = 0

    def article() -> str:
        nonlocal made
        made += 1
        text = base[made % len(base)]
        return f"第{made}号:编号为{made}的文章。" + text[: 150 + rng.randrange(150)] + "..."

    shown = [article() for _ in range(listing)]
    out: list[tuple[str, bytes]] = []
    for n in range(dumps):
        if rng.random() < 0.5:
            shown.insert(0, article())
            shown.pop()
        if rng.random() < 0.2:
            k = rng.randrange(len(shown))
            text = shown[k]
            at = 20 + rng.randrange(len(text) - 30)
            shown[k] = text[:at] + "改" + text[at + 1 :]
        out.append((f"{n:03d}_{n:016x}.txt", dump_bytes(*shown)))
    return out


# A test-only migration after head: batch mode rebuilds two parent tables (the
# riskiest moment on SQLite: dropping the old copy could cascade into child
# rows), then runs ``{tail}`` (raise, sleep, or pass).
TEST_MIGRATION = """
import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
    with op.batch_alter_table("dumps") as batch:
        batch.add_column(sa.Column("note", sa.Text()))
    {tail}


def downgrade() -> None:
    pass
"""


def bench_detection(name: str) -> ModuleType:
    """bench/detection/<name>.py, loaded once under a unique module name, so
    that its generic file names (score, baseline) shadow nothing on sys.path."""
    unique = f"bench_detection_{name}"
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(
        unique, ROOT / "bench" / "detection" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module
