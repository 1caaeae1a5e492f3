"""How a partition's state survives restarts: where recovery starts and what lets the log go.

The log is the ground truth either way; what is persisted is a state at some applied LSN, and
recovery replays the log after it. Two implementations:

- `StorePersistence` (the default): the partition store (`rstq.core.store`, RocksDB). Every
  applied batch writes what it changed to the store (`StateWriter`), atomically with the
  applied LSN, not fsynced (the log is). A checkpoint is a store checkpoint (hard-linked
  files, milliseconds), made every `checkpoint_every` commands; the newest `KEEP` are kept and
  the log is trimmed below the oldest, so falling back to it (a live store that does not
  open) still finds every record after it. Restart reads the store, not a snapshot file.
- `SnapshotPersistence` (the format before the store, still read to migrate): the whole state
  as Arrow files every so often (O(state) each time); the log is trimmed below the oldest.

A data dir written with snapshots opens with the store: the newest snapshot is loaded and
written into the new store once ("migrated"), then the log tail is replayed as usual.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Protocol

from rstq.core.changes import ChangeFeed
from rstq.core.model import PartitionState
from rstq.core.snapshot import load_latest, oldest_snapshot_lsn, write_snapshot
from rstq.core.store import StoreError, StoreLockedError, open_store
from rstq.core.store import state as stored
from rstq.core.store.api import PartitionStore

log = logging.getLogger(__name__)

KEEP = 2  # checkpoints (or snapshots) kept: the newest may be damaged, the older one is there
CHECKPOINT_EVERY = 20_000  # applied commands between store checkpoints
REOPEN_EVERY_S = 5.0


class Persistence(Protocol):
    def recover(self, partition_id: int, partitions: int, log_end: int) -> PartitionState:
        """The persisted state (a fresh one if none) at an LSN <= `log_end` (the log's last
        record); the processor replays the log after its applied LSN, then `replayed`."""

    def replayed(self, state: PartitionState) -> None: ...

    def applied(self, state: PartitionState) -> None:
        """After each applied batch (on the processor's loop)."""

    def checkpoint(self, state: PartitionState) -> int:
        """Persist a restart point (may run in a thread; the state does not change
        meanwhile); returns its LSN."""

    def trim_below(self) -> int:
        """The log may be trimmed below this LSN (0: keep everything)."""

    def due(self, since: int, state: PartitionState) -> bool:
        """Whether a checkpoint is due after `since` applied commands."""

    def close(self) -> None: ...


class SnapshotPersistence:
    """Whole-state Arrow snapshots (rstq.core.snapshot)."""

    def __init__(self, directory: Path, snapshot_every: int | None = None) -> None:
        self.directory = directory
        self.snapshot_every = snapshot_every

    def recover(self, partition_id: int, partitions: int, log_end: int = 0) -> PartitionState:
        snap = load_latest(self.directory)
        if snap is None:
            return PartitionState(partition_id, partitions)
        if (snap.partition_id, snap.partitions) != (partition_id, partitions):
            raise RuntimeError(f"snapshot in {self.directory} is for another partition")
        return snap

    def replayed(self, state: PartitionState) -> None:
        pass

    def applied(self, state: PartitionState) -> None:
        pass

    def checkpoint(self, state: PartitionState) -> int:
        write_snapshot(self.directory, state, keep=KEEP)
        return state.applied_lsn

    def trim_below(self) -> int:
        return oldest_snapshot_lsn(self.directory) + 1

    def due(self, since: int, state: PartitionState) -> bool:
        if self.snapshot_every is not None:
            return since >= self.snapshot_every
        # Writing a snapshot costs O(state): at least AUTO_MIN commands apart, and at least
        # AUTO_FACTOR per state object, so its CPU per command stays flat as the state grows.
        return since >= max(AUTO_MIN, AUTO_FACTOR * (len(state.invocations) + len(state.kv)))

    def close(self) -> None:
        pass


AUTO_MIN = 20_000
AUTO_FACTOR = 4


class StorePersistence:
    """The partition store, written after every batch; checkpoints for restart points."""

    def __init__(self, directory: Path, engine: str = "rocksdb",
                 checkpoint_every: int | None = None, cache_bytes: int | None = None) -> None:
        self.directory = directory
        self.engine = engine
        self.checkpoint_every = checkpoint_every or CHECKPOINT_EVERY
        self.cache_bytes = cache_bytes
        self.store: PartitionStore | None = None
        self.writer: stored.StateWriter | None = None
        self._feed: ChangeFeed | None = None
        self.write_s = 0.0  # time spent writing batches (a statistic)
        self.behind = False  # the last write was refused: the store is behind the state
        self._reopened_at = 0.0

    @property
    def store_dir(self) -> Path:
        return self.directory / "store"

    @property
    def checkpoints_dir(self) -> Path:
        return self.directory / "checkpoints"

    def recover(self, partition_id: int, partitions: int, log_end: int) -> PartitionState:
        self.directory.mkdir(parents=True, exist_ok=True)
        store = self._open_live()
        lsn = stored.applied_lsn(store)
        if lsn is not None and lsn > log_end:
            store = self._behind_the_log(store, lsn, log_end)
            lsn = stored.applied_lsn(store)
        if lsn is None:  # a new store: a fresh partition, or one written with snapshots
            state = SnapshotPersistence(self.directory).recover(partition_id, partitions)
            migrated = state.applied_lsn > 0
        else:
            state = stored.load(store, partition_id, partitions)
            migrated = False
        self.store = store
        self.writer = stored.StateWriter(store, state)
        if lsn is None:
            self.writer.write_all(state, sync=True)  # the store now exists, with its LSN
            if migrated:
                log.warning("partition %d: state migrated from the snapshot at lsn %d into "
                            "the partition store (%s)", partition_id, state.applied_lsn,
                            self.store_dir)
        self._feed = state.changes.subscribe()
        return state

    def _open_live(self) -> PartitionStore:
        """The live store, or (when it does not open) the newest checkpoint that does."""
        try:
            return open_store(self.store_dir, self.engine, cache_bytes=self.cache_bytes)
        except StoreLockedError:
            raise  # another owner: never touch its files
        except StoreError as e:
            if not self.store_dir.exists():
                raise
            failed = e
        aside = self.store_dir.with_name(f"store.damaged-{int(time.time())}")
        self.store_dir.rename(aside)
        for cp in reversed(self._checkpoints()):
            store = self._restore(cp)
            if store is None:
                continue
            log.error("partition store %s did not open (%s): moved to %s, restored from "
                      "checkpoint %s", self.store_dir, failed, aside, cp.name)
            return store
        raise StoreError(f"partition store {self.store_dir} does not open ({failed}) and no "
                         f"checkpoint does (it was moved to {aside})")

    def _restore(self, cp: Path) -> PartitionStore | None:
        """Checkpoint `cp` copied in as the live store, opened; None (and nothing left behind)
        when it does not open."""
        try:
            shutil.copytree(cp, self.store_dir)
            return open_store(self.store_dir, self.engine, cache_bytes=self.cache_bytes)
        except (StoreError, OSError) as e:
            log.warning("checkpoint %s does not open (%s)", cp, e)
            shutil.rmtree(self.store_dir, ignore_errors=True)
            return None

    def _behind_the_log(self, store: PartitionStore, lsn: int, log_end: int) -> PartitionStore:
        """The store is ahead of the log (its tail was cut: `rstq doctor --repair`, a machine
        crash with `--fsync none`). The log is the ground truth: start again from the newest
        checkpoint at or below its end, or from nothing when the log still starts at 1."""
        store.close()
        aside = self.store_dir.with_name(f"store.ahead-{int(time.time())}")
        self.store_dir.rename(aside)
        for cp in reversed(self._checkpoints()):
            if int(cp.name) > log_end:
                shutil.rmtree(cp, ignore_errors=True)  # from beyond the log: useless now
                continue
            restored = self._restore(cp)
            if restored is None:
                continue
            log.warning("partition store at lsn %d is ahead of the log (ends at %d): moved to "
                        "%s, restarting from checkpoint %s", lsn, log_end, aside, cp.name)
            return restored
        log.warning("partition store at lsn %d is ahead of the log (ends at %d): moved to %s, "
                    "rebuilt from the log", lsn, log_end, aside)
        return open_store(self.store_dir, self.engine, cache_bytes=self.cache_bytes)

    def replayed(self, state: PartitionState) -> None:
        self.applied(state)

    def applied(self, state: PartitionState) -> None:
        """Write what the batch changed. A store that refuses (a full disk) stops nothing:
        the log holds the batch; its keys stay pending and are written with a later batch
        (checkpoints wait until then)."""
        assert self.writer is not None and self._feed is not None
        t0 = time.perf_counter()
        changes = self._feed.take()
        try:
            self.writer.write(state, changes)
        except (StoreError, OSError, ValueError) as e:  # ValueError: a key the store refuses
            for table, keys in changes.items():  # written with the next batch, as they are then
                self._feed.keys[table] |= keys
            if not self.behind:
                log.warning("partition %d: the store refused a write (%s); the log holds "
                            "everything, the store catches up when it can", state.partition_id,
                            e)
            self.behind = True
            self._reopen_if_stuck()
        else:
            if self.behind:
                log.warning("partition %d: the store caught up", state.partition_id)
            self.behind = False
        self.write_s += time.perf_counter() - t0

    def _reopen_if_stuck(self) -> None:
        """RocksDB stops taking writes after some I/O errors (its background error) until it
        is reopened: try that, at most every few seconds."""
        now = time.monotonic()
        if now - self._reopened_at < REOPEN_EVERY_S:
            return
        self._reopened_at = now
        if self.store is not None:
            try:
                self.store.close()
            except StoreError as e:
                log.warning("closing the stuck store: %s", e)
            self.store = None
        try:
            self.store = open_store(self.store_dir, self.engine, cache_bytes=self.cache_bytes)
        except (StoreError, OSError) as e:
            log.warning("reopening the store failed (%s); retrying later", e)
            return
        assert self.writer is not None
        self.writer.store = self.store

    def checkpoint(self, state: PartitionState) -> int:
        if self.behind or self.store is None:
            raise StoreError("the store is behind the state (a refused write): no checkpoint")
        root = self.checkpoints_dir
        root.mkdir(exist_ok=True)
        lsn = state.applied_lsn
        final = root / f"{lsn:020d}"
        if not final.exists():
            self.store.checkpoint(final)
        for old in self._checkpoints()[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        return lsn

    def _checkpoints(self) -> list[Path]:
        root = self.checkpoints_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if p.name.isdigit())

    def trim_below(self) -> int:
        cps = self._checkpoints()
        return int(cps[0].name) + 1 if cps else 0

    def due(self, since: int, state: PartitionState) -> bool:
        return since >= self.checkpoint_every

    def close(self) -> None:
        if self.store is not None:
            store, self.store = self.store, None
            try:
                store.close()
            except StoreError as e:  # the log holds what it lacks: replayed at the next start
                log.warning("partition store did not close cleanly: %s", e)
