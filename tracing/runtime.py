"""`Tracing`: what the server holds when tracing is on (store, exporter, observer, sampler)."""

from __future__ import annotations

import asyncio
import logging
import time

from rstq.protocol import trace_ids as ids
from rstq.tracing.config import TracingConfig
from rstq.tracing.export import OtlpExport, sampler_decides
from rstq.tracing.observer import Deployments, TraceObserver
from rstq.tracing.store import SpanStore

log = logging.getLogger(__name__)

SWEEP_S = 0.25  # attempts running longer than this are announced (invocation-attempt-started)


class Tracing:
    def __init__(self, cfg: TracingConfig, deployments: Deployments,
                 export: OtlpExport | None = None) -> None:
        self.config = cfg
        self._sweeper: asyncio.Task[None] | None = None
        self.store = SpanStore(cfg.store_max_spans, cfg.store_max_age_s)
        self.export = export if export is not None else (OtlpExport(cfg) if cfg.export
                                                         else None)
        from opentelemetry.sdk.trace import TracerProvider

        # The sampler OTEL_TRACES_SAMPLER[_ARG] asks for (parentbased_always_on by default).
        from opentelemetry.sdk.trace.sampling import DEFAULT_ON

        self.sampler = TracerProvider(shutdown_on_exit=False).sampler
        self._default_sampler = self.sampler is DEFAULT_ON
        self.observer = TraceObserver(self.store.add,
                                      self.export.export if self.export is not None else None,
                                      deployments)

    def invoke_trace(self, invocation_id: str, traceparent: str | None) -> ids.InvokeTrace:
        """The trace fields of an ingress Invoke: sampled, inherited or new."""
        incoming = ids.parse_traceparent(traceparent)
        trace = ids.for_ingress(invocation_id, incoming)
        if self._default_sampler:  # parentbased_always_on: no need to ask it
            return trace if incoming is None or incoming.sampled else ids.UNTRACED
        from opentelemetry.trace import SpanContext, TraceFlags

        parent = (SpanContext(int(incoming.trace_id, 16), int(incoming.span_id, 16), True,
                              TraceFlags(1 if incoming.sampled else 0))
                  if incoming is not None else None)
        if not sampler_decides(self.sampler, trace.trace_id, "ingress", parent):
            return ids.UNTRACED
        return trace

    def start(self) -> None:
        """In the event loop: announce long-running attempts every SWEEP_S."""
        if self.export is not None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.observer.sweep(time.time_ns(), int(SWEEP_S * 1e9))

    async def aclose(self) -> None:
        """Stop sweeping, export what is queued (on a thread), stop the exporter."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        if self.export is not None:
            await asyncio.to_thread(self.export.shutdown)
