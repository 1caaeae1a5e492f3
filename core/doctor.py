"""`rstq doctor`: check a data dir without changing it, and repair a damaged log on request.

What is checked: who holds the data dir's lock; every log (metadata, each partition) passes the
same checks recovery makes at start (`rstq.core.log.recovery`: checksums, dense LSNs, finished
writes), without cutting anything; every snapshot of a partition loads; and a partition's
newest loadable snapshot and its log join without a gap.

A log that fails its checks mid-file (not a torn tail, which the next start cuts by itself)
keeps the server from starting. The repair truncates that log after its last good record
(whole writes only), moves whatever it removes under `<data-dir>/doctor/<time>/` rather than
deleting it, and says what it removed. What is lost are the records after the bad one, except
what a partition's snapshot already holds: when the newest snapshot reaches past the last good
record, the log restarts right after the snapshot instead, so that new records never reuse an
LSN the snapshot covers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rstq.core.datadir import DataDir, lock_holder
from rstq.core.log import record
from rstq.core.log.api import LogCorruption
from rstq.core.log.recovery import check_active, check_sealed
from rstq.core.log.segment import (
    SEG_HEADER_SIZE,
    fsync_dir,
    header_problem,
    list_segments,
    write_new_segment,
)


@dataclass
class Damage:
    """Where a log fails its checks and what a repair would remove."""

    path: Path  # the segment holding the first bad record
    offset: int  # of the bad record (or 0: the segment itself is bad)
    reason: str
    cut_offset: int  # `path` is truncated to this size (0: `path` is removed whole)
    later_segments: list[Path]  # removed too
    lost_bytes: int  # bytes removed in all
    found_after: int  # intact-looking records found after the damage (lost with it)
    highest_after: int | None  # the highest LSN among them


@dataclass
class LogReport:
    name: str  # "meta", "partition 3"
    directory: Path
    segments: int = 0
    first_lsn: int = 1
    last_good_lsn: int = 0  # the last record of a finished write before any damage
    torn_tail_bytes: int = 0  # an unfinished last write: the next start cuts it (normal)
    damage: Damage | None = None

    @property
    def records(self) -> int:
        return max(0, self.last_good_lsn - self.first_lsn + 1)


@dataclass
class SnapshotReport:
    path: Path
    lsn: int
    error: str | None = None  # None: loads


@dataclass
class PartitionReport:
    index: int
    log: LogReport
    snapshots: list[SnapshotReport] = field(default_factory=list)

    @property
    def snapshot_lsn(self) -> int:
        """The LSN of the newest snapshot that loads (0: none), where recovery starts."""
        return max((s.lsn for s in self.snapshots if s.error is None), default=0)

    @property
    def gap(self) -> str | None:
        """Records neither the log nor a snapshot holds: recovery refuses to start."""
        if self.log.damage is not None or self.log.segments == 0:
            return None
        if self.log.first_lsn > self.snapshot_lsn + 1:
            return (f"the log starts at lsn {self.log.first_lsn} but the newest snapshot that "
                    f"loads ends at lsn {self.snapshot_lsn}: records "
                    f"{self.snapshot_lsn + 1}..{self.log.first_lsn - 1} are gone")
        return None


@dataclass
class Report:
    root: Path
    partitions: int
    holder: int | None  # PID holding the lock (0: held, PID unknown), None: free
    meta: LogReport
    parts: list[PartitionReport]

    @property
    def logs(self) -> Iterator[tuple[LogReport, int]]:
        """Every log with the snapshot LSN its repair must respect."""
        yield self.meta, 0
        for p in self.parts:
            yield p.log, p.snapshot_lsn

    @property
    def healthy(self) -> bool:
        return all(lg.damage is None for lg, _ in self.logs) and not any(
            p.gap for p in self.parts)


def examine(root: str | os.PathLike[str]) -> Report:
    """Check the data dir at `root`; reads only (raises DataDirError if it is not one)."""
    dd = DataDir.existing(root)
    meta = check_log("meta", dd.meta_log_dir)
    parts = []
    for i in range(dd.partitions):
        parts.append(PartitionReport(i, check_log(f"partition {i}", dd.partition_log_dir(i)),
                                     check_snapshots(dd.partition_dir(i))))
    return Report(dd.root, dd.partitions, lock_holder(dd.root), meta, parts)


def check_log(name: str, directory: Path) -> LogReport:
    """The checks recovery makes on open (`rstq.core.log.recovery`), without cutting."""
    rep = LogReport(name, directory)
    if not directory.is_dir():
        return rep
    segs = list_segments(directory)
    rep.segments = len(segs)
    if not segs:
        return rep
    rep.first_lsn = segs[0].first_lsn
    rep.last_good_lsn = rep.first_lsn - 1
    expected = rep.first_lsn
    for i, seg in enumerate(segs):
        later = [s.path for s in segs[i + 1:]]
        data = seg.path.read_bytes()
        if seg.first_lsn != expected:
            rep.damage = _damage(seg.path, data, 0, f"segment starts at lsn {seg.first_lsn}, "
                                 f"expected {expected}", 0, later)
            return rep
        try:
            if i < len(segs) - 1:
                expected = check_sealed(data, str(seg.path), seg.first_lsn).next_lsn
                rep.last_good_lsn = expected - 1
                continue
            scan = check_active(data, str(seg.path), seg.first_lsn)
        except LogCorruption as e:
            if header_problem(data, seg.first_lsn):
                cut = 0  # the segment itself is bad: it goes
            else:
                good = record.scan(data, SEG_HEADER_SIZE, seg.first_lsn)
                cut = good.committed_end
                rep.last_good_lsn = good.committed_next_lsn - 1
            rep.damage = _damage(seg.path, data, e.offset, e.reason, cut, later)
            return rep
        if scan is None:  # its creation was torn: reset to an empty segment at start
            rep.torn_tail_bytes = len(data) - SEG_HEADER_SIZE if len(data) > 0 else 0
        else:
            rep.last_good_lsn = scan.committed_next_lsn - 1
            rep.torn_tail_bytes = len(data) - scan.committed_end
    return rep


def _damage(path: Path, data: bytes, offset: int, reason: str, cut: int,
            later: list[Path]) -> Damage:
    """`path` is cut to `cut` bytes (0: removed whole); `later` segments are removed."""
    lost = max(0, len(data) - cut) + sum(p.stat().st_size for p in later)
    found, highest = _salvage(data, max(offset, SEG_HEADER_SIZE))
    for p in later:
        n, top = _salvage(p.read_bytes(), SEG_HEADER_SIZE)
        found += n
        highest = max(highest or 0, top or 0) or None
    return Damage(path, offset, reason, cut, later, lost, found, highest)


def _salvage(data: bytes, offset: int) -> tuple[int, int | None]:
    """How many intact records follow `offset` (resyncing past bad bytes), and the highest
    LSN among them: what a repair would remove beyond the damage."""
    found, highest, pos = 0, None, offset
    while pos < len(data):
        try:
            first = record.decode_at(data, pos).lsn
        except record.Invalid:
            nxt = record.find_later_write(data, pos + 1, 0)
            if nxt is None:
                break
            pos = nxt
            continue
        scan = record.scan(data, pos, first)
        found += scan.next_lsn - first
        highest = max(highest or 0, scan.next_lsn - 1)
        pos = max(scan.end, pos + 1)
    return found, highest


def check_snapshots(partition_dir: Path) -> list[SnapshotReport]:
    from rstq.core.snapshot import load_snapshot

    root = partition_dir / "snapshots"
    if not root.is_dir():
        return []
    out = []
    for snap in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        lsn = int(snap.name) if snap.name.isdigit() else 0
        try:
            load_snapshot(snap)
        except Exception as e:  # noqa: BLE001 - every failure is a finding to report
            out.append(SnapshotReport(snap, lsn, f"{type(e).__name__}: {e}"))
        else:
            out.append(SnapshotReport(snap, lsn))
    return out


# --- repair ----------------------------------------------------------------------------------


def repair(report: Report) -> list[str]:
    """Repair every damaged log of `report` (the caller holds the data dir's lock). Returns
    what was done, one line each. Removed bytes are moved under `<root>/doctor/<time>/`."""
    backup = report.root / "doctor" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    done: list[str] = []
    for lg, snapshot_lsn in report.logs:
        if lg.damage is not None:
            done += repair_log(report.root, lg, snapshot_lsn, backup)
    return done


def repair_log(root: Path, lg: LogReport, snapshot_lsn: int, backup: Path) -> list[str]:
    d = lg.damage
    assert d is not None
    dest = backup / lg.directory.relative_to(root)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    if d.cut_offset > 0:
        with open(d.path, "rb") as f:
            f.seek(d.cut_offset)
            tail = f.read()
        kept = dest / f"{d.path.name}.from-{d.cut_offset}"
        kept.write_bytes(tail)
        _truncate(d.path, d.cut_offset)
        done.append(f"{lg.name}: truncated {d.path} to {d.cut_offset} bytes (after lsn "
                    f"{lg.last_good_lsn}); the {len(tail)} bytes removed are in {kept}")
    else:
        shutil.move(str(d.path), dest / d.path.name)
        done.append(f"{lg.name}: moved {d.path} to {dest / d.path.name}")
    for p in d.later_segments:
        shutil.move(str(p), dest / p.name)
        done.append(f"{lg.name}: moved {p} to {dest / p.name}")
    restart = lg.last_good_lsn + 1
    if snapshot_lsn > lg.last_good_lsn:
        # The snapshot holds records the truncated log lacks: continue the log after it, or
        # new records would take LSNs the snapshot already covers (and be skipped at replay).
        for seg in list_segments(lg.directory):
            shutil.move(str(seg.path), dest / seg.path.name)
            done.append(f"{lg.name}: moved {seg.path} to {dest / seg.path.name} (the snapshot "
                        f"at lsn {snapshot_lsn} holds its records)")
        restart = snapshot_lsn + 1
    if not list_segments(lg.directory):
        write_new_segment(lg.directory, restart)
        done.append(f"{lg.name}: started a new, empty segment at lsn {restart}")
    fsync_dir(lg.directory)
    return done


def _truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
