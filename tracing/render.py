"""A trace as a waterfall in the terminal (rich): tree on the left, timeline bar on the right."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from rstq.tracing import attributes as A
from rstq.tracing.spans import SpanRecord

_STYLE = {A.ERROR: "red", A.OK: "green", A.UNSET: "cyan"}


def _order(spans: list[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Depth-first, children by start time; roots (and orphans, linked traces) by start."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[SpanRecord]] = {}
    roots: list[SpanRecord] = []
    for s in sorted(spans, key=lambda s: (s.start_ns, s.end_ns or s.start_ns)):
        if s.parent_span_id and s.parent_span_id in ids:
            children.setdefault(s.parent_span_id, []).append(s)
        else:
            roots.append(s)
    out: list[tuple[int, SpanRecord]] = []

    def walk(s: SpanRecord, depth: int) -> None:
        out.append((depth, s))
        for ch in children.get(s.span_id, []):
            walk(ch, depth + 1)

    for r in roots:
        walk(r, 0)
    return out


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.2f} s"


def waterfall(spans: list[SpanRecord], now_ns: int, width: int = 40) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None)
    table.add_column("span")
    table.add_column("duration", justify="right")
    table.add_column("timeline", no_wrap=True)
    if not spans:
        return table
    t0 = min(s.start_ns for s in spans)
    t1 = max(max(s.end_ns or now_ns for s in spans), t0 + 1)
    scale = width / (t1 - t0)
    for depth, s in _order(spans):
        end = s.end_ns if s.end_ns is not None else now_ns
        left = int((s.start_ns - t0) * scale)
        length = max(1, int((end - s.start_ns) * scale))
        style = "yellow" if s.end_ns is None else _STYLE.get(s.status, "white")
        bar = Text(" " * left)
        bar.append("█" * min(length, width - left + 1), style=style)
        label = Text("  " * depth)
        label.append(s.name, style="bold" if depth == 0 else "")
        if s.links:
            label.append(f" ↖ link {s.links[0].trace_id[:8]}", style="dim")
        if s.status == A.ERROR and s.status_message:
            label.append(f"  {s.status_message[:60]}", style="red")
        for e in s.events:
            kind = e.attributes.get(A.COMMAND_TYPE) or e.attributes.get(A.NOTIFICATION_TYPE)
            name = e.attributes.get(A.COMMAND_NAME)
            short = e.name.rsplit(".", 1)[-1]
            detail = f"{kind}" + (f" {name!s}" if name else "") if kind else short
            label.append(f"\n{'  ' * (depth + 1)}· {detail} +{_ms(e.time_ns - s.start_ns)}",
                         style="dim")
        dur = "running" if s.end_ns is None else _ms(end - s.start_ns)
        table.add_row(label, dur, bar)
    return table
