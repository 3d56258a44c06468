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
    name: str  # printable (feedd.ingest.source.printable_name)
    size: int
    mtime: float
    problem: str | None = None  # why it is set aside instead of read

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


def list_dumps(paths: list[Path], pattern: str = "*.txt") -> list[Path]:
    """Files named directly, plus matching files inside folders (not recursive).

    Only for counting; feedd.ingest.source examines each entry.
    """
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


# A file name may be 255 bytes (NAME_MAX on Linux filesystems); the reason file
# adds a suffix, and a second copy of a name adds ".N".
NAME_MAX = 255
_REASON = ".reason.txt"


def _fits(name: str, room: int) -> str:
    """``name``, shortened (with a hash of the whole, so that names stay apart)
    until it and ``room`` more bytes fit in NAME_MAX."""
    raw = os.fsencode(name)
    if len(raw) + room <= NAME_MAX:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(os.fsencode(suffix)) > 16:
        stem, suffix = name, ""
    tag = "~" + hashlib.sha256(raw).hexdigest()[:12] + (f".{suffix}" if suffix else "")
    keep = NAME_MAX - room - len(os.fsencode(tag))
    cut = os.fsencode(stem)[:keep].decode("utf-8", "ignore")
    return cut + tag


def move_aside(
    path: Path, folder: Path, reason: str | None = None, name: str | None = None
) -> Path:
    """Move into folder without overwriting; write <name>.reason.txt when rejected.

    ``name`` is what to call it there (default: its own name); too long a name
    is shortened so that the reason file fits beside it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(_fits(name or path.name, len(_REASON) + 8))
    target = folder / base.name
    n = 1
    while target.exists() or (reason and Path(f"{target}{_REASON}").exists()):
        target = folder / f"{base.stem}.{n}{base.suffix}"
        n += 1
    if reason is not None:
        reason_file = Path(f"{target}{_REASON}")
        tmp = reason_file.with_name(f".{reason_file.name}.tmp")
        tmp.write_text(reason + "\n", encoding="utf-8")
        os.replace(tmp, reason_file)
    shutil.move(str(path), str(target))
    return target
