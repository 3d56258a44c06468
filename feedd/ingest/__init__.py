"""Ingest: from dump files to stored history.

* ``source``: list, order, settle and read dump files (the daemon and backfill);
* ``service``: the per-dump service (one dump, one transaction);
* ``ahead``: the backfill helper process that fingerprints ahead.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feedd.ingest.service import Ingester, IngestResult, article_uid, utcnow
    from feedd.ingest.source import DumpBytes

__all__ = ["DumpBytes", "IngestResult", "Ingester", "article_uid", "utcnow"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `from feedd.ingest import source` (`feedd status`
    # lists the watch folder) must not load the ingest service and its matcher.
    if name == "DumpBytes":
        from feedd.ingest import source

        return source.DumpBytes
    if name in __all__:
        from feedd.ingest import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
