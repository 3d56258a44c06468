"""Rows to records: the helpers every store query shares, without the matcher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedd.model import DumpInfo


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def dump_info(row: Any) -> DumpInfo:
    m = row._mapping
    return DumpInfo(
        id=m["id"],
        name=m["name"],
        version=m["version"],
        status=m["status"],
        observed_at=m["observed_at"],
        ingested_at=m["ingested_at"],
        items=m["item_count"],
        new=m["new_count"],
        repeat=m["repeat_count"],
        update=m["update_count"],
        error=m["error"],
        location=m["location"],
        duration_ms=m["duration_ms"],
    )
