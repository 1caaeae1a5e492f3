"""Tracing configuration: `rstq server --otlp URL [--otlp-protocol grpc|http]` or the standard
OTEL_* variables (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT / _PROTOCOL / _HEADERS / _TIMEOUT,
OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER[_ARG], OTEL_BSP_*).

Tracing is off unless an endpoint is given (flag or variable) or `store` is asked for (`rstq
server` asks for it unless `--no-trace-store`); off costs nothing: no ids in commands, no
observer, no `traceparent` to services.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from rstq.tracing import attributes as A

PROTOCOLS = ("grpc", "http")


@dataclass
class TracingConfig:
    endpoint: str | None = None  # None with export: the exporter reads OTEL_EXPORTER_OTLP_*
    protocol: str = "grpc"  # grpc | http (http/protobuf)
    export: bool = True  # False: spans only in the in-memory store (`rstq trace`, sys_span)
    service_name: str = A.DEFAULT_SERVICE_NAME
    store_max_spans: int = 100_000
    store_max_age_s: float = 3600.0

    @staticmethod
    def from_env(otlp: str | None = None, protocol: str | None = None, store: bool = False,
                 env: Mapping[str, str] | None = None, store_max_spans: int | None = None,
                 ) -> TracingConfig | None:
        """The configuration the flags and environment ask for, or None (tracing off). `store`:
        keep spans in memory even without export (`rstq server` does by default)."""
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        endpoint_env = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
        exporter_off = env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none"
        export = otlp is not None or (endpoint_env is not None and not exporter_off)
        if not export and not store:
            return None
        proto = protocol or (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                             or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
        proto = "http" if proto.strip().lower().startswith("http") else "grpc"
        return TracingConfig(
            endpoint=otlp, protocol=proto, export=export,
            service_name=env.get("OTEL_SERVICE_NAME") or A.DEFAULT_SERVICE_NAME,
            store_max_spans=(store_max_spans if store_max_spans is not None
                             else int(env.get("RSTQ_TRACE_STORE_SPANS", 100_000))),
            store_max_age_s=float(env.get("RSTQ_TRACE_STORE_AGE_S", 3600.0)))
