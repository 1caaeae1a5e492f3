"""The data directory: its layout and the facts fixed at creation (partition count).

    <data-dir>/rstq.json          format version, partition count, created at
    <data-dir>/LOCK               held (flock) by the one server using the dir; holds its PID
    <data-dir>/meta/log/          metadata log (deployments, services)
    <data-dir>/partitions/<i>/log/         partition i's log segments
    <data-dir>/partitions/<i>/snapshots/   partition i's snapshots
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

DATA_FORMAT = 1
DEFAULT_PARTITIONS = 8


LOCK_FILE = "LOCK"


class DataDirError(Exception):
    pass


class DataDirLocked(DataDirError):
    """Another process holds the data dir's lock (`holder`: its PID, when it wrote one)."""

    def __init__(self, root: Path, holder: int | None) -> None:
        who = f"pid {holder}" if holder is not None else "another process"
        super().__init__(f"data dir {root} is in use by another rstq server ({who}); stop it "
                         "first, or start this one with another --data-dir")
        self.root = root
        self.holder = holder


class DataDirLock:
    """The exclusive lock of one data dir: `flock` on `<data-dir>/LOCK`, which holds the
    owner's PID. The kernel releases it when the process dies (even by SIGKILL), so a crash
    never leaves a stale lock; the file itself stays (removing it would race a new owner).

    One server per data dir: two would both append to the same logs and corrupt them. `flock`
    locks belong to the open file, so a second `acquire` in the same process fails too."""

    def __init__(self, root: Path, fd: int) -> None:
        self.root = root
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, root: str | os.PathLike[str]) -> DataDirLock:
        """Take the lock (creating the dir if needed); raises DataDirLocked at once if held."""
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLocked(path, _read_pid(path / LOCK_FILE)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the last descriptor of the open file drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_holder(root: str | os.PathLike[str]) -> int | None:
    """The PID holding `root`'s lock (0: held, PID unknown), None when nobody holds it.
    Reads only: probes the lock and lets go at once."""
    path = Path(root) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            pid = _read_pid(path)
            return pid if pid is not None else 0
        raise
    finally:
        os.close(fd)
    return None


def _read_pid(path: Path) -> int | None:
    # The holder writes its PID right after taking the lock: allow it a moment.
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


@dataclass(frozen=True)
class DataDir:
    root: Path
    partitions: int

    @classmethod
    def open(cls, root: str | os.PathLike[str], partitions: int | None = None) -> DataDir:
        """Open the data dir, creating it with `partitions` (default 8) if new.

        The partition count is recorded at creation and cannot change afterwards: keys are
        mapped to partitions by it."""
        path = Path(root)
        meta = path / "rstq.json"
        if meta.exists():
            info = json.loads(meta.read_text())
            if info.get("format") != DATA_FORMAT:
                raise DataDirError(f"{meta}: unknown data format {info.get('format')}")
            recorded = int(info["partitions"])
            if partitions is not None and partitions != recorded:
                raise DataDirError(
                    f"{path} was created with {recorded} partitions; cannot open with "
                    f"{partitions}")
            return cls(path, recorded)
        count = partitions or DEFAULT_PARTITIONS
        if count < 1 or count > 1024:
            raise DataDirError("partitions must be between 1 and 1024")
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / "rstq.json.tmp"
        tmp.write_text(json.dumps({"format": DATA_FORMAT, "partitions": count,
                                   "created_at_ms": int(time.time() * 1000)}))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, meta)
        return cls(path, count)

    @classmethod
    def existing(cls, root: str | os.PathLike[str]) -> DataDir:
        """An existing data dir, never created (tools that only inspect one)."""
        path = Path(root)
        if not (path / "rstq.json").is_file():
            raise DataDirError(f"{path} is not an rstq data dir (no rstq.json)")
        return cls.open(path)

    def partition_dir(self, i: int) -> Path:
        return self.root / "partitions" / str(i)

    def partition_log_dir(self, i: int) -> Path:
        return self.partition_dir(i) / "log"

    @property
    def meta_log_dir(self) -> Path:
        return self.root / "meta" / "log"
