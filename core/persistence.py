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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rstq.core.changes import ChangeFeed, Keyed
from rstq.core.model import COMPLETED, PartitionState
from rstq.core.snapshot import load_latest, oldest_snapshot_lsn, write_snapshot
from rstq.core.store import StoreError, StoreLockedError, keys, open_store, records
from rstq.core.store import state as stored
from rstq.core.store.api import PartitionStore, Snapshot
from rstq.core.store.history import (
    History,
    SegmentMeta,
    SegmentSink,
    SegmentWriter,
    new_segment_id,
)

log = logging.getLogger(__name__)

MOVE_AFTER_MS = 300_000  # hot completed invocations older than this move, however few
SEGMENT_ROWS = 4096  # completed invocations in the hot store that make a history segment
MAX_SEGMENT_ROWS = 65_536
BUILD_CHUNK = 256  # invocations decoded at a time while a move builds its segment
DROP_GRACE_MS = 60_000  # a segment goes this long after its last row expired
SEGMENTS_FILE = "rstq-segments"  # in a checkpoint: the history segments it refers to
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


@dataclass
class HistoryMove:
    """One move of completed invocations from the hot store into a segment."""

    ids: list[str]
    snapshot: Snapshot
    feed: ChangeFeed  # what apply touches meanwhile (those stay hot)
    segment_id: str
    created_lsn: int
    journal_len: dict[str, int] = field(default_factory=dict)
    meta: SegmentMeta | None = None


class StorePersistence:
    """The partition store, written after every batch; checkpoints for restart points."""

    def __init__(self, directory: Path, engine: str = "rocksdb",
                 checkpoint_every: int | None = None, cache_bytes: int | None = None,
                 cache_size: int | None = None, segment_rows: int | None = None) -> None:
        self.directory = directory
        self.engine = engine
        self.checkpoint_every = checkpoint_every or CHECKPOINT_EVERY
        self.cache_bytes = cache_bytes
        self.cache_size = cache_size
        self.segment_rows = segment_rows or SEGMENT_ROWS
        self.history = History(directory / "history")
        self._moving = threading.Lock()  # held from a history move's start to its commit
        self.store: PartitionStore | None = None
        self.writer: stored.StateWriter | None = None
        self._feed: ChangeFeed | None = None
        self.write_s = 0.0  # time spent writing batches (a statistic)
        self.moves = 0  # history segments written
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
        backing = stored.StoreBacking(store, self.history)
        if lsn is None:  # a new store: a fresh partition, or one written with snapshots
            state = SnapshotPersistence(self.directory).recover(partition_id, partitions)
            migrated = state.applied_lsn > 0
        else:
            self.history.load(store)
            state = stored.load(store, partition_id, partitions, backing, self.cache_size)
            migrated = False
        self.store = store
        self.writer = stored.StateWriter(store, state)
        if lsn is None:
            self.writer.write_all(state, sync=True)  # the store now exists, with its LSN
            if migrated:
                log.warning("partition %d: state migrated from the snapshot at lsn %d into "
                            "the partition store (%s)", partition_id, state.applied_lsn,
                            self.store_dir)
            # From now on completed invocations and cold objects live on disk too.
            state.invocations.backing = backing
            state.kv.backing = backing
            state.kv.lru.update((obj, None) for obj in state.kv.mem)
            state.invocations.cache_size, state.kv.cache_size = stored.caches(self.cache_size)
            state.invocations.evict()
            state.kv.evict()
        self._collect()  # segment files of a move that did not commit (a crash)
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
            self.writer.write(state, changes, history=self.history)
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
            state.invocations.evict()
            state.kv.evict()
        self.write_s += time.perf_counter() - t0

    # --- history: completed invocations move into segments --------------------------------

    def move_due(self, state: PartitionState) -> bool:
        """A segment's worth of completed invocations in the hot store, or a few that have
        been there for a while (a quiet partition moves them too: its history is then
        scanned, and dropped when expired, like any other)."""
        table = state.invocations
        due = len(table.hot_completed) >= self.segment_rows or (
            table.hot_completed and table.now - table.hot_since >= MOVE_AFTER_MS)
        return bool(due) and not self.behind and self.store is not None \
            and not self._moving.locked()

    def start_move(self, state: PartitionState) -> HistoryMove | None:
        """Begin moving the hot completed invocations into a new segment (on the loop)."""
        if not self.move_due(state) or not self._moving.acquire(blocking=False):
            return None
        assert self.store is not None
        ids = sorted(state.invocations.hot_completed)[:MAX_SEGMENT_ROWS]
        return HistoryMove(ids, self.store.snapshot(), state.changes.subscribe(),
                           new_segment_id(state.applied_lsn), state.applied_lsn)

    def build_move(self, move: HistoryMove) -> None:
        """Read the invocations from the move's store snapshot and write the segment file
        (in a thread: the partition goes on meanwhile), `BUILD_CHUNK` invocations at a time."""
        directory, sid = self.history.directory, move.segment_id
        writer = SegmentWriter(directory, sid, move.created_lsn)
        sinks: list[SegmentSink] = []
        for make in list(self.history.encoders):
            try:
                sinks.append(make(directory, sid))
            except Exception:  # noqa: BLE001 - derived files are rebuilt when read
                log.exception("history segment %s: encoder failed", sid)
        ids = sorted(move.ids, key=keys.inv_raw)  # the segment's order
        with move.snapshot as view:
            for start in range(0, len(ids), BUILD_CHUNK):
                invs = []
                for inv_id in ids[start:start + BUILD_CHUNK]:
                    raw = view.get(keys.status_key(inv_id))
                    if raw is None:
                        continue
                    inv = stored.read_invocation(view, inv_id, raw)
                    if inv.status == COMPLETED:
                        invs.append(inv)
                        move.journal_len[inv_id] = len(inv.journal)
                writer.add(invs)
                for sink in list(sinks):
                    try:
                        sink.add(invs)
                    except Exception:  # noqa: BLE001 - as above
                        log.exception("history segment %s: encoder failed", sid)
                        sinks.remove(sink)
        move.meta = writer.finish()
        for sink in sinks:
            try:
                sink.finish()
            except Exception:  # noqa: BLE001 - as above
                log.exception("history segment %s: encoder failed", sid)

    def commit_move(self, move: HistoryMove, state: PartitionState) -> None:
        """Record the segment and drop the hot rows it replaces, in one store batch (on the
        loop, between two applied batches). Invocations touched since the move began keep
        their hot rows; their copy in the segment is tombstoned."""
        try:
            assert self.store is not None and move.meta is not None
            changed = move.feed.take()[Keyed.INVOCATIONS]
            if self.behind:
                raise StoreError("the store is behind the state: history move abandoned")
            b = self.store.batch()
            moved, void = [], []
            for inv_id, n in move.journal_len.items():
                if inv_id in changed:
                    b.put(keys.tombstone_key(move.segment_id, inv_id), b"")
                    void.append(keys.inv_raw(inv_id))
                    continue
                b.delete(keys.status_key(inv_id))
                for i in range(n):
                    b.delete(keys.journal_key(inv_id, i))
                b.put(keys.history_key(inv_id), move.segment_id.encode())
                moved.append(inv_id)
            b.put(keys.segment_key(move.segment_id), records.encode(move.meta))
            self.store.write(b)
            self.history.add(move.meta)
            for raw in void:
                self.history.tombstone(move.segment_id, raw)
            state.invocations.moved(moved, move.segment_id)
            for inv_id in moved:  # the SQL views drop their hot rows (history has them)
                state.changes.mark(Keyed.INVOCATIONS, inv_id)
            self.moves += 1
        finally:
            state.changes.unsubscribe(move.feed)
            self._moving.release()

    def abort_move(self, move: HistoryMove, state: PartitionState) -> None:
        state.changes.unsubscribe(move.feed)
        move.snapshot.close()
        self._moving.release()

    def drop_expired(self, now_ms: int) -> int:
        """Drop the segments whose every row expired (whole: manifest row, index rows,
        tombstones). The files go later (`_collect`), once no kept checkpoint needs them."""
        if self.store is None or self.behind:
            return 0
        dropped = 0
        for sid in self.history.expired(now_ms, DROP_GRACE_MS):
            seg = self.history.segments[sid]
            b = self.store.batch()
            mine = sid.encode()
            for raw in seg.table.column("id").to_pylist():
                assert isinstance(raw, bytes)
                if self.store.get(keys.history_key(raw)) == mine:  # not a newer copy's
                    b.delete(keys.history_key(raw))
            for key, _ in self.store.iterate_prefix(keys.tombstone_prefix(sid)):
                b.delete(key)
            b.delete(keys.segment_key(sid))
            self.store.write(b)
            self.history.drop(sid)
            dropped += 1
        return dropped

    def _collect(self) -> None:
        """Delete segment files that neither the live store nor a kept checkpoint lists."""
        if not self._moving.acquire(blocking=False):
            return  # a move is writing its file: next time
        try:
            referenced: set[str] = set()
            for cp in self._checkpoints():
                listed = cp / SEGMENTS_FILE
                try:
                    referenced |= set(listed.read_text().split())
                except OSError:
                    pass  # an older checkpoint without a list: it has no segments
            self.history.collect(referenced)
        finally:
            self._moving.release()

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
        self.drop_expired(state.invocations.now)
        final = root / f"{lsn:020d}"
        if not final.exists():
            self.store.checkpoint(final)
            # After: a move committing meanwhile makes this a superset, which keeps files.
            segments = " ".join(sorted(self.history.segments))
            (final / SEGMENTS_FILE).write_text(segments)
        for old in self._checkpoints()[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
        self._collect()
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
