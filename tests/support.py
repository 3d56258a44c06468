"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from feedd.app import App

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"
if not SEEDS.is_dir():  # a checkout with shared/ inside rather than beside it
    SEEDS = ROOT / "shared" / "seeds"

PG_URL = os.environ.get("FEEDD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

AppFactory = Callable[..., App]


def seed_files() -> list[Path]:
    return sorted(SEEDS.glob("*.txt"))


def dump_bytes(*items: str, final_newline: bool = True) -> bytes:
    body = "INCOMING TRANSMISSION\n\nLATEST UPDATES\n" + "\n".join(items)
    return (body + ("\n" if final_newline else "")).encode("utf-8")
