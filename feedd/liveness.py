"""The SQLite daemon's lock file, which also carries its heartbeat.

A SQLite daemon holds ``<database>.lock`` (flock) for as long as it runs. The
heartbeat goes into that file as well as into the database: while a long dump
holds SQLite's write lock, a heartbeat could not be written to the database at
all, and `feedd status` would call a busy daemon dead.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import make_url

from feedd.model import WorkerInfo


def lock_path(database_url: str) -> Path | None:
    """Where a SQLite database's daemon lock lives; None for other engines."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.lock")


def write(handle: TextIO, info: WorkerInfo) -> None:
    """Rewrite the held lock file with this heartbeat (one JSON line)."""
    values: dict[str, Any] = {
        k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(info).items()
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(values) + "\n")
    handle.flush()


def read(database_url: str) -> WorkerInfo | None:
    """The heartbeat in the lock file, if a daemon holds the lock now."""
    path = lock_path(database_url)
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: a daemon runs; its heartbeat is worth reading
        else:
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None  # nobody holds it: whatever it says is stale
        try:
            values = json.loads(handle.read())
            for key in ("started_at", "heartbeat_at", "last_scan_at", "next_scan_at"):
                if values.get(key):
                    values[key] = datetime.fromisoformat(values[key])
            if values.get("oldest_pending_at"):
                values["oldest_pending_at"] = datetime.fromisoformat(values["oldest_pending_at"])
            return WorkerInfo(**values)
        except (ValueError, TypeError):
            return None  # an older daemon's "pid N on host" line
