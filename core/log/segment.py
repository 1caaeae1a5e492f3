"""Segment files: naming, header, creation and directory fsync.

A segment is `<first lsn, 20 digits>.seg`: a 24-byte header (magic, format version, first LSN
again, so a renamed file is caught) followed by records (`record`). The name alone gives a
segment's first LSN, so `first_lsn` survives trimming and restarts without any other metadata.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"RSTQLOG\x00"
VERSION = 1
SEG_HEADER = struct.Struct("<8sIIQ")  # magic, version, reserved, first lsn
SEG_HEADER_SIZE = SEG_HEADER.size
SUFFIX = ".seg"


def segment_name(first_lsn: int) -> str:
    return f"{first_lsn:020d}{SUFFIX}"


def encode_header(first_lsn: int) -> bytes:
    return SEG_HEADER.pack(MAGIC, VERSION, 0, first_lsn)


def header_problem(data: bytes | memoryview, first_lsn: int) -> str | None:
    """Why the header at the start of `data` is wrong for this segment, None if it is fine."""
    if len(data) < SEG_HEADER_SIZE:
        return "incomplete segment header"
    magic, version, _, lsn = SEG_HEADER.unpack_from(data)
    if magic != MAGIC:
        return "bad segment magic"
    if version != VERSION:
        return f"unsupported segment format version {version}"
    if lsn != first_lsn:
        return f"header says first lsn {lsn}, file name says {first_lsn}"
    return None


@dataclass(slots=True)
class Segment:
    first_lsn: int
    path: Path
    index: list[tuple[int, int]] = field(default_factory=list)  # sparse (lsn, offset)


def list_segments(directory: Path) -> list[Segment]:
    """Segments of a log directory in LSN order; other files are ignored."""
    found = []
    for entry in directory.iterdir():
        stem = entry.name.removesuffix(SUFFIX)
        if entry.name.endswith(SUFFIX) and stem.isdigit() and len(stem) == 20:
            found.append(Segment(int(stem), entry))
    return sorted(found, key=lambda s: s.first_lsn)


def fsync_dir(directory: Path) -> None:
    """Make a file creation/deletion/rename in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_segment(directory: Path, first_lsn: int) -> Segment:
    """Create (or reset a torn) segment holding only its header, durably, name included."""
    path = directory / segment_name(first_lsn)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, encode_header(first_lsn))
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(directory)
    return Segment(first_lsn, path)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write may write less than asked; loop until everything is handed to the OS."""
    with memoryview(data) as view:
        while view:
            n = os.write(fd, view)
            view = view[n:]
