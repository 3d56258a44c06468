"""SQLite: the candidate index as clustered tables (WITHOUT ROWID).

``segments`` (primary key hash, article_id) and ``segment_df`` (primary key
hash) were ordinary rowid tables, each with a second B-tree for its primary
key: every segment of a new text was four insertions at random places, the
write that grew costliest as the history outgrew SQLite's page cache
(docs/performance.md). As WITHOUT ROWID tables the rows live in the primary
key's B-tree itself: two insertions, half the pages. Same columns, same rows.

PostgreSQL keeps heap tables with a primary key index; nothing changes there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Written out as schema.py renders them on SQLite, so that this migration does
# what it did whatever later code says.
_TABLES = {
    "segments": (
        "CREATE TABLE {name} ("
        " hash BIGINT NOT NULL,"
        " article_id INTEGER NOT NULL,"
        " CONSTRAINT pk_segments PRIMARY KEY (hash, article_id),"
        " CONSTRAINT fk_segments_article_id_articles FOREIGN KEY(article_id)"
        " REFERENCES articles (id)"
        ")",
        "hash, article_id",
    ),
    "segment_df": (
        "CREATE TABLE {name} ("
        " hash BIGINT NOT NULL,"
        " articles INTEGER NOT NULL,"
        " CONSTRAINT pk_segment_df PRIMARY KEY (hash)"
        ")",
        "hash, articles",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(" WITHOUT ROWID")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild("")


def _rebuild(suffix: str) -> None:
    for table, (create, columns) in _TABLES.items():
        new = f"{table}_0006"
        op.execute(create.format(name=new) + suffix)
        # In key order: the new B-tree is written left to right, page by page.
        op.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table} ORDER BY 1, 2")
        op.execute(f"DROP TABLE {table}")
        op.execute(f"ALTER TABLE {new} RENAME TO {table}")
