"""Span records straight to OTLP protobuf bytes (`ExportTraceServiceRequest`).

The SDK's encoder builds a protobuf object per span, attribute and event: about 100 µs per span
in Python, more than the rest of an invocation's runtime work. Writing the wire format directly,
with the attribute pairs (which repeat across an invocation's spans and across invocations of
a target) cached as encoded bytes, costs a few µs per span. Checked against opentelemetry-proto
in tests/tracing/test_otlp_encode.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from rstq.tracing import attributes as A
from rstq.tracing.spans import AttrValue, SpanRecord

_SMALL = [bytes((i,)) for i in range(128)]
_STATUS_CODE = {A.UNSET: 0, A.OK: 1, A.ERROR: 2}
_KIND_INTERNAL = b"\x30\x01"  # Span.kind = SPAN_KIND_INTERNAL
_FLAGS = b"\x85\x01" + (0x101).to_bytes(4, "little")  # sampled, parent is not remote
_FLAGS_REMOTE = b"\x85\x01" + (0x301).to_bytes(4, "little")  # sampled, remote parent
_CACHE_MAX = 50_000


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _any_value(v: AttrValue) -> bytes:
    if isinstance(v, str):
        return _ld(b"\x0a", v.encode())
    if isinstance(v, bool):
        return b"\x10\x01" if v else b"\x10\x00"
    if isinstance(v, int):
        return b"\x18" + _varint(v & 0xFFFFFFFFFFFFFFFF)
    if isinstance(v, float):
        return b"\x21" + struct.pack("<d", v)
    return _ld(b"\x2a", b"".join(_ld(b"\x0a", _any_value(x)) for x in v))  # array_value


class OtlpEncoder:
    def __init__(self, resource: Mapping[str, AttrValue], scope: str, scope_version: str = "",
                 ) -> None:
        res = b"".join(_ld(b"\x0a", self._kv_body(k, v)) for k, v in resource.items())
        self._resource = _ld(b"\x0a", res)  # ResourceSpans.resource
        scope_msg = _ld(b"\x0a", scope.encode())
        if scope_version:
            scope_msg += _ld(b"\x12", scope_version.encode())
        self._scope = _ld(b"\x0a", scope_msg)  # ScopeSpans.scope
        self._kv: dict[tuple[str, object], bytes] = {}
        self._names: dict[str, bytes] = {}

    @staticmethod
    def _kv_body(k: str, v: AttrValue) -> bytes:
        return _ld(b"\x0a", k.encode()) + _ld(b"\x12", _any_value(v))

    def _attrs(self, tag: bytes, attrs: Mapping[str, AttrValue]) -> bytes:
        cache = self._kv
        out = []
        for k, v in attrs.items():
            key = (k, tuple(v) if isinstance(v, list) else (type(v), v))
            enc = cache.get(key)
            if enc is None:
                if len(cache) > _CACHE_MAX:
                    cache.clear()
                enc = cache[key] = _ld(tag, self._kv_body(k, v))
            out.append(enc)
        return b"".join(out)

    def _name(self, tag: bytes, name: str) -> bytes:
        enc = self._names.get(name)
        if enc is None:
            if len(self._names) > _CACHE_MAX:
                self._names.clear()
            enc = self._names[name] = _ld(tag, name.encode())
        return enc

    def span(self, s: SpanRecord) -> bytes:
        parts = [b"\x0a\x10", bytes.fromhex(s.trace_id), b"\x12\x08", bytes.fromhex(s.span_id)]
        if s.parent_span_id:
            parts += (b"\x22\x08", bytes.fromhex(s.parent_span_id))
        end = s.end_ns if s.end_ns is not None else s.start_ns
        parts += (self._name(b"\x2a", s.name), _KIND_INTERNAL,
                  b"\x39", s.start_ns.to_bytes(8, "little"), b"\x41", end.to_bytes(8, "little"))
        if s.attributes:
            parts.append(self._attrs(b"\x4a", s.attributes))
        for e in s.events:
            body = b"\x09" + e.time_ns.to_bytes(8, "little") + self._name(b"\x12", e.name)
            if e.attributes:
                body += self._attrs(b"\x1a", e.attributes)
            parts.append(_ld(b"\x5a", body))
        for k in s.links:
            body = b"\x0a\x10" + bytes.fromhex(k.trace_id) + b"\x12\x08" + bytes.fromhex(k.span_id)
            if k.attributes:
                body += self._attrs(b"\x22", k.attributes)
            parts.append(_ld(b"\x6a", body + b"\x35" + (0x101).to_bytes(4, "little")))
        code = _STATUS_CODE.get(s.status, 0)
        if code:
            status = _ld(b"\x12", s.status_message.encode()) if s.status_message else b""
            parts.append(_ld(b"\x7a", status + b"\x18" + _SMALL[code]))
        parts.append(_FLAGS_REMOTE if s.parent_remote and s.parent_span_id else _FLAGS)
        return _ld(b"\x12", b"".join(parts))  # ScopeSpans.spans

    def request(self, spans: Iterable[SpanRecord]) -> bytes:
        scope_spans = _ld(b"\x12", self._scope + b"".join(self.span(s) for s in spans))
        return _ld(b"\x0a", self._resource + scope_spans)  # ExportTraceServiceRequest
