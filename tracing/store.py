"""A bounded in-memory store of spans (ring buffer, retention by count and age).

Open spans (running attempts) are in it from their start, so `rstq trace` and `sys_span` show
live work; they are the same objects the observer later finishes. Written on the event loop,
read from the admin API and the SQL engine's threads: a lock guards the buffer.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import pyarrow as pa
from rstq.tracing.spans import SpanRecord

_FIELDS: list[Any] = [
    pa.field("trace_id", pa.string(), nullable=False),
    pa.field("span_id", pa.string(), nullable=False),
    pa.field("parent_span_id", pa.string()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("start", pa.timestamp("ns", tz="UTC"), nullable=False),
    pa.field("end", pa.timestamp("ns", tz="UTC")),
    pa.field("status", pa.string(), nullable=False),
    pa.field("attributes", pa.string(), nullable=False),
    pa.field("invocation_id", pa.string()),
]
SCHEMA = pa.schema(_FIELDS)


class SpanStore:
    def __init__(self, max_spans: int = 100_000, max_age_s: float = 3600.0) -> None:
        self.max_spans = max_spans
        self.max_age_ns = int(max_age_s * 1e9)
        self._spans: deque[SpanRecord] = deque()
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, span: SpanRecord, now_ns: int | None = None) -> None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            self._spans.append(span)
            spans, cutoff = self._spans, now_ns - self.max_age_ns
            while spans and (len(spans) > self.max_spans or spans[0].start_ns < cutoff):
                spans.popleft()
                self.evicted += 1

    def snapshot(self) -> list[SpanRecord]:
        with self._lock:
            return list(self._spans)

    def trace_of(self, invocation_id: str) -> list[SpanRecord]:
        """Every span of the traces the invocation is in, plus the traces linked from them
        (sends start new traces), in start order."""
        spans = self.snapshot()
        traces = {s.trace_id for s in spans if s.invocation_id == invocation_id}
        while True:
            more = {s.trace_id for s in spans if s.trace_id not in traces
                    and any(k.trace_id in traces for k in s.links)}
            if not more:
                break
            traces |= more
        return sorted((s for s in spans if s.trace_id in traces), key=lambda s: s.start_ns)

    def to_arrow(self) -> pa.Table:
        """The spans as the `sys_span` table (attributes as JSON; open spans have no end)."""
        spans = self.snapshot()
        return pa.table({
            "trace_id": pa.array([s.trace_id for s in spans], pa.string()),
            "span_id": pa.array([s.span_id for s in spans], pa.string()),
            "parent_span_id": pa.array([s.parent_span_id or None for s in spans], pa.string()),
            "name": pa.array([s.name for s in spans], pa.string()),
            "start": pa.array([s.start_ns for s in spans], pa.timestamp("ns", tz="UTC")),
            "end": pa.array([s.end_ns for s in spans], pa.timestamp("ns", tz="UTC")),
            "status": pa.array([s.status for s in spans], pa.string()),
            "attributes": pa.array([json.dumps(s.attributes, separators=(",", ":"))
                                    for s in spans], pa.string()),
            "invocation_id": pa.array([s.invocation_id or None for s in spans], pa.string()),
        }, schema=SCHEMA)
