"""OTLP export off the event loop: a batching thread, our encoder, the official exporters.

The loop only appends finished spans to a deque. A worker thread wakes every
OTEL_BSP_SCHEDULE_DELAY ms (or when OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans wait), encodes a batch
with `OtlpEncoder` (the SDK's per-span protobuf objects cost ~20x more) and sends it with the
official OTLP exporter of the configured protocol, which keeps its endpoint/header/TLS/
compression/timeout handling (OTEL_EXPORTER_OTLP_*) and its retries. Over
OTEL_BSP_MAX_QUEUE_SIZE waiting spans, new ones are dropped (counted), as the SDK does.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanContext
from rstq.tracing import attributes as A
from rstq.tracing.otlp_encode import OtlpEncoder
from rstq.tracing.spans import SpanRecord

if TYPE_CHECKING:
    from rstq.tracing.config import TracingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    payload: bytes  # a serialized ExportTraceServiceRequest
    count: int


Send = Callable[[EncodedBatch], bool]


def make_sender(cfg: TracingConfig) -> tuple[Send, Callable[[], None]]:
    """(send, shutdown) over the official OTLP exporter for the configured protocol."""
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        from opentelemetry.sdk.trace.export import SpanExportResult

        class Grpc(GrpcExporter):
            # The exporter's seam: what to send for a batch (ours is encoded already).
            def _translate_data(self, data: Any) -> ExportTraceServiceRequest:
                req: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
                    data.payload)
                return req

            def _count_data(self, data: Any) -> int:
                return int(data.count)

        grpc_exp = Grpc(endpoint=cfg.endpoint)

        def send_grpc(batch: EncodedBatch) -> bool:
            result = grpc_exp._export(batch)  # type: ignore[arg-type]
            return bool(result == SpanExportResult.SUCCESS)

        return send_grpc, grpc_exp.shutdown
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    endpoint = cfg.endpoint
    if endpoint is not None and urllib.parse.urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # a base URL, as OTEL_..._ENDPOINT
    http_exp = HttpExporter(endpoint=endpoint)

    def send_http(batch: EncodedBatch) -> bool:
        return bool(http_exp._client.export(batch.payload).success)

    return send_http, http_exp.shutdown


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class OtlpExport:
    """Finished spans to an OTLP collector (Jaeger, an OTel collector, ...)."""

    def __init__(self, cfg: TracingConfig, send: Send | None = None,
                 shutdown: Callable[[], None] | None = None) -> None:
        resource = Resource.create({"service.name": cfg.service_name})
        attrs = {k: v for k, v in resource.attributes.items()
                 if isinstance(v, (str, bool, int, float))}
        self.encoder = OtlpEncoder(attrs, A.SCOPE)
        if send is None:
            send, shutdown = make_sender(cfg)
        self._send = send
        self._shutdown_exporter = shutdown
        self.delay_s = _env_int("OTEL_BSP_SCHEDULE_DELAY", 5000) / 1000
        self.max_queue = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self.max_batch = _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self._queue: deque[SpanRecord] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._flush_requested = 0
        self._flushed = 0
        self.exported = 0
        self.dropped = 0
        self.failed_batches = 0  # export requests that failed (after the exporter's retries)
        self.failed_spans = 0  # the spans in them
        self._thread = threading.Thread(target=self._worker, name="rstq-otlp-export",
                                        daemon=True)
        self._thread.start()

    def export(self, span: SpanRecord) -> None:
        """On the event loop: O(1), no lock unless a full batch is waiting."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append(span)
        if len(queue) == self.max_batch:
            with self._cond:
                self._cond.notify()

    def _worker(self) -> None:
        while True:
            with self._cond:
                if not self._closing and len(self._queue) < self.max_batch \
                        and self._flush_requested == self._flushed:
                    self._cond.wait(self.delay_s)
                closing, flush_to = self._closing, self._flush_requested
            self._drain()
            with self._cond:
                self._flushed = flush_to
                self._cond.notify_all()
            if closing:
                return

    def _drain(self) -> None:
        while self._queue:
            batch: list[SpanRecord] = []
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue.popleft())
            try:
                ok = self._send(EncodedBatch(self.encoder.request(batch), len(batch)))
            except Exception:  # noqa: BLE001 - exporting must not kill the thread
                log.exception("OTLP export failed")
                ok = False
            if ok:
                self.exported += len(batch)
            else:
                self.failed_batches += 1
                self.failed_spans += len(batch)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Blocking: export what is queued now."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested += 1
            target = self._flush_requested
            self._cond.notify_all()
            while self._flushed < target and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Blocking: exports what is queued, stops the thread and the exporter."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        if self._shutdown_exporter is not None:
            self._shutdown_exporter()


def sampler_decides(sampler: object, trace_id: str, name: str, parent: SpanContext | None,
                    ) -> bool:
    """The configured sampler (OTEL_TRACES_SAMPLER[_ARG]) on one new trace or incoming parent."""
    from opentelemetry.sdk.trace.sampling import Sampler

    assert isinstance(sampler, Sampler)
    ctx = otel.set_span_in_context(otel.NonRecordingSpan(parent)) if parent is not None else None
    decision = sampler.should_sample(ctx, int(trace_id, 16), name).decision
    return bool(decision.is_sampled())  # type: ignore[no-untyped-call]
