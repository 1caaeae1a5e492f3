"""rich helpers shared by the `rstq` client commands and `rstq top`.

Data goes to stdout, messages to stderr. Without a terminal (pipes, CI) output has no colour and
lines are not cut to a terminal width.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Final

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLE: Final = {
    "pending": "yellow",
    "scheduled": "cyan",
    "ready": "cyan",
    "running": "green",
    "backing-off": "bold red",
    "suspended": "magenta",
    "paused": "bold yellow",
    "completed": "dim",
    "failure": "red",
    "success": "green",
}
SPARK: Final = "▁▂▃▄▅▆▇█"


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    # Not a terminal: no colour, and wide enough that rows are not folded (grep, awk, less -S).
    width = None if tty else int(os.environ.get("COLUMNS") or 0) or 240
    return Console(file=stream, highlight=False, no_color=not tty, width=width,
                   force_terminal=None if tty else False)


def err(message: str) -> None:
    """A message for the person at the terminal (stderr)."""
    sys.stderr.write(message.rstrip("\n") + "\n")


def print_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def _json_default(v: object) -> object:
    if isinstance(v, dt.datetime):
        return iso(v)
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


# --- values --------------------------------------------------------------------------------------


def iso(v: dt.datetime | None) -> str:
    if v is None:
        return ""
    if v.tzinfo is None:
        v = v.replace(tzinfo=dt.UTC)
    return v.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_duration(seconds: float) -> str:
    """3.2s, 4m05s, 2h03m, 3d04h; sub-second as ms."""
    neg = seconds < 0
    s = abs(seconds)
    if s < 1:
        out = f"{s * 1000:.0f}ms"
    elif s < 60:
        out = f"{s:.1f}s"
    elif s < 3600:
        out = f"{int(s // 60)}m{int(s % 60):02d}s"
    elif s < 86400:
        out = f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    else:
        out = f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"
    return "-" + out if neg else out


def relative(v: dt.datetime | None, now: dt.datetime) -> str:
    """`3m05s ago` / `in 2h03m`."""
    if v is None:
        return ""
    delta = (now - v).total_seconds()
    return f"{human_duration(delta)} ago" if delta >= 0 else f"in {human_duration(-delta)}"


def when(v: dt.datetime | None, now: dt.datetime) -> str:
    """`2026-01-02T03:04:05.000Z (3m05s ago)`."""
    return f"{iso(v)} ({relative(v, now)})" if v is not None else ""


def cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dt.datetime):
        return iso(v)
    if isinstance(v, bytes):
        return v.hex() if len(v) <= 32 else v[:32].hex() + "…"
    if isinstance(v, list | dict):
        return json.dumps(v, default=str)
    return str(v)


def status_text(status: str | None) -> Text:
    s = status or ""
    return Text(s, style=STATUS_STYLE.get(s, ""))


def sparkline(values: Sequence[float]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))]
                   for v in values)


def shorten(s: str, width: int) -> str:
    return s if len(s) <= width else s[: max(0, width - 1)] + "…"


# --- tables --------------------------------------------------------------------------------------


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None,
          no_wrap: Sequence[str] = ()) -> Table:
    """The `restate` CLI look: upper-case headers, no borders."""
    out = Table(show_edge=False, box=None, header_style="bold", pad_edge=False, title=title,
                title_justify="left", title_style="bold")
    for name in columns:
        out.add_column(name.upper(), overflow="fold", no_wrap=name in no_wrap)
    for row in rows:
        out.add_row(*(v if isinstance(v, Text) else Text(cell(v)) for v in row))
    return out


def fields(pairs: Iterable[tuple[str, Any]]) -> Table:
    """A two-column `name: value` grid (empty values left out)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        if value is None or value == "":
            continue
        grid.add_row(name, value if isinstance(value, Text) else Text(cell(value)))
    return grid
