"""Full-text search: a trigram index over every revision's text.

- SQLite: the FTS5 table ``revisions_fts`` with the trigram tokenizer,
  contentless (rowid = revision id), filled with each stored revision's text
  followed by the sentinel, and ``revisions_fts_vocab``, its trigrams. A
  SQLite without FTS5 or without the trigram tokenizer (before 3.34) stops the
  upgrade with a message that says so.
- PostgreSQL: the pg_trgm extension and a GIN index ``gin_trgm_ops`` on
  ``revisions.text``.

Nothing else changes. See feedd/store/search.py for what a search matches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from feedd.errors import FeeddError
from feedd.store.search import unsupported_message

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        try:
            op.execute(
                "CREATE VIRTUAL TABLE revisions_fts USING fts5("
                "text, content='', tokenize='trigram')"
            )
        except sa.exc.OperationalError as exc:  # no such module / no such tokenizer
            raise FeeddError(unsupported_message(exc.orig)) from exc
        op.execute("CREATE VIRTUAL TABLE revisions_fts_vocab USING fts5vocab(revisions_fts, 'row')")
        # Each text with the sentinel (feedd.store.search.SENTINEL, U+FFFF twice).
        op.execute(
            "INSERT INTO revisions_fts (rowid, text)"
            " SELECT id, text || char(65535, 65535) FROM revisions ORDER BY id"
        )
        return
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:  # not permitted, or not installed on the server
        raise FeeddError(
            f"migration 0004 needs the pg_trgm extension and could not create it ({exc.orig});"
            " have a superuser run CREATE EXTENSION pg_trgm in this database (Debian:"
            " postgresql-contrib), then start feedd again"
        ) from exc
    op.execute("CREATE INDEX ix_revisions_text_trgm ON revisions USING gin (text gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE revisions_fts_vocab")
        op.execute("DROP TABLE revisions_fts")
    else:
        op.execute("DROP INDEX ix_revisions_text_trgm")
