"""Initial schema: dumps, articles, revisions, segments, sightings, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from feedd.store.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dumps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger()),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("observed_at", UTCDateTime(), nullable=False),
        sa.Column("ingested_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("encoding", sa.String(16)),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("noise_count", sa.Integer(), nullable=False),
        sa.Column("new_count", sa.Integer(), nullable=False),
        sa.Column("repeat_count", sa.Integer(), nullable=False),
        sa.Column("update_count", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("location", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_dumps"),
        sa.UniqueConstraint("name", "content_hash", name="uq_dumps_name_content"),
    )
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uid", sa.String(36), nullable=False),
        sa.Column("current_revision", sa.Integer(), nullable=False),
        sa.Column("revision_count", sa.Integer(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("first_dump_id", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_articles"),
        sa.UniqueConstraint("uid", name="uq_articles_uid"),
        sa.ForeignKeyConstraint(
            ["first_dump_id"], ["dumps.id"], name="fk_articles_first_dump_id_dumps"
        ),
    )
    op.create_index("ix_articles_first_seen", "articles", ["first_seen", "first_dump_id"])
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("norm_hash", sa.BigInteger(), nullable=False),
        sa.Column("simhash", sa.BigInteger(), nullable=False),
        sa.Column("band0", sa.Integer(), nullable=False),
        sa.Column("band1", sa.Integer(), nullable=False),
        sa.Column("band2", sa.Integer(), nullable=False),
        sa.Column("band3", sa.Integer(), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("first_dump_id", sa.Integer(), nullable=False),
        sa.Column("first_line", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
        sa.UniqueConstraint("article_id", "number", name="uq_revisions_article_number"),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name="fk_revisions_article_id_articles"
        ),
        sa.ForeignKeyConstraint(
            ["first_dump_id"], ["dumps.id"], name="fk_revisions_first_dump_id_dumps"
        ),
    )
    op.create_index("ix_revisions_norm_hash", "revisions", ["norm_hash"])
    for band in range(4):
        op.create_index(f"ix_revisions_band{band}", "revisions", [f"band{band}"])
    op.create_table(
        "segments",
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hash", "revision_id", name="pk_segments"),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["revisions.id"], name="fk_segments_revision_id_revisions"
        ),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name="fk_segments_article_id_articles"
        ),
    )
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dump_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("category", sa.String(64)),
        sa.Column("date", sa.String(16)),
        sa.PrimaryKeyConstraint("id", name="pk_sightings"),
        sa.UniqueConstraint("dump_id", "line", name="uq_sightings_dump_line"),
        sa.ForeignKeyConstraint(["dump_id"], ["dumps.id"], name="fk_sightings_dump_id_dumps"),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name="fk_sightings_article_id_articles"
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["revisions.id"], name="fk_sightings_revision_id_revisions"
        ),
    )
    op.create_index("ix_sightings_article_id", "sightings", ["article_id"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("last_scan_at", UTCDateTime()),
        sa.Column("next_scan_at", UTCDateTime()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("oldest_pending_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )


def downgrade() -> None:
    for table in ("workers", "sightings", "segments", "revisions", "articles", "dumps"):
        op.drop_table(table)
