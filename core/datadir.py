"""The data directory: its layout and the facts fixed at creation (partition count).

    <data-dir>/rstq.json          format version, partition count, created at
    <data-dir>/meta/log/          metadata log (deployments, services)
    <data-dir>/partitions/<i>/log/         partition i's log segments
    <data-dir>/partitions/<i>/snapshots/   partition i's snapshots
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

DATA_FORMAT = 1
DEFAULT_PARTITIONS = 8


class DataDirError(Exception):
    pass


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

    def partition_dir(self, i: int) -> Path:
        return self.root / "partitions" / str(i)

    def partition_log_dir(self, i: int) -> Path:
        return self.partition_dir(i) / "log"

    @property
    def meta_log_dir(self) -> Path:
        return self.root / "meta" / "log"
