"""Indexes for browsing the history: the activity charts, the category
filter, and on PostgreSQL search terms of one or two characters.

- ``ix_revisions_first_seen`` on ``revisions (first_seen, number)``: the
  charts count updates (revisions after the first) per day or hour over a
  window of first_seen; the 90-day chart read every revision without it.
- ``ix_sightings_category`` on ``sightings (category, article_id)``, partial
  (``WHERE category IS NOT NULL``): the articles seen under a category. Most
  lines have no category, so the index holds only the few that do.
- PostgreSQL: the function ``feedd_grams(text)``, the characters and pairs of
  characters of the lowercased text, and the GIN index
  ``ix_revisions_text_grams`` on ``feedd_grams(text)``. pg_trgm extracts no
  trigram from a word of one or two characters, so such a word was a scan of
  every current text; this index finds the texts holding it (verified with
  LIKE, as the trigram index's hits are). feedd/store/search.py says when a
  query uses it.

Nothing else changes; every index is built from the stored rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# As feedd/store/schema.py names them; written out so that this migration does
# what it did whatever later code calls them.
GRAMS_FUNCTION = "feedd_grams"
GRAMS_INDEX = "ix_revisions_text_grams"

# IMMUTABLE as an index expression must be, like pg_trgm's own functions,
# though lower() follows the database's ctype: the database's locale must not
# change under the index (PostgreSQL asks the same of every text index).
# PL/pgSQL, not SQL: an SQL function with a FROM is not inlined and cost
# 3.3 ms a text (generate_series) against 0.06 ms for this loop (350
# characters, PostgreSQL 15).
GRAMS_SQL = f"""
CREATE FUNCTION {GRAMS_FUNCTION}(body text) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    chars text[] := string_to_array(lower(body), NULL);
    grams text[] := chars;
BEGIN
    FOR i IN 1 .. cardinality(chars) - 1 LOOP
        grams := grams || (chars[i] || chars[i + 1]);
    END LOOP;
    RETURN grams;
END
$$
"""


def upgrade() -> None:
    op.create_index("ix_revisions_first_seen", "revisions", ["first_seen", "number"])
    op.create_index(
        "ix_sightings_category",
        "sightings",
        ["category", "article_id"],
        sqlite_where=sa.text("category IS NOT NULL"),
        postgresql_where=sa.text("category IS NOT NULL"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(GRAMS_SQL)
    # Duplicates in the array cost nothing: GIN keeps each key once a row.
    # 87 s at 100k articles, whether maintenance_work_mem is 64 or 256 MB.
    op.execute(f"CREATE INDEX {GRAMS_INDEX} ON revisions USING gin ({GRAMS_FUNCTION}(text))")
    # ANALYZE keeps the commonest elements with their counts, which tell a
    # common word from a rare one (feedd/store/sql.py, _GRAM_DOCS). At the
    # default target, 1,000 of them: each in 8% of the texts or more (100k
    # articles, bench/web.py's history), so a word in 5% was taken for rare,
    # and its 5,000 hits sorted: 1-character search p95 41 ms. At 400, 4,000
    # down to 1.8%: 12 ms; ANALYZE of revisions 3.8 s -> 11.5 s.
    op.execute(f"ALTER INDEX {GRAMS_INDEX} ALTER COLUMN 1 SET STATISTICS 400")
    # Now, not when autovacuum next counts enough changed rows (10% of the
    # table): until then every common word would be read through the index.
    op.execute("ANALYZE revisions")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX {GRAMS_INDEX}")
        op.execute(f"DROP FUNCTION {GRAMS_FUNCTION}(text)")
    op.drop_index("ix_sightings_category", "sightings")
    op.drop_index("ix_revisions_first_seen", "revisions")
