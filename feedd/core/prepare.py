"""The pure part of ingesting a dump: parse it, key every line, fingerprint the new.

``prepare`` needs no database, so a backfill runs it for the next dumps in a
second process while the first one writes (``feedd.ingest.ahead``). Which texts
are new is the database's to say; the preparer guesses from the texts it has
already seen in this run and fingerprints the others. A wrong guess costs
time only: the ingester fingerprints any text it finds unprepared, and a
fingerprint is a pure function of the text, so where it was computed never
changes a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from feedd.core.fingerprint import (
    Fingerprint,
    FingerprintSettings,
    TextKey,
    fingerprint,
    text_key,
)
from feedd.core.parse import ParsedDump, ParseLimits, parse_dump


@dataclass(frozen=True)
class PreparedDump:
    parsed: ParsedDump
    keys: tuple[TextKey, ...]
    fingerprints: Mapping[int, Fingerprint] = field(default_factory=dict)  # by norm_hash


def prepare(
    data: bytes,
    limits: ParseLimits,
    settings: FingerprintSettings,
    seen: set[int] | None = None,
) -> PreparedDump:
    """Parse and key a dump; fingerprint each text whose key is not in ``seen``
    (and add it there). Raises InvalidDump like ``parse_dump``."""
    parsed = parse_dump(data, limits)
    keys = tuple(text_key(item.text) for item in parsed.items)
    fingerprints: dict[int, Fingerprint] = {}
    if seen is not None:
        for item, key in zip(parsed.items, keys, strict=True):
            if key.norm_hash not in seen:
                seen.add(key.norm_hash)
                fingerprints[key.norm_hash] = fingerprint(item.text, settings, key)
    return PreparedDump(parsed, keys, fingerprints)
