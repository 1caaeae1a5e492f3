"""The partition processor: the asyncio shell around `apply`.

It is the single writer of its partition. Proposed commands queue up; the loop takes what has
queued, stamps it with the injected clock, appends it to the log as one batch (one fsync), then
applies each command in log order and only then hands the resulting actions to the runtime. So
an effect exists only if its command is durable, and a crash can lose only unacknowledged work.

Timers live in the state (durable); the processor keeps a heap of them and proposes
`TimerFired` when the clock reaches one.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.clock import Clock
from rstq.core.log.api import Log, LogFull
from rstq.core.metrics import PartitionMetrics
from rstq.core.model import INVOKED, PartitionState
from rstq.core.persistence import (
    HistoryMove,
    Persistence,
    SnapshotPersistence,
    StorePersistence,
)
from rstq.core.store import StoreError

log = logging.getLogger(__name__)

Precheck = Callable[[PartitionState], str | None]  # returns a reason to refuse, or None


class ActionSink(Protocol):
    """The runtime: runs what apply asked for (invoker, outbox shuffler, ingress waiters)."""

    def on_actions(self, partition: int, actions: Sequence[a.Action]) -> None: ...


class ApplyObserver(Protocol):
    """Sees each applied command with its actions, after its batch (tracing; off: None)."""

    def on_applied(self, partition: int, envelope: c.Envelope, actions: list[a.Action],
                   state: PartitionState) -> None: ...

    def on_redrive(self, partition: int, actions: list[a.Action], state: PartitionState,
                   ) -> None: ...


class Refused(Exception):
    """A proposal refused before it reached the log (e.g. a stale attempt)."""


@dataclass
class _Proposal:
    command: c.Command
    future: asyncio.Future[list[a.Action]]
    precheck: Precheck | None = None


@dataclass
class ProcessorConfig:
    # Applied commands between restart points (store checkpoints, or snapshots). None: auto
    # (rstq.core.persistence: a fixed interval for checkpoints, which cost milliseconds; for
    # snapshots, which cost O(state), one proportional to the state).
    snapshot_every: int | None = None
    max_batch: int = 1024
    # Where the state persists: a partition store engine ("rocksdb", "lmdb"), or "snapshot"
    # (whole-state Arrow snapshots, the format before the store).
    store: str = "rocksdb"
    store_cache_bytes: int | None = None
    # Completed invocations kept in memory per partition (the rest are read from disk).
    cache_size: int | None = None
    segment_rows: int | None = None  # hot completed invocations that make a history segment


@dataclass
class _Stats:
    batches: int = 0
    commands: int = 0
    snapshots: int = 0  # restart points written (store checkpoints or snapshots)
    snapshot_lsn: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def persistence_for(directory: Path, config: ProcessorConfig) -> Persistence:
    if config.store == "snapshot":
        return SnapshotPersistence(directory, config.snapshot_every)
    return StorePersistence(directory, config.store, config.snapshot_every,
                            config.store_cache_bytes, config.cache_size, config.segment_rows)


class PartitionProcessor:
    def __init__(
        self,
        partition_id: int,
        partitions: int,
        directory: Path,
        log_: Log,
        clock: Clock,
        sink: ActionSink | None = None,
        config: ProcessorConfig | None = None,
    ) -> None:
        self.partition_id = partition_id
        self.partitions = partitions
        self.directory = directory
        self.log = log_
        self.clock = clock
        self.sink = sink
        self.observer: ApplyObserver | None = None  # set by the server when tracing is on
        self.metrics: PartitionMetrics | None = None  # set by the server
        self.config = config or ProcessorConfig()
        self.persistence = persistence_for(directory, self.config)
        self.state = PartitionState(partition_id, partitions)
        self.stats = _Stats()
        self.version = 0  # bumped per applied batch; the query layer caches Arrow views by it
        self._queue: list[_Proposal] = []
        self._wakeup = asyncio.Event()
        self._timers: list[tuple[int, str]] = []
        self._timer_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._since_snapshot = 0
        self._closing = False
        self._fatal: BaseException | None = None
        self._recovered = False
        self._move: asyncio.Task[None] | None = None  # a history move in progress

    # --- lifecycle -----------------------------------------------------------------------------

    def recover(self) -> list[a.Action]:
        """Load the newest snapshot and replay the log tail. Returns the actions that re-drive
        live work (attempts to restart, outbox messages to resend)."""
        self._recovered = True
        self.state = self.persistence.recover(self.partition_id, self.partitions,
                                              self.log.durable_lsn)
        self.stats.snapshot_lsn = self.state.applied_lsn
        if self.log.first_lsn > self.state.applied_lsn + 1:  # never replay across a gap
            raise RuntimeError(f"partition {self.partition_id}: the log starts at "
                               f"{self.log.first_lsn}, the persisted state ends at "
                               f"{self.state.applied_lsn}: records are missing")
        for lsn, payload in self.log.read(self.state.applied_lsn + 1):
            apply(self.state, c.decode(payload), lsn)
        self.persistence.replayed(self.state)
        self.version += 1
        redo: list[a.Action] = []
        for timer in self.state.timers.values():
            heapq.heappush(self._timers, (timer.fire_at, timer.timer_id))
        for inv in self.state.invocations.live():
            if inv.status == INVOKED:
                redo.append(a.StartAttempt(inv.invocation_id, inv.epoch))
        for msg in sorted(self.state.outbox.values(), key=lambda m: m.seq):
            redo.append(a.OutboxSend(msg.seq, msg.destination, msg.payload))
        return redo

    def start(self) -> None:
        if not self._recovered:  # started on its own (tests): recover first, as the server does
            self.redrive(self.recover())
        self._tasks = [
            asyncio.create_task(self._run(), name=f"partition-{self.partition_id}"),
            asyncio.create_task(self._run_timers(), name=f"timers-{self.partition_id}"),
        ]

    async def close(self, snapshot: bool = True) -> None:
        """Drain pending proposals, stop, snapshot (clean shutdown), close the log."""
        self._closing = True
        self._wakeup.set()
        self._timer_wakeup.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:  # the loop's own failure, already logged and kept in _fatal
                pass
        if self._move is not None:  # let a history move finish (its thread cannot stop)
            await asyncio.gather(self._move, return_exceptions=True)
        # Whatever was queued but not appended: fail it, the caller was not acknowledged.
        for p in self._queue:
            if not p.future.done():
                p.future.set_exception(Refused("partition processor closed"))
        self._queue.clear()
        try:
            if snapshot and self._fatal is None and self._recovered:
                self.snapshot()
        finally:
            try:
                self.persistence.close()
            finally:
                await self.log.close()

    def snapshot(self) -> None:
        """Write a restart point now (a store checkpoint, or a snapshot)."""
        t0 = time.perf_counter()
        self.stats.snapshot_lsn = self.persistence.checkpoint(self.state)
        if self.metrics is not None:
            self.metrics.checkpoint_seconds.observe(time.perf_counter() - t0)
        self.stats.snapshots += 1
        self._since_snapshot = 0

    @property
    def running(self) -> bool:
        return not self._closing and self._fatal is None

    # --- proposing -----------------------------------------------------------------------------

    def propose_nowait(
        self, command: c.Command, precheck: Precheck | None = None
    ) -> asyncio.Future[list[a.Action]]:
        if self._closing or self._fatal is not None:
            raise Refused("partition processor is not running")
        fut: asyncio.Future[list[a.Action]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Proposal(command, fut, precheck))
        self._wakeup.set()
        return fut

    async def propose(self, command: c.Command, precheck: Precheck | None = None,
                      ) -> list[a.Action]:
        """Append `command`, apply it, and return its actions (after they were dispatched)."""
        return await self.propose_nowait(command, precheck)

    # --- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._queue[: self.config.max_batch]
                del self._queue[: len(batch)]
                await self._process(batch)
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # a log failure: stop taking work, fail the waiters
            self._fatal = e
            log.exception("partition %d stopped", self.partition_id)
            for p in self._queue:
                if not p.future.done():
                    p.future.set_exception(Refused(f"partition failed: {e}"))
            self._queue.clear()

    async def _process(self, batch: list[_Proposal]) -> None:
        accepted: list[_Proposal] = []
        for p in batch:
            reason = p.precheck(self.state) if p.precheck is not None else None
            if reason is not None:
                p.future.set_exception(Refused(reason))
            else:
                accepted.append(p)
        if not accepted:
            return
        ts = self.clock.now_ms()
        payloads = [c.encode(ts, p.command) for p in accepted]
        t0 = time.perf_counter()
        try:
            last = await self.log.append_batch(payloads)
        except BaseException as e:
            for p in accepted:
                if not p.future.done():
                    p.future.set_exception(Refused(f"log append failed: {e}"))
            if isinstance(e, LogFull):  # nothing written, nothing applied: keep serving
                log.warning("partition %d: %s", self.partition_id, e)
                return
            raise
        if self.metrics is not None:
            self.metrics.append_seconds.observe(time.perf_counter() - t0)
            self.metrics.batch_size.observe(len(payloads))
        first = last - len(payloads) + 1
        all_actions: list[a.Action] = []
        results: list[list[a.Action]] = []
        for i, p in enumerate(accepted):
            actions = apply(self.state, c.Envelope(ts, p.command), first + i)
            results.append(actions)
            all_actions.extend(actions)
        self.persistence.applied(self.state)  # the store follows: same batch, same LSN
        self.version += 1
        self.stats.batches += 1
        self.stats.commands += len(accepted)
        self._since_snapshot += len(accepted)
        if self.observer is not None:
            self._observe(ts, accepted, results)
        self._dispatch(all_actions)
        for p, actions in zip(accepted, results, strict=False):
            if not p.future.done():
                p.future.set_result(actions)
        if self._move is None and isinstance(self.persistence, StorePersistence):
            move = self.persistence.start_move(self.state)
            if move is not None:
                self._move = asyncio.create_task(self._move_history(move),
                                                 name=f"history-{self.partition_id}")
        if self.persistence.due(self._since_snapshot, self.state):
            await self._snapshot_and_trim()

    async def _move_history(self, move: HistoryMove) -> None:
        """Completed invocations into a history segment: the file is written in a thread
        while the partition goes on; the store batch that records it runs on the loop."""
        assert isinstance(self.persistence, StorePersistence)
        try:
            await asyncio.to_thread(self.persistence.build_move, move)
        except (OSError, StoreError) as e:
            log.warning("partition %d: history move failed: %s", self.partition_id, e)
            self.persistence.abort_move(move, self.state)
            self._move = None
            return
        try:
            self.persistence.commit_move(move, self.state)
            self.version += 1  # the SQL views see the segment
        except (OSError, StoreError) as e:
            log.warning("partition %d: history move not recorded: %s", self.partition_id, e)
        finally:
            self._move = None

    async def _snapshot_and_trim(self) -> None:
        # The state must not change while it is written: this partition's loop waits here (no
        # apply runs), while the event loop, and so every other partition, keeps going.
        try:
            await asyncio.to_thread(self.snapshot)
        except (OSError, StoreError) as e:  # e.g. a full disk: the log holds everything
            log.warning("partition %d: snapshot failed: %s", self.partition_id, e)
            if self.metrics is not None:
                self.metrics.checkpoint_failures.inc()
            self._since_snapshot = 0
            return
        # Below the oldest restart point kept, so falling back to it (the newest one, or the
        # live store, damaged) still finds every record after it in the log.
        await self.log.trim(self.persistence.trim_below())

    def _observe(self, ts: int, accepted: list[_Proposal], results: list[list[a.Action]],
                 ) -> None:
        assert self.observer is not None
        try:
            for p, actions in zip(accepted, results, strict=True):
                self.observer.on_applied(self.partition_id, c.Envelope(ts, p.command), actions,
                                         self.state)
        except Exception:  # noqa: BLE001 - observing must never stop the partition
            log.exception("partition %d: apply observer failed", self.partition_id)

    def _dispatch(self, actions: Sequence[a.Action]) -> None:
        for act in actions:
            if isinstance(act, a.TimerSet):
                heapq.heappush(self._timers, (act.fire_at, act.timer_id))
                self._timer_wakeup.set()
        if self.sink is not None and actions:
            self.sink.on_actions(self.partition_id, actions)

    def redrive(self, actions: Sequence[a.Action]) -> None:
        """Hand recovery actions to the runtime (after every partition is up)."""
        self._timer_wakeup.set()
        if self.observer is not None and actions:  # attempts restarted after recovery
            self.observer.on_redrive(self.partition_id, list(actions), self.state)
        if self.sink is not None and actions:
            self.sink.on_actions(self.partition_id, actions)

    # --- timers --------------------------------------------------------------------------------

    def _timer_refused(self, fut: asyncio.Future[list[a.Action]], *, timer_id: str) -> None:
        """A TimerFired that did not reach the log (disk full) fires again a second later."""
        if fut.cancelled() or fut.exception() is None or self._closing or self._fatal:
            return
        heapq.heappush(self._timers, (self.clock.now_ms() + 1000, timer_id))
        self._timer_wakeup.set()

    async def _run_timers(self) -> None:
        # Checks the flag too: in 3.11 a cancel racing the wakeup can be swallowed.
        while not self._closing:
            now = self.clock.now_ms()
            due: list[str] = []
            while self._timers and self._timers[0][0] <= now:
                _, tid = heapq.heappop(self._timers)
                timer = self.state.timers.get(tid)
                if timer is not None and timer.fire_at <= now:
                    due.append(tid)
                elif timer is not None:  # re-set to a later time: keep it queued
                    heapq.heappush(self._timers, (timer.fire_at, tid))
                    break
            for tid in dict.fromkeys(due):
                self.propose_nowait(c.TimerFired(tid)).add_done_callback(
                    functools.partial(self._timer_refused, timer_id=tid))
            self._timer_wakeup.clear()
            delay_ms = (self._timers[0][0] - now) if self._timers else None
            await self.clock.wait(self._timer_wakeup, delay_ms)
