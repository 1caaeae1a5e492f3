"""The span record rstq builds: plain data, turned into OTLP by `export` and rows by `store`."""

from __future__ import annotations

from dataclasses import dataclass, field

from rstq.tracing import attributes as A

AttrValue = str | bool | int | float | list[int] | list[str]
Attrs = dict[str, AttrValue]


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Attrs = field(default_factory=dict)


@dataclass(slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: Attrs = field(default_factory=dict)


@dataclass(slots=True)
class SpanRecord:
    """One span. Open while `end_ns` is None (a running attempt, a scheduled invocation)."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str  # "" for a root
    name: str
    start_ns: int
    invocation_id: str = ""
    attributes: Attrs = field(default_factory=dict)
    end_ns: int | None = None
    status: str = A.UNSET
    status_message: str = ""
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)
    parent_remote: bool = False  # the parent came in with a traceparent header
    epoch: int = 0  # attempts: the attempt number

    def finish(self, end_ns: int, status: str = A.OK, message: str = "") -> None:
        self.end_ns = max(end_ns, self.start_ns)
        self.status = status
        self.status_message = message

    def to_json(self) -> dict[str, object]:
        return {
            "trace_id": self.trace_id, "span_id": self.span_id,
            "parent_span_id": self.parent_span_id or None, "name": self.name,
            "start_ns": self.start_ns, "end_ns": self.end_ns, "status": self.status,
            "status_message": self.status_message, "invocation_id": self.invocation_id,
            "attributes": self.attributes,
            "events": [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes}
                       for e in self.events],
            "links": [{"trace_id": k.trace_id, "span_id": k.span_id,
                       "attributes": k.attributes} for k in self.links],
        }

    @staticmethod
    def from_json(doc: dict[str, object]) -> SpanRecord:
        def attrs(x: object) -> Attrs:
            return dict(x) if isinstance(x, dict) else {}

        def events(x: object) -> list[SpanEvent]:
            return [SpanEvent(str(e["name"]), int(e["time_ns"]), attrs(e.get("attributes")))
                    for e in (x if isinstance(x, list) else [])]

        def links(x: object) -> list[SpanLink]:
            return [SpanLink(str(k["trace_id"]), str(k["span_id"]), attrs(k.get("attributes")))
                    for k in (x if isinstance(x, list) else [])]

        end = doc.get("end_ns")
        start = doc.get("start_ns")
        return SpanRecord(
            trace_id=str(doc["trace_id"]), span_id=str(doc["span_id"]),
            parent_span_id=str(doc.get("parent_span_id") or ""), name=str(doc["name"]),
            start_ns=int(start) if isinstance(start, int) else 0,
            invocation_id=str(doc.get("invocation_id") or ""),
            attributes=attrs(doc.get("attributes")),
            end_ns=int(end) if isinstance(end, int) else None,
            status=str(doc.get("status") or A.UNSET),
            status_message=str(doc.get("status_message") or ""),
            events=events(doc.get("events")), links=links(doc.get("links")))
