"""Dump files on disk: naming, ordering, bounded reading, setting aside.

This module is the only one that moves files. It never deletes one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

from feedd.errors import DumpVanished, InvalidDump

DUMP_NAME = re.compile(r"^(\d+)_([0-9a-fA-F]{16})\.txt$")
_TEMPORARY = ("*.part", "*.tmp", "*~", ".*", "*.reason.txt")
CHUNK = 1 << 20


@dataclass(frozen=True)
class DumpFile:
    path: Path
    name: str
    size: int
    mtime: float

    @property
    def seq(self) -> int | None:
        match = DUMP_NAME.match(self.name)
        return int(match.group(1)) if match else None

    @property
    def mtime_utc(self) -> datetime:
        return datetime.fromtimestamp(self.mtime, UTC)


def order_key(dump: DumpFile) -> tuple[int, float, str]:
    """Dump order: NNN of NNN_<hex>.txt first, then mtime and name for the rest."""
    seq = dump.seq
    if seq is not None:
        return (0, float(seq), dump.name)
    return (1, dump.mtime, dump.name)


def is_candidate_name(name: str, pattern: str) -> bool:
    return fnmatch(name, pattern) and not any(fnmatch(name, t) for t in _TEMPORARY)


def stat_dump(path: Path, *, follow_symlinks: bool = False, root: Path | None = None) -> DumpFile:
    """Raise InvalidDump for things that are not regular files we may read."""
    if path.is_symlink():
        target = path.resolve()
        if not follow_symlinks:
            raise InvalidDump(
                f"symlink to {target} not followed (set ingest.follow_symlinks = true to allow)"
            )
        if root is not None and not target.is_relative_to(root.resolve()):
            raise InvalidDump(f"symlink points outside the watch folder: {target}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DumpVanished() from None
    except PermissionError:
        raise InvalidDump("no permission to read the file") from None
    if not path.is_file():
        raise InvalidDump("not a regular file (a directory or a device)")
    return DumpFile(path, path.name, st.st_size, st.st_mtime)


def list_dumps(paths: list[Path], pattern: str = "*.txt") -> list[Path]:
    """Files named directly, plus matching files inside folders (not recursive)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(child for child in p.iterdir() if is_candidate_name(child.name, pattern))
        else:
            out.append(p)
    return out


def read_dump(path: Path, *, max_bytes: int, max_line_bytes: int) -> tuple[bytes, str]:
    """(content, sha256 hex), reading in chunks so no limit is passed in memory."""
    try:
        # O_NONBLOCK: a FIFO swapped in after the listing must not hang the
        # reader (open blocks until a writer appears); fstat on the open file
        # then judges what was really opened, not what was listed.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InvalidDump("not a regular file (a directory or a device)")
            if st.st_size > max_bytes:
                raise InvalidDump(
                    f"file is {st.st_size} bytes, over ingest.max_dump_bytes ({max_bytes}); "
                    "not read"
                )
            digest = hashlib.sha256()
            parts: list[bytes] = []
            total = 0
            line_length = 0
            while chunk := handle.read(CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise InvalidDump(f"file grew over ingest.max_dump_bytes ({max_bytes})")
                pieces = chunk.split(b"\n")
                line_length += len(pieces[0])
                if len(pieces) > 1:
                    longest = max(len(p) for p in pieces[1:-1]) if len(pieces) > 2 else 0
                    line_length = max(line_length, longest)
                    if line_length <= max_line_bytes:
                        line_length = len(pieces[-1])
                if line_length > max_line_bytes:
                    raise InvalidDump(
                        f"a line is longer than ingest.max_line_bytes ({max_line_bytes}); "
                        "not an article listing"
                    )
                digest.update(chunk)
                parts.append(chunk)
        return b"".join(parts), digest.hexdigest()
    except FileNotFoundError:
        raise DumpVanished() from None
    except PermissionError:
        raise InvalidDump("no permission to read the file") from None
    except IsADirectoryError:
        raise InvalidDump("not a regular file (a directory)") from None


def move_aside(path: Path, folder: Path, reason: str | None = None) -> Path:
    """Move into folder without overwriting; write <name>.reason.txt when rejected."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists() or (reason and Path(f"{target}.reason.txt").exists()):
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    if reason is not None:
        reason_file = Path(f"{target}.reason.txt")
        tmp = reason_file.with_name(reason_file.name + ".tmp")
        tmp.write_text(reason + "\n", encoding="utf-8")
        os.replace(tmp, reason_file)
    shutil.move(str(path), str(target))
    return target
