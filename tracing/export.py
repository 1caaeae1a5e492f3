"""OTLP export: our span records as OpenTelemetry SDK spans, batched on the SDK's thread.

Spans are built with OUR ids and timestamps (`ReadableSpan` made directly, not through a
Tracer, whose id generator would pick its own), then handed to a `BatchSpanProcessor`: the event
loop only appends to its queue; encoding and sending happen on the processor's worker thread.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import TYPE_CHECKING

from opentelemetry import trace as otel
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from rstq.tracing import attributes as A
from rstq.tracing.spans import SpanRecord

if TYPE_CHECKING:
    from rstq.tracing.config import TracingConfig

log = logging.getLogger(__name__)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_STATUS = {A.OK: StatusCode.OK, A.ERROR: StatusCode.ERROR, A.UNSET: StatusCode.UNSET}


def make_exporter(cfg: TracingConfig) -> SpanExporter:
    """The official OTLP exporter for the configured protocol (env fills what is not given)."""
    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=cfg.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    endpoint = cfg.endpoint
    if endpoint is not None and urllib.parse.urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # a base URL, as OTEL_..._ENDPOINT
    return HttpExporter(endpoint=endpoint)


def _ctx(trace_id: str, span_id: str, remote: bool = False) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=remote,
                       trace_flags=_SAMPLED)


def to_readable(rec: SpanRecord, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    parent = (_ctx(rec.trace_id, rec.parent_span_id, rec.parent_remote)
              if rec.parent_span_id else None)
    status = _STATUS.get(rec.status, StatusCode.UNSET)
    return ReadableSpan(
        name=rec.name,
        context=_ctx(rec.trace_id, rec.span_id),
        parent=parent,
        resource=resource,
        attributes=rec.attributes,
        events=[Event(e.name, e.attributes, e.time_ns) for e in rec.events],
        links=[Link(_ctx(k.trace_id, k.span_id), k.attributes) for k in rec.links],
        kind=SpanKind.INTERNAL,
        status=Status(status, rec.status_message or None) if status == StatusCode.ERROR
        else Status(status),
        start_time=rec.start_ns,
        end_time=rec.end_ns if rec.end_ns is not None else rec.start_ns,
        instrumentation_scope=scope,
    )


class OtlpExport:
    """Finished spans to an OTLP collector (Jaeger, an OTel collector, ...)."""

    def __init__(self, cfg: TracingConfig, exporter: SpanExporter | None = None) -> None:
        self.resource = Resource.create({"service.name": cfg.service_name})
        self.scope = InstrumentationScope(A.SCOPE)
        self.processor = BatchSpanProcessor(exporter or make_exporter(cfg))
        self.exported = 0

    def export(self, rec: SpanRecord) -> None:
        self.processor.on_end(to_readable(rec, self.resource, self.scope))
        self.exported += 1

    def flush(self, timeout_ms: int = 5000) -> bool:
        return self.processor.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Blocking: exports what is queued (run it off the event loop)."""
        self.processor.shutdown()  # type: ignore[no-untyped-call]


def sampler_decides(sampler: object, trace_id: str, name: str, parent: SpanContext | None,
                    ) -> bool:
    """The configured sampler (OTEL_TRACES_SAMPLER[_ARG]) on one new trace or incoming parent."""
    from opentelemetry.sdk.trace.sampling import Sampler

    assert isinstance(sampler, Sampler)
    ctx = otel.set_span_in_context(otel.NonRecordingSpan(parent)) if parent is not None else None
    decision = sampler.should_sample(ctx, int(trace_id, 16), name).decision
    return bool(decision.is_sampled())  # type: ignore[no-untyped-call]
