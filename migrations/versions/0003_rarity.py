"""Candidates per article and rarity: segments by article, segment_df, shown_chars.

- ``segments`` becomes the index of each article's *current* text (one row per
  hash and article, however many revisions the article has), over the whole
  text instead of its first 24 segments;
- ``segment_df`` counts, per segment hash, the articles whose current text
  holds it (the document frequency that weighs shared text by its rarity);
- ``sightings.shown_chars``: how many characters of normalised text a line
  showed (a re-cut shows another length of the same revision);
- ``articles.head_hash``: the hash of the current text's opening, which finds
  re-cuts without a fingerprint.

Both are computed here from the stored history with the default fingerprint
settings (a database fingerprinted with other ``fingerprint.*`` keys needs a
re-backfill anyway). Article ids, revisions and sightings keep their values.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from alembic import op

from feedd.core.fingerprint import FingerprintSettings, head_key, segments
from feedd.core.text import compact, normalize

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    conn = op.get_bind()
    op.drop_table("segments")
    op.create_table(
        "segments",
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column(
            "article_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", name="fk_segments_article_id_articles"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("hash", "article_id", name="pk_segments"),
    )
    op.create_table(
        "segment_df",
        sa.Column("hash", sa.BigInteger(), nullable=False),
        sa.Column("articles", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hash", name="pk_segment_df"),
    )
    op.add_column("sightings", sa.Column("shown_chars", sa.Integer()))
    op.add_column("articles", sa.Column("head_hash", sa.BigInteger()))
    op.create_index("ix_articles_head_hash", "articles", ["head_hash"])

    settings = FingerprintSettings()
    df: Counter[int] = Counter()
    insert = sa.text("INSERT INTO segments (hash, article_id) VALUES (:hash, :aid)")
    head = sa.text("UPDATE articles SET head_hash = :head WHERE id = :aid")
    shown = sa.text("INSERT INTO feedd_shown_0003 (rid, n) VALUES (:rid, :n)")
    conn.execute(
        sa.text("CREATE TEMPORARY TABLE feedd_shown_0003 (rid INTEGER PRIMARY KEY, n INTEGER)")
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT r.id, r.article_id, r.text,"
                " (SELECT a.current_revision FROM articles a WHERE a.id = r.article_id) = r.number"
                " FROM revisions r WHERE r.id > :last ORDER BY r.id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            break
        postings = []
        lengths = []
        heads = []
        for rid, aid, text, current in rows:
            norm = normalize(text)
            lengths.append({"rid": rid, "n": len(norm)})
            if current:
                heads.append({"head": head_key(compact(norm)), "aid": aid})
                hashes = segments(norm, settings)
                df.update(hashes)
                postings.extend({"hash": h, "aid": aid} for h in hashes)
        if postings:
            conn.execute(insert, postings)
        conn.execute(shown, lengths)
        if heads:
            conn.execute(head, heads)
        last = rows[-1][0]
    counts = [{"hash": h, "n": n} for h, n in df.items()]
    for i in range(0, len(counts), _BATCH):
        conn.execute(
            sa.text("INSERT INTO segment_df (hash, articles) VALUES (:hash, :n)"),
            counts[i : i + _BATCH],
        )
    # Before re-cuts existed every sighting showed its revision's whole text.
    conn.execute(
        sa.text(
            "UPDATE sightings SET shown_chars ="
            " (SELECT n FROM feedd_shown_0003 WHERE rid = sightings.revision_id)"
        )
    )
    conn.execute(sa.text("DROP TABLE feedd_shown_0003"))


def downgrade() -> None:
    raise NotImplementedError("0003 cannot be undone: restore a backup taken before upgrading")
