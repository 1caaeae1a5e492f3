"""The server process: partitions, their processors, and the runtime that runs their actions.

`Server` owns one processor per partition (all in one event loop), the outbox shuffler between
them, and the table of callers waiting for invocation results. The invoker, ingress and admin
listeners are its own; each is given only the ports it uses (core/ports.py: the server is their
`Partitions` and `Waiters`, the metadata store their schema), plus the clock and the `Limits`.
What sits around the runtime (SQL, the Postgres wire, tracing) comes in as `Plugin`s from the
composition root (`rstq.app`), so core imports none of it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core.admin import Admin, admin_token, start_admin
from rstq.core.clock import Clock, SystemClock
from rstq.core.datadir import DataDir, DataDirLock
from rstq.core.discovery import SERVER_DEFAULTS, ServerDefaults
from rstq.core.ids import partition_key_of
from rstq.core.ingress import Ingress, bound_port, start_ingress
from rstq.core.log.api import FsyncPolicy
from rstq.core.log.local import LocalLog, default_sync
from rstq.core.metrics import Metrics
from rstq.core.partitioning import partition_of
from rstq.core.plugins import Plugin, TraceSource
from rstq.core.ports import Limits, Result
from rstq.core.processor import PartitionProcessor, ProcessorConfig, Refused
from rstq.core.schema import MetaStore, Schema

if TYPE_CHECKING:
    from aiohttp import web
    from rstq.core.invoker import Invoker
    from rstq.core.transport import Transport

__all__ = ["AttemptHandler", "Result", "Server", "ServerConfig"]  # Result: moved to ports

log = logging.getLogger(__name__)

AttemptHandler = Callable[[int, a.Action], None]


@dataclass
class ServerConfig:
    data_dir: Path = Path("./rstq-data")
    partitions: int | None = None  # only used when the data dir is created
    fsync: FsyncPolicy = FsyncPolicy.BATCH
    snapshot_every: int | None = None  # None: auto, see ProcessorConfig
    store: str = "rocksdb"  # rocksdb | lmdb | snapshot (rstq.core.persistence)
    store_cache_bytes: int | None = None
    cache_size: int | None = None  # completed invocations in memory per partition
    segment_rows: int | None = None  # completed invocations per history segment (tests)
    ingress_bind: str | None = "127.0.0.1:8080"  # None: no listener (in-process tests)
    admin_bind: str | None = "127.0.0.1:9070"
    enable_protocol_v7: bool = False
    max_body_bytes: int = 10 * 1024 * 1024  # ingress request bodies; larger ones get 413
    max_journal_entry_bytes: int = 32 * 1024 * 1024  # one frame from a service endpoint
    max_state_value_bytes: int = 16 * 1024 * 1024  # one SetState value
    max_inbox: int = 100_000  # invocations queued per object key; more: ingress answers 429
    # Retention, timeouts and retry policy of handlers that set none (restate's default-*).
    defaults: ServerDefaults = SERVER_DEFAULTS
    extra: dict[str, str] = field(default_factory=dict)


class Server:
    def __init__(self, config: ServerConfig, clock: Clock | None = None,
                 plugins: Sequence[Plugin] = (), transport: Transport | None = None) -> None:
        """`transport`: how the invoker reaches service endpoints (default: HTTP/1.1 and h2c;
        tests pass an in-memory `transport_asgi.AsgiTransport`)."""
        self.config = config
        self.limits = Limits(
            max_body_bytes=config.max_body_bytes,
            max_journal_entry_bytes=config.max_journal_entry_bytes,
            max_state_value_bytes=config.max_state_value_bytes,
            max_inbox=config.max_inbox,
            enable_protocol_v7=config.enable_protocol_v7)
        self.plugins: list[Plugin] = list(plugins)
        self.clock: Clock = clock or SystemClock()
        self._transport = transport
        self.datadir: DataDir | None = None
        self.meta: MetaStore | None = None
        self.invoker: Invoker | None = None
        self.processors: list[PartitionProcessor] = []
        # Invocation id -> futures of callers waiting for its result (ingress, attach).
        self._waiters: dict[str, list[asyncio.Future[Result]]] = defaultdict(list)
        # Per (source, destination) FIFO of outbox messages, drained by one task each.
        self._outbox_queues: dict[tuple[int, int], list[a.OutboxSend]] = defaultdict(list)
        self._outbox_tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        self.attempt_handler: AttemptHandler | None = None  # the invoker, when there is one
        self.pending_attempts: list[tuple[int, a.Action]] = []  # kept until an invoker exists
        self.trace_source: TraceSource | None = None  # set by the tracing plugin; None: off
        self._started = False
        # HTTP listeners (ingress, admin) and their bound ports (for binds on port 0).
        self._runners: list[web.AppRunner] = []
        self.ingress_port: int | None = None
        self.admin_port: int | None = None
        self._socks: dict[str, socket.socket] = {}  # bound first in start(), served later
        self._lock: DataDirLock | None = None  # the data dir's lock, held while running
        self._redo: list[list[a.Action]] = []  # recovery's re-drive actions, until started
        # Prometheus metrics (GET /metrics on the admin port); plugins add their collectors.
        self.metrics = Metrics()
        self.metrics.watch(lambda: self.processors)

    @property
    def partitions(self) -> int:
        return len(self.processors)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener, lock the data dir, recover the partitions, then serve.

        In that order, so that a taken port or a data dir used by another server fails at once
        (`BindError`, `DataDirLocked`: one line each) and without touching any data."""
        self._bind_listeners()
        try:
            for plugin in self.plugins:
                plugin.bind()
            self._lock = DataDirLock.acquire(self.config.data_dir)
            await self._open_data()
        except BaseException:
            await self._abort_start()
            raise
        from rstq.core.invoker import Invoker
        from rstq.core.transport_http import HttpTransport

        n = self.partitions
        assert self.meta is not None
        self.invoker = Invoker(partitions=self, meta=self.meta, clock=self.clock,
                               limits=self.limits, transport=self._transport or HttpTransport(),
                               metrics=self.metrics)
        self.attempt_handler = self.invoker.handle
        for plugin in self.plugins:
            plugin.attach(self)
        for proc in self.processors:
            proc.start()
        for proc, actions in zip(self.processors, self._redo, strict=False):
            proc.redrive(actions)
        self._redo = []
        await self._start_listeners()
        for plugin in self.plugins:
            await plugin.start()
        self._started = True
        assert self.datadir is not None
        log.info("rstq started: %d partitions in %s (fsync=%s)", n, self.datadir.root,
                 self.config.fsync.value)

    def _bind_listeners(self) -> None:
        from rstq.core.ingress import parse_bind
        from rstq.core.listen import listen

        self._socks = {}
        try:
            for name, bind, option in (("ingress", self.config.ingress_bind, "--ingress"),
                                       ("admin", self.config.admin_bind, "--admin")):
                if bind is not None:
                    host, port = parse_bind(bind)
                    self._socks[name] = listen(host, port, what=name, option=option)
        except BaseException:
            self._close_sockets()
            raise

    def _close_sockets(self) -> None:
        socks, self._socks = self._socks, {}
        for sock in socks.values():
            sock.close()

    async def _open_data(self) -> None:
        self.datadir = DataDir.open(self.config.data_dir, self.config.partitions)
        n = self.datadir.partitions
        self.meta = await MetaStore.open(self.datadir.meta_log_dir, self.clock, self.config.fsync,
                                         enable_v7=self.config.enable_protocol_v7,
                                         defaults=self.config.defaults)
        cfg = ProcessorConfig(snapshot_every=self.config.snapshot_every,
                              store=self.config.store,
                              store_cache_bytes=self.config.store_cache_bytes,
                              cache_size=self.config.cache_size,
                              segment_rows=self.config.segment_rows)
        self._redo = []
        for i in range(n):
            pm = self.metrics.partition(i)
            lg = await LocalLog.open(self.datadir.partition_log_dir(i), fsync=self.config.fsync,
                                     sync_file=pm.timed_sync(default_sync()))
            proc = PartitionProcessor(i, n, self.datadir.partition_dir(i), lg, self.clock,
                                      sink=self, config=cfg)
            proc.metrics = pm
            self.processors.append(proc)  # before recover: closed with the others on failure
            self._redo.append(proc.recover())

    async def _abort_start(self) -> None:
        """Undo a start that failed part-way: close what was opened, release the lock."""
        for plugin in self.plugins:
            try:
                await plugin.stop()
            except Exception:
                log.exception("plugin %s did not stop", type(plugin).__name__)
        self._close_sockets()
        for proc in self.processors:
            try:
                await proc.close(snapshot=False)
            except Exception:
                log.exception("partition %d did not close", proc.partition_id)
        self.processors = []
        if self.meta is not None:
            await self.meta.close()
            self.meta = None
        self._release_lock()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    async def stop(self) -> None:
        """Clean shutdown: stop shuffling, drain and snapshot each partition, fsync, close."""
        for plugin in reversed(self.plugins):  # started last: stopped first
            await plugin.stop()
        await self._stop_listeners()  # first: no new requests while the partitions drain
        for t in self._outbox_tasks.values():
            t.cancel()
        for t in self._outbox_tasks.values():
            try:
                await t
            except (asyncio.CancelledError, Refused):
                pass
        if self.invoker is not None:
            await self.invoker.close()
        for proc in self.processors:
            try:
                await proc.close(snapshot=True)
            except Exception:  # keep closing the others: their logs must be fsynced too
                log.exception("partition %d did not close cleanly", proc.partition_id)
        if self.meta is not None:
            await self.meta.close()
        for plugin in reversed(self.plugins):  # e.g. tracing exports what is still queued
            await plugin.close()
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(Refused("server stopped"))
        self._waiters.clear()
        self._close_sockets()
        self._release_lock()  # last: every log is closed
        self._started = False

    async def _start_listeners(self) -> None:
        # Last in start(): a request may only arrive once every partition is up. After the
        # plugins' attach, which may have set the trace source.
        meta = self.meta
        assert meta is not None
        if self.config.ingress_bind is not None:
            ingress = Ingress(partitions=self, meta=meta, waiters=self, clock=self.clock,
                              limits=self.limits, trace_source=self.trace_source)
            runner = await start_ingress(ingress, self.config.ingress_bind,
                                         self._socks.pop("ingress", None))
            self._runners.append(runner)
            self.ingress_port = bound_port(runner)
        if self.config.admin_bind is not None:
            admin = Admin(partitions=self, meta=meta, clock=self.clock, limits=self.limits,
                          ingress_port=self.ingress_port, metrics=self.metrics)
            runner = await start_admin(admin, self.config.admin_bind,
                                       token=admin_token(self.config.extra),
                                       plugins=self.plugins,
                                       sock=self._socks.pop("admin", None))
            self._runners.append(runner)
            self.admin_port = bound_port(runner)

    async def _stop_listeners(self) -> None:
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()

    @property
    def schema(self) -> Schema:
        assert self.meta is not None, "server not started"
        return self.meta.schema

    async def propose_to(self, invocation_id: str, cmd: c.Command) -> list[a.Action]:
        """Append `cmd` to the partition owning `invocation_id`; its actions once applied."""
        return await self.partition_for_id(invocation_id).propose(cmd)

    # --- routing (the ports' `Partitions`) -------------------------------------------------------

    def partition(self, index: int) -> PartitionProcessor:
        return self.processors[index]

    def partition_for_id(self, invocation_id: str) -> PartitionProcessor:
        return self.processors[partition_of(partition_key_of(invocation_id), self.partitions)]

    def partition_for_key(self, partition_key: int) -> PartitionProcessor:
        return self.processors[partition_of(partition_key, self.partitions)]

    def wait_result(self, invocation_id: str) -> asyncio.Future[Result]:
        """A future for the invocation's result. Register it before proposing the invoke."""
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiters[invocation_id].append(fut)
        return fut

    def forget_waiter(self, invocation_id: str, fut: asyncio.Future[Result]) -> None:
        futs = self._waiters.get(invocation_id)
        if futs is not None and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[invocation_id]

    # --- ActionSink ----------------------------------------------------------------------------

    def on_actions(self, partition: int, actions: Sequence[a.Action]) -> None:
        for act in actions:
            if isinstance(act, a.InvocationCompleted):
                self._count_completed(partition, act)
                for fut in self._waiters.pop(act.invocation_id, []):
                    if not fut.done():
                        fut.set_result(Result(act.value, act.failure, act.stacktrace))
            elif isinstance(act, a.OutboxSend):
                self._enqueue_outbox(partition, act)
            elif isinstance(act, (a.StartAttempt, a.AbortAttempt, a.ForwardNotification)):
                if self.attempt_handler is not None:
                    self.attempt_handler(partition, act)
                else:
                    self.pending_attempts.append((partition, act))

    def _count_completed(self, partition: int, act: a.InvocationCompleted) -> None:
        inv = self.processors[partition].state.invocations.get(act.invocation_id)
        service = inv.service if inv is not None else ""
        status = "failed" if act.failure is not None else "succeeded"
        self.metrics.invocations_completed.labels(service=service, status=status).inc()

    def _enqueue_outbox(self, source: int, act: a.OutboxSend) -> None:
        lane = (source, act.destination)
        self._outbox_queues[lane].append(act)
        task = self._outbox_tasks.get(lane)
        if task is None or task.done():
            self._outbox_tasks[lane] = asyncio.create_task(self._drain_outbox(lane))

    async def _drain_outbox(self, lane: tuple[int, int]) -> None:
        """Deliver a lane's messages in seq order; ack them at the source once durable there.

        Delivery is at least once (a crash between deliver and ack resends); the destination
        drops what it already applied by (source, seq), so the effect is exactly once."""
        source, dest = lane
        queue = self._outbox_queues[lane]
        while queue:
            batch = list(queue)
            queue.clear()
            try:
                delivered = [
                    self.processors[dest].propose_nowait(c.Deliver(source, m.seq, m.payload))
                    for m in batch
                ]
                await asyncio.gather(*delivered)
                acks = [self.processors[source].propose_nowait(c.OutboxAck(m.seq))
                        for m in batch]
                await asyncio.gather(*acks)
            except Refused:  # a log refused the write (disk full): resend later, deduplicated
                if not (self.processors[dest].running and self.processors[source].running):
                    raise
                queue[:0] = batch
                await asyncio.sleep(1.0)
