"""Ingest: from dump files to stored history.

* ``source``: list, order, settle and read dump files (the daemon and backfill);
* ``service``: the per-dump service (one dump, one transaction);
* ``ahead``: the backfill helper process that fingerprints ahead.
"""

from feedd.ingest.service import Ingester, IngestResult, article_uid, utcnow
from feedd.ingest.source import DumpBytes

__all__ = ["DumpBytes", "IngestResult", "Ingester", "article_uid", "utcnow"]
