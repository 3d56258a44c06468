"""The backfill helper: a second process that fingerprints dumps ahead.

Past the first PREPARE_AFTER dumps of a backfill (with ingest.prepare_ahead),
one helper process parses and fingerprints the next groups of dumps while the
ingesting process runs the database work: on 2 cores that takes most of a new
text's cost off the writing path (docs/performance.md). The helper only ever
computes; it never touches the database, so losing it loses nothing.
"""

from __future__ import annotations

import ctypes
import gc
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from feedd.core.fingerprint import Fingerprint, FingerprintSettings
from feedd.core.parse import ParseLimits
from feedd.core.prepare import prepare
from feedd.errors import InvalidDump
from feedd.ingest.source import DumpBytes

log = logging.getLogger("feedd.ingest")

# Small backfills do not pay for starting the helper.
PREPARE_AFTER = 64
# Dumps go to the helper in groups: every task wakes the executor's thread in
# this process, whose GIL hand-offs slowed each database call ~3x when tasks
# were single dumps.
GROUP = 16  # dumps per task
GROUP_BYTES = 8 << 20  # and at most this many bytes per task
IN_FLIGHT = 3  # tasks prepared ahead of the group being written

Prepared = Mapping[int, Fingerprint]  # norm_hash -> fingerprint

_SEEN: set[int] = set()  # in the helper: keys of texts it fingerprinted
_PR_SET_PDEATHSIG = 1


def _prepare_ahead(
    group: list[bytes], limits: ParseLimits, settings: FingerprintSettings
) -> list[Prepared]:
    # Only the fingerprints go back: parsing again in the ingester costs less
    # than pickling the parsed dump across.
    if len(_SEEN) > 1_000_000:
        _SEEN.clear()
    out: list[Prepared] = []
    for data in group:
        try:
            out.append(prepare(data, limits, settings, _SEEN).fingerprints)
        except InvalidDump:
            out.append({})  # the ingester parses it too, and records why it failed
    return out


def _die_with_parent(parent: int) -> None:
    """The helper must not outlive a backfill killed with -9 (68 MB, forever).

    Linux: the kernel sends SIGKILL when the parent thread exits. Elsewhere,
    and as a net, a thread watches for the parent to go (the helper is then
    re-parented, and getppid changes).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="feedd-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _helper_init(parent: int) -> None:
    # Ctrl-C reaches the whole process group: the ingest process handles it
    # and shuts the helper down, which must not die first with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)


class Preparer:
    """One helper process that prepares dumps while the ingester writes."""

    def __init__(self, limits: ParseLimits, settings: FingerprintSettings) -> None:
        self.limits = limits
        self.settings = settings
        # fork: the child starts with feedd already imported (spawn would
        # import numpy and friends again, ~0.5 s).
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        # The forked helper shares this process's pages until either side
        # writes one, and a collection pass writes the header of every object
        # it visits: frozen, today's objects are left out of both sides'
        # collections, so the shared pages stay shared (the helper's memory
        # of its own is what it computes). Unfrozen when the backfill ends.
        gc.freeze()
        self.pool = ProcessPoolExecutor(
            1, mp_context=context, initializer=_helper_init, initargs=(os.getpid(),)
        )
        self.broken = False

    def submit(self, group: list[bytes]) -> Future[list[Prepared]] | None:
        if self.broken:
            return None
        try:
            return self.pool.submit(_prepare_ahead, group, self.limits, self.settings)
        except BrokenProcessPool:
            self._lost()
            return None

    def results(self, future: Future[list[Prepared]] | None, count: int) -> list[Prepared | None]:
        """The group's fingerprints; None each when the helper is gone (the
        ingester then fingerprints them itself: slower, never different)."""
        if future is not None:
            try:
                return list(future.result())
            except BrokenProcessPool:
                self._lost()
        return [None] * count

    def _lost(self) -> None:
        if not self.broken:
            self.broken = True
            log.warning("the helper process that fingerprints ahead died; continuing without it")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _groups(items: Iterable[DumpBytes]) -> Iterator[list[DumpBytes]]:
    group: list[DumpBytes] = []
    size = 0
    for item in items:
        group.append(item)
        size += len(item.data)
        if len(group) >= GROUP or size >= GROUP_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def with_fingerprints(
    dumps: Iterable[DumpBytes], limits: ParseLimits, settings: FingerprintSettings
) -> Iterator[tuple[DumpBytes, Prepared | None]]:
    """The dumps in order, each with the fingerprints the helper made for it
    (None for the first PREPARE_AFTER, and whenever the helper is lost)."""
    items = iter(dumps)
    for _ in range(PREPARE_AFTER):
        dump = next(items, None)
        if dump is None:
            return
        yield dump, None
    first = next(items, None)
    if first is None:
        return
    preparer = Preparer(limits, settings)
    try:
        pending: list[tuple[list[DumpBytes], Future[list[Prepared]] | None]] = []
        for group in _groups(itertools.chain([first], items)):
            readable = [dump.data for dump in group if dump.error is None]
            pending.append((group, preparer.submit(readable)))
            while len(pending) > IN_FLIGHT:
                yield from _take(preparer, *pending.pop(0))
        while pending:
            yield from _take(preparer, *pending.pop(0))
    finally:
        preparer.close()


def _take(
    preparer: Preparer, group: list[DumpBytes], future: Future[list[Prepared]] | None
) -> Iterator[tuple[DumpBytes, Prepared | None]]:
    readable = [dump for dump in group if dump.error is None]
    prepared = dict(zip(map(id, readable), preparer.results(future, len(readable)), strict=True))
    for dump in group:
        yield dump, prepared.get(id(dump))
