"""Segment hashes: crc32 per window -> a vectorised 64-bit polynomial hash.

The winnowed segment hashes of every stored revision are recomputed with the
current ``feedd.core.fingerprint.segments`` (default fingerprint settings: a
database fingerprinted with other ``fingerprint.*`` keys needs a re-backfill
anyway). Nothing else changes: simhash values, and with them article ids,
stay as they were.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from feedd.core.fingerprint import FingerprintSettings, segments
from feedd.core.text import normalize

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    conn = op.get_bind()
    # The settings of that time (24 leading segments per revision): 0003
    # replaces this index, so later defaults must not change what 0002 did.
    settings = FingerprintSettings(max_segments=24)
    # All at once: segments has no index on revision_id to delete by.
    conn.execute(sa.text("DELETE FROM segments"))
    insert = sa.text(
        "INSERT INTO segments (hash, revision_id, article_id) VALUES (:hash, :rid, :aid)"
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT id, article_id, text FROM revisions WHERE id > :last ORDER BY id LIMIT :n"
            ),
            {"last": last, "n": _BATCH},
        ).all()
        if not rows:
            return
        values = [
            {"hash": h, "rid": rid, "aid": aid}
            for rid, aid, text in rows
            for h in segments(normalize(text), settings)
        ]
        if values:
            conn.execute(insert, values)
        last = rows[-1][0]


def downgrade() -> None:
    raise NotImplementedError("0002 cannot be undone: restore a backup taken before upgrading")
