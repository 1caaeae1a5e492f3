"""Our OTLP encoding, decoded by the official opentelemetry-proto messages."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from rstq.tracing.otlp_encode import OtlpEncoder
from rstq.tracing.spans import SpanEvent, SpanLink, SpanRecord

from tests.support.net.otlp_receiver import decode


def test_encoding_round_trips_through_opentelemetry_proto() -> None:
    enc = OtlpEncoder({"service.name": "rstq", "n": 3}, "services")
    full = SpanRecord(
        "a" * 32, "b" * 16, "c" * 16, "invocation-attempt S/{key}/h", 1_800_000_000_000_000_001,
        "inv_1", {"rpc.service": "S", "n": 300, "neg": -2, "f": 1.5, "ok": True, "l": [1, 2],
                  "names": ["x", "y"]},
        end_ns=1_800_000_000_000_000_999, status="ERROR", status_message="[500] boom",
        events=[SpanEvent("restate.invocation.lifecycle.new_command", 1_800_000_000_000_000_500,
                          {"restate.journal.command.type": "Command/Run"}), SpanEvent("e2", 7)],
        links=[SpanLink("d" * 32, "e" * 16, {"restate.runtime": True})], parent_remote=True)
    root = SpanRecord("f" * 32, "1" * 16, "", "ingress S/h", 5, end_ns=None)
    raw = enc.request([full, root, full])  # the second `full` hits the attribute caches
    req = ExportTraceServiceRequest.FromString(raw)
    spans = decode(req, "test")
    assert len(spans) == 3 and spans[0] == spans[2]
    s, r = spans[0], spans[1]
    assert s["resource"] == {"service.name": "rstq", "n": 3} and s["scope"] == "services"
    assert (s["trace_id"], s["span_id"], s["parent_span_id"]) == ("a" * 32, "b" * 16, "c" * 16)
    assert (s["name"], s["start_ns"], s["end_ns"]) == (full.name, full.start_ns, full.end_ns)
    assert s["attributes"] == full.attributes
    assert s["events"] == [
        {"name": "restate.invocation.lifecycle.new_command", "t": 1_800_000_000_000_000_500,
         "attributes": {"restate.journal.command.type": "Command/Run"}},
        {"name": "e2", "t": 7, "attributes": {}}]
    assert s["links"] == [{"trace_id": "d" * 32, "span_id": "e" * 16,
                           "attributes": {"restate.runtime": True}}]
    assert (s["status"], s["status_message"]) == ("ERROR", "[500] boom")
    assert (r["parent_span_id"], r["end_ns"], r["status"], r["attributes"]) == ("", 5, "UNSET",
                                                                              {})
    span = req.resource_spans[0].scope_spans[0].spans[0]
    assert span.kind == Span.SPAN_KIND_INTERNAL and span.status.code == Status.STATUS_CODE_ERROR
    assert span.flags == 0x301  # sampled, parent flagged remote (came in with a traceparent)
