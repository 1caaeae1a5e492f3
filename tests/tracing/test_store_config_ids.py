"""Span store (ring buffer, Arrow table), configuration from flags/env, id helpers."""

from __future__ import annotations

import json

import pyarrow as pa
from rstq.protocol import trace_ids as ids
from rstq.protocol.ids import InvocationId
from rstq.tracing.config import TracingConfig
from rstq.tracing.spans import SpanLink, SpanRecord
from rstq.tracing.store import SpanStore

from tests.core.builders import inv_id_on


def span(trace: str, span_id: str, start: int, inv: str = "inv", parent: str = "",
         **kw: object) -> SpanRecord:
    return SpanRecord(trace, span_id, parent, "x", start, inv, **kw)  # type: ignore[arg-type]


def test_store_to_arrow_has_the_sys_span_columns() -> None:
    store = SpanStore()
    done = span("a" * 32, "1" * 16, 1_000, attributes={"rpc.service": "S", "n": 2})
    done.finish(3_000, "ERROR", "boom")
    store.add(done, now_ns=5_000)
    store.add(span("a" * 32, "2" * 16, 2_000, parent="1" * 16), now_ns=5_000)
    t = store.to_arrow()
    assert t.column_names == ["trace_id", "span_id", "parent_span_id", "name", "start", "end",
                              "status", "attributes", "invocation_id"]
    assert t.schema.field("start").type == pa.timestamp("ns", tz="UTC")
    rows = t.to_pylist()
    assert rows[0]["status"] == "ERROR" and rows[0]["parent_span_id"] is None
    assert json.loads(rows[0]["attributes"]) == {"rpc.service": "S", "n": 2}
    assert rows[1]["end"] is None and rows[1]["parent_span_id"] == "1" * 16  # still open
    assert rows[1]["invocation_id"] == "inv"


def test_store_retention_by_count_and_age() -> None:
    store = SpanStore(max_spans=3, max_age_s=1.0)
    for i in range(5):
        store.add(span("a" * 32, f"{i:016x}", i), now_ns=10)
    assert [s.start_ns for s in store.snapshot()] == [2, 3, 4]
    store.add(span("a" * 32, "f" * 16, 2_000_000_000), now_ns=2_000_000_010)
    assert [s.start_ns for s in store.snapshot()] == [2_000_000_000]
    assert store.evicted == 5


def test_trace_of_follows_links_to_new_traces() -> None:
    store = SpanStore()
    store.add(span("a" * 32, "1" * 16, 1, inv="caller"), now_ns=1)
    store.add(span("b" * 32, "2" * 16, 2, inv="sent",
                   links=[SpanLink("a" * 32, "1" * 16)]), now_ns=2)
    store.add(span("c" * 32, "3" * 16, 3, inv="other"), now_ns=3)
    assert [s.invocation_id for s in store.trace_of("caller")] == ["caller", "sent"]
    assert [s.invocation_id for s in store.trace_of("other")] == ["other"]


def test_config_from_flags_and_env() -> None:
    assert TracingConfig.from_env(env={}) is None
    cfg = TracingConfig.from_env("http://h:4317", env={})
    assert cfg is not None and (cfg.endpoint, cfg.protocol, cfg.export) == (
        "http://h:4317", "grpc", True)
    cfg = TracingConfig.from_env(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318",
                                      "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                      "OTEL_SERVICE_NAME": "mine"})
    assert cfg is not None and (cfg.endpoint, cfg.protocol, cfg.service_name) == (
        None, "http", "mine")  # the exporter reads the endpoint variable itself
    assert TracingConfig.from_env(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h",
                                       "OTEL_SDK_DISABLED": "true"}) is None
    cfg = TracingConfig.from_env(store=True, env={})
    assert cfg is not None and not cfg.export


def test_traceparent_and_derived_ids() -> None:
    tp = ids.parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    assert tp == ids.TraceParent("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", True)
    for bad in (None, "", "garbage", "00-" + "0" * 32 + "-b7ad6b7169203331-01",
                "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        assert ids.parse_traceparent(bad) is None
    inv = inv_id_on(0, 1, n=3)
    uuid = InvocationId.parse(inv).uuid
    assert ids.invocation_span_id(inv) == f"{uuid & (2**64 - 1):016x}"  # restate's rule
    assert ids.uuid_trace_id(inv) == f"{uuid:032x}"
    assert ids.attempt_span_id(inv, 1) == ids.attempt_span_id(inv, 1) != ids.attempt_span_id(
        inv, 2)
    assert ids.traceparent("a" * 32, "b" * 16) == f"00-{'a' * 32}-{'b' * 16}-01"
    assert ids.for_callee("", inv, 1, inv, False) == ids.UNTRACED
    fresh = ids.for_ingress(inv, None)
    assert len(fresh.trace_id) == 32 and fresh.parent_span_id == ids.ingress_span_id(inv)
