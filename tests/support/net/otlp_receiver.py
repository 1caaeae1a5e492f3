"""A real OTLP trace receiver for tests: gRPC (TraceService) and HTTP/protobuf (/v1/traces).

Both decode `ExportTraceServiceRequest` with opentelemetry-proto and keep flat span dicts
(hex ids, attributes as Python values). `wait_for` polls with a bounded deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.net.ports import free_port

Span = dict[str, Any]
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def _attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def decode(req: trace_service_pb2.ExportTraceServiceRequest, transport: str) -> list[Span]:
    out: list[Span] = []
    for rs in req.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "transport": transport, "resource": resource, "scope": ss.scope.name,
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(), "name": s.name,
                    "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano,
                    "attributes": _attrs(s.attributes),
                    "events": [{"name": e.name, "t": e.time_unix_nano,
                                "attributes": _attrs(e.attributes)} for e in s.events],
                    "links": [{"trace_id": k.trace_id.hex(), "span_id": k.span_id.hex(),
                               "attributes": _attrs(k.attributes)} for k in s.links],
                    "status": _STATUS.get(s.status.code, str(s.status.code)),
                    "status_message": s.status.message,
                })
    return out


class OtlpReceiver:
    """`with OtlpReceiver() as rx:` then point exporters at rx.grpc_url / rx.http_url."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.grpc_port = free_port()
        self.http_port = free_port()
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None

    @property
    def grpc_url(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _add(self, spans: list[Span]) -> None:
        with self._lock:
            self.spans.extend(spans)

    def start(self) -> OtlpReceiver:
        receiver = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - grpc name
                receiver._add(decode(request, "grpc"))
                return trace_service_pb2.ExportTraceServiceResponse()

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._grpc)
        self._grpc.add_insecure_port(f"127.0.0.1:{self.grpc_port}")
        self._grpc.start()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/v1/traces" or "protobuf" not in (
                        self.headers.get("content-type") or ""):
                    self.send_response(404)
                    self.end_headers()
                    return
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                receiver._add(decode(req, "http"))
                resp = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(resp)))
                self.end_headers()
                self.wfile.write(resp)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", self.http_port), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, pred: Callable[[list[Span]], bool], timeout: float = 20.0,
                 what: str = "spans") -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if pred(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s["name"] for s in spans})
                raise AssertionError(f"timed out waiting for {what}; have {len(spans)}: {names}")
            time.sleep(0.05)
