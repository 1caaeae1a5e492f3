"""`Tracing`: what the server holds when tracing is on (store, exporter, observer, sampler)."""

from __future__ import annotations

import logging

from rstq.tracing import ids
from rstq.tracing.config import TracingConfig
from rstq.tracing.export import OtlpExport, sampler_decides
from rstq.tracing.observer import Deployments, TraceObserver
from rstq.tracing.store import SpanStore

log = logging.getLogger(__name__)


class Tracing:
    def __init__(self, cfg: TracingConfig, deployments: Deployments,
                 export: OtlpExport | None = None) -> None:
        self.config = cfg
        self.store = SpanStore(cfg.store_max_spans, cfg.store_max_age_s)
        self.export = export if export is not None else (OtlpExport(cfg) if cfg.export
                                                         else None)
        from opentelemetry.sdk.trace import TracerProvider

        # The sampler OTEL_TRACES_SAMPLER[_ARG] asks for (parentbased_always_on by default).
        self.sampler = TracerProvider(shutdown_on_exit=False).sampler
        self.observer = TraceObserver(self.store.add,
                                      self.export.export if self.export is not None else None,
                                      deployments)

    def invoke_trace(self, invocation_id: str, traceparent: str | None) -> ids.InvokeTrace:
        """The trace fields of an ingress Invoke: sampled, inherited or new."""
        incoming = ids.parse_traceparent(traceparent)
        trace = ids.for_ingress(invocation_id, incoming)
        from opentelemetry.trace import SpanContext, TraceFlags

        parent = (SpanContext(int(incoming.trace_id, 16), int(incoming.span_id, 16), True,
                              TraceFlags(1 if incoming.sampled else 0))
                  if incoming is not None else None)
        if not sampler_decides(self.sampler, trace.trace_id, "ingress", parent):
            return ids.UNTRACED
        return trace

    def shutdown(self) -> None:
        """Blocking (exports what is queued): run it off the event loop."""
        if self.export is not None:
            self.export.shutdown()
