"""What the wheel carries: every package, and the migrations as package data.

The installs themselves (a venv, --user, --target) are driven by .ci/package-check,
which builds the wheel once; these are the quick checks of the same promises.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import tomllib
from pathlib import Path

from feedd.store import migrate
from tests.support import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_every_package_under_feedd_is_listed_for_the_wheel() -> None:
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "feedd").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    listed = set(SETUPTOOLS["packages"])
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_migrations_package_is_the_top_level_folder() -> None:
    assert SETUPTOOLS["package-dir"] == {"feedd.migrations": "migrations"}
    assert {"feedd.migrations", "feedd.migrations.versions"} <= set(SETUPTOOLS["packages"])
    assert (ROOT / "migrations" / "__init__.py").is_file()
    assert (ROOT / "migrations" / "versions" / "__init__.py").is_file()
    # script.py.mako is not a module: it must be named as package data.
    assert SETUPTOOLS["package-data"]["feedd.migrations"] == ["script.py.mako"]
    assert "data-files" not in SETUPTOOLS, "data-files do not follow --target or --user"


def test_the_editable_install_finds_the_migrations_through_importlib_resources() -> None:
    """`pip install -e .` (make install) maps feedd.migrations onto migrations/."""
    location = importlib.resources.files("feedd.migrations")
    assert isinstance(location, Path)
    assert location.resolve() == (ROOT / "migrations").resolve()
    assert migrate.script_location().resolve() == location.resolve()
    assert migrate.head_revision() is not None


def test_a_checkout_without_an_install_still_finds_its_migrations(tmp_path: Path) -> None:
    """Run from the checkout with the editable finder out of the way."""
    code = (
        "import sys; "
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
        "from feedd.store import migrate; print(migrate.script_location())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert Path(out.stdout.strip()) == ROOT / "migrations"
