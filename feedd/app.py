"""The composition root: one function builds everything from a Config.

The CLI, the daemon and the tests all call ``build``; nothing else creates an
engine, a store or a feed writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from feedd.config import Config
from feedd.ingest import Ingester, utcnow
from feedd.store.engine import make_engine
from feedd.store.sql import SqlStore


@dataclass
class App:
    config: Config
    store: SqlStore
    ingester: Ingester
    now: Callable[[], datetime]

    def close(self) -> None:
        self.store.close()


def build(config: Config, *, now: Callable[[], datetime] = utcnow, upgrade: bool = True) -> App:
    """Connect, upgrade the schema to head, and wire the services together."""
    engine = make_engine(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms)
    store = SqlStore(engine)
    if upgrade:
        store.upgrade()
    return App(config=config, store=store, ingester=Ingester(store, config, now), now=now)
