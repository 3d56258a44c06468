"""Docs are tested: the README's commands run, its references are current."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from feedd._reference import render_readme
from feedd.config import Config, load_config
from tests.support import ROOT, SEEDS

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands == ["make run", "make test"]


def test_cli_reference_is_current() -> None:
    assert render_readme(README) == README, "run `make docs` to regenerate the CLI reference"


def test_every_config_key_is_documented_with_its_default() -> None:
    defaults = load_config(None, env={})
    for section in dataclasses.fields(Config):
        if section.name == "base_dir":
            continue
        values = getattr(defaults, section.name)
        for field in dataclasses.fields(values):
            key = f"{section.name}.{field.name}"
            value = getattr(values, field.name)
            shown = json.dumps(value) if isinstance(value, str) else str(value).lower()
            row = re.search(rf"^\| `{re.escape(key)}` \| `([^`]*)` \|", README, re.M)
            assert row, f"{key} is missing from the README's configuration table"
            assert row.group(1) in (shown, shown.strip('"')), (key, row.group(1), shown)


def test_config_toml_is_the_documented_default() -> None:
    shipped = load_config(ROOT / "config.toml", env={})
    defaults = load_config(None, env={})
    for section in dataclasses.fields(Config):
        if section.name != "base_dir":
            assert getattr(shipped, section.name) == getattr(defaults, section.name)


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside the checkout")
def test_quick_start_commands_work(tmp_path: Path) -> None:
    """`make run`, then the README's commands in a second terminal."""
    for command in ("cp ../shared/seeds/*.txt dumps/", ".venv/bin/feedd status"):
        assert command in README
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Makefile", "config.toml", "pyproject.toml"):
        shutil.copy2(ROOT / name, repo / name)  # keep mtimes: make must see .venv as current
    (repo / ".venv").symlink_to(ROOT / ".venv")  # installed already: make skips setup
    (tmp_path / "shared").symlink_to(SEEDS.parent)
    log = (tmp_path / "run.log").open("wb")
    daemon = subprocess.Popen(
        ["make", "run"], cwd=repo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not (repo / "public" / "feed.atom").exists():
            assert daemon.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline, "make run did not write the feeds"
            time.sleep(0.1)
        subprocess.run("cp ../shared/seeds/*.txt dumps/", shell=True, cwd=repo, check=True)
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(
                [".venv/bin/feedd", "status"], cwd=repo, capture_output=True, text=True, check=True
            ).stdout
            if "pending: 0" in out and "feed feed.atom: 47 entries" in out:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.3)
        assert "daemon: running" in out
        assert "(47 new, 13 repeat, 0 update)" in out
        assert "feed feed.atom: 47 entries" in out
        titles = subprocess.run(
            [".venv/bin/feedd", "articles", "-n", "3"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "FlashAttention" in titles
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)  # make itself dies of the signal; the daemon must stop cleanly
        log.close()
    assert "feedd stopped" in (tmp_path / "run.log").read_text()
