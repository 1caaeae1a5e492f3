"""Prometheus metrics: one registry per `Server`, served at `GET /metrics` on the admin port.

Two kinds. Events (attempts, failures, completions, log appends, fsyncs, checkpoints) are
counters and histograms bumped where they happen, at most once per batch or attempt on the hot
path. State (invocations by status, inbox depth, timers pending, applied and durable LSNs) is
read from the partitions at scrape time by `_StateCollector`, so it costs nothing between
scrapes. Plugins (SQL, the Postgres wire, tracing) add theirs to `Metrics.registry`.

No global default registry: tests run several servers in one process.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rstq.core.processor import PartitionProcessor

__all__ = ["CONTENT_TYPE", "Metrics", "PartitionMetrics"]

# The classic text format, which every Prometheus (and Grafana Agent, VictoriaMetrics) reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Log appends and fsyncs: from tens of microseconds (page cache) to seconds (a stalled disk).
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CHECKPOINT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PartitionMetrics:
    """One partition's instruments, labelled once (no label lookup per batch)."""

    def __init__(self, metrics: Metrics, partition: int) -> None:
        p = str(partition)
        self.append_seconds = metrics.log_append_seconds.labels(partition=p)
        self.batch_size = metrics.log_append_batch_size.labels(partition=p)
        self.fsync_seconds = metrics.log_fsync_seconds.labels(partition=p)
        self.checkpoint_seconds = metrics.checkpoint_seconds.labels(partition=p)
        self.checkpoint_failures = metrics.checkpoint_failures.labels(partition=p)

    def timed_sync(self, sync: Callable[[int], None]) -> Callable[[int], None]:
        """`sync` (the log's fdatasync), observed into the fsync histogram."""
        hist = self.fsync_seconds

        def timed(fd: int) -> None:
            t0 = time.perf_counter()
            try:
                sync(fd)
            finally:
                hist.observe(time.perf_counter() - t0)

        return timed


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.invocations_completed = Counter(
            "rstq_invocations_completed", "Invocations completed, by service and outcome "
            "(status: succeeded | failed).", ["service", "status"], registry=r)
        self.attempts = Counter(
            "rstq_invoker_attempts", "Attempts started by the invoker.", ["service"],
            registry=r)
        self.attempt_failures = Counter(
            "rstq_invoker_attempt_failures", "Attempts that failed (any outcome).",
            ["service"], registry=r)
        self.retries = Counter(
            "rstq_invoker_retries", "Failed attempts scheduled for a retry.", ["service"],
            registry=r)
        self.suspensions = Counter(
            "rstq_invoker_suspensions", "Attempts that ended in a suspension.", ["service"],
            registry=r)
        self.log_append_seconds = Histogram(
            "rstq_log_append_duration_seconds", "Time to append one batch to a partition log, "
            "durable (fsync included under --fsync batch).", ["partition"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.log_append_batch_size = Histogram(
            "rstq_log_append_batch_size", "Commands per appended batch.", ["partition"],
            buckets=BATCH_BUCKETS, registry=r)
        self.log_fsync_seconds = Histogram(
            "rstq_log_fsync_duration_seconds", "Time of one fdatasync of a partition log "
            "segment.", ["partition"], buckets=LATENCY_BUCKETS, registry=r)
        self.checkpoint_seconds = Histogram(
            "rstq_checkpoint_duration_seconds", "Time to write a restart point (a store "
            "checkpoint, or a snapshot).", ["partition"], buckets=CHECKPOINT_BUCKETS,
            registry=r)
        self.checkpoint_failures = Counter(
            "rstq_checkpoint_failures", "Restart points that could not be written.",
            ["partition"], registry=r)

    def partition(self, partition: int) -> PartitionMetrics:
        return PartitionMetrics(self, partition)

    def watch(self, partitions: Callable[[], Sequence[PartitionProcessor]]) -> None:
        """Read these partitions' state at each scrape."""
        self.registry.register(_StateCollector(partitions))

    def register(self, collector: Collector) -> None:
        """For plugins: a collector of their own (its names prefixed `rstq_`)."""
        self.registry.register(collector)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, partitions: Callable[[], Sequence[PartitionProcessor]]) -> None:
        self._partitions = partitions

    def describe(self) -> Iterable[Metric]:
        return []  # gauges made at each scrape; nothing to check for clashes up front

    def collect(self) -> Iterable[Metric]:
        invocations = GaugeMetricFamily(
            "rstq_invocations", "Invocations not completed yet, by service and status (the "
            "completed ones: rstq_invocations_retained).", labels=["service", "status"])
        gauges = [GaugeMetricFamily(name, doc, labels=["partition"])
                  for name, doc in _PER_PARTITION]
        by_status: Tally[tuple[str, str]] = Tally()
        for proc in self._partitions():
            p = str(proc.partition_id)
            for inv in proc.state.invocations.live():
                by_status[(inv.service, str(inv.status))] += 1
            for gauge, value in zip(gauges, self._values(proc), strict=True):
                gauge.add_metric([p], value)
        for (service, status), n in sorted(by_status.items()):
            invocations.add_metric([service, status], n)
        return [invocations, *gauges]

    @staticmethod
    def _values(proc: PartitionProcessor) -> tuple[float, ...]:
        """One partition's values, in the order of `_PER_PARTITION`."""
        state = proc.state
        history = getattr(proc.persistence, "history", None)
        return (len(state.invocations), len(state.invocations.mem),
                len(history.segments) if history is not None else 0,
                sum(len(q) for q in list(state.inboxes.values())), len(state.timers),
                state.applied_lsn, proc.log.durable_lsn, proc.stats.snapshot_lsn,
                1 if proc.running else 0)


# Gauges with one value per partition, read at scrape time (`_StateCollector._values`).
_PER_PARTITION: tuple[tuple[str, str], ...] = (
    ("rstq_invocations_retained", "Invocations a partition holds, completed ones included (in "
     "memory, in its store or its history segments)."),
    ("rstq_invocations_resident", "Invocations held as Python objects (live work and the "
     "cache of completed ones, --cache-size)."),
    ("rstq_history_segments", "History segment files (completed invocations)."),
    ("rstq_inbox_depth", "Invocations queued behind a key's lock."),
    ("rstq_timers_pending", "Durable timers not fired yet."),
    ("rstq_partition_applied_lsn", "Last log record applied to the state."),
    ("rstq_partition_durable_lsn", "Last log record known durable."),
    ("rstq_partition_checkpoint_lsn", "LSN of the newest restart point."),
    ("rstq_partition_up", "1 while the partition processor runs, 0 once it stopped."),
)
