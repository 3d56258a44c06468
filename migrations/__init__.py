"""feedd's Alembic scripts, installed as the package ``feedd.migrations``.

They stay here, at the top of the repository; pyproject.toml maps the package
onto this folder, and ``feedd.store.migrate.script_location()`` finds it with
importlib.resources. Nothing imports this module for its code.
"""
