"""`rstq top`: a full-screen live view of a server, refreshed from SQL.

Invocations by status, throughput and latency over the last minutes, per-partition log and
snapshot positions, the longest-waiting invocations with what each waits for, the most
retried ones and the recent failures. Keys: ↑/↓ (or k/j) select an invocation, enter opens its
journal (the `rstq invocations describe` screen), t its trace, / filters by service (s cycles
through services, a shows all again), esc goes back, r refreshes now, q quits.

The screen is a pure function of a `TopData` (see `render_screen`), so tests render it with a
fake data source on a fixed-size console; the live loop uses rich Live and a cbreak stdin reader.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import click
from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rstq.cli.admin_client import AdminClient, AdminError, sql_str
from rstq.cli.common import admin_options
from rstq.cli.invocations import (
    JOURNAL_COLUMNS,
    Row,
    RowSource,
    Wait,
    describe_renderable,
    fetch_detail,
    wait_line,
    waits_for,
)
from rstq.cli.render import (
    STATUS_STYLE,
    human_duration,
    iso,
    relative,
    shorten,
    sparkline,
    status_text,
    table,
)

LIVE_STATUSES: Final = ("pending", "scheduled", "ready", "running", "backing-off", "suspended",
                        "paused")
SHOWN_STATUSES: Final = (*LIVE_STATUSES, "completed")


# --- data ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bucket:
    start: dt.datetime
    started: int = 0
    completed: int = 0
    failed: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class Waiting:
    row: Row  # sys_invocation columns (id, target, status, modified_at, ...)
    waits: tuple[Wait, ...]


@dataclasses.dataclass(frozen=True)
class TopData:
    now: dt.datetime
    server: str
    service: str | None
    by_status: dict[str, int]
    buckets: list[Bucket]
    bucket_s: int
    partitions: list[Row]  # sys_partition rows, plus `cmd_per_s` when known
    waiting: list[Waiting]
    retried: list[Row]
    failures: list[Row]
    services: list[str]
    error: str | None = None


class TopSource(Protocol):
    def fetch(self, service: str | None) -> TopData: ...

    def detail(self, invocation_id: str) -> RenderableType: ...

    def trace(self, invocation_id: str) -> RenderableType: ...


class SqlTopSource:
    """TopData from a server's SQL (POST /query); remembers the last partition positions to
    show commands applied per second."""

    def __init__(self, client: AdminClient, *, window_s: int = 600, bucket_s: int = 60,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.client: AdminClient = client
        self.src: RowSource = client
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._last_lsn: dict[int, tuple[float, int]] = {}

    def fetch(self, service: str | None) -> TopData:
        now = self.clock()
        try:
            return self._fetch(service, now)
        except AdminError as e:
            return TopData(now, self.client.url, service, {}, [], self.bucket_s, [], [], [], [],
                           [], error=e.message)

    def _fetch(self, service: str | None, now: dt.datetime) -> TopData:
        rows = self.src.rows
        svc = f"target_service_name = {sql_str(service)}" if service else None

        def where(*conds: str | None) -> str:
            parts = [c for c in conds if c]
            return " WHERE " + " AND ".join(parts) if parts else ""

        by_status = {str(r["status"]): int(r["n"]) for r in rows(
            f"SELECT status, count(*) AS n FROM sys_invocation{where(svc)} GROUP BY status")}
        buckets = self._buckets(svc, now)
        partitions = self._partitions(rows(
            "SELECT partition_id, applied_lsn, durable_lsn, first_lsn, snapshot_lsn, "
            "invocations FROM sys_partition ORDER BY partition_id"))
        live = ", ".join(sql_str(s) for s in LIVE_STATUSES)
        waiting_rows = rows(
            "SELECT id, target, status, target_service_name, target_service_key, "
            "target_service_ty, created_at, modified_at, retry_count, next_retry_at, "
            "scheduled_start_at, suspended_waiting_for_signals, "
            "suspended_waiting_for_completions, last_failure, last_failure_error_code "
            f"FROM sys_invocation{where(f'status IN ({live})', svc)} "
            "ORDER BY modified_at ASC LIMIT 10")
        waiting = self._waits(waiting_rows)
        retried = rows(
            "SELECT id, target, status, retry_count, next_retry_at, last_failure, "
            f"last_failure_error_code FROM sys_invocation{where('retry_count > 0', svc)} "
            "ORDER BY retry_count DESC, modified_at ASC LIMIT 6")
        failures = rows(
            "SELECT id, target, completed_at, completion_failure FROM sys_invocation"
            f"{where('completion_result = ' + sql_str('failure'), svc)} "
            "ORDER BY completed_at DESC LIMIT 6")
        services = [str(r["name"]) for r in rows("SELECT name FROM sys_service ORDER BY name")]
        return TopData(now, self.client.url, service, by_status, buckets, self.bucket_s,
                       partitions, waiting, retried, failures, services)

    def _buckets(self, svc: str | None, now: dt.datetime) -> list[Bucket]:
        b = self.bucket_s * 1000
        now_ms = int(now.timestamp() * 1000)
        first = (now_ms // b - self.window_s // self.bucket_s + 1) * b
        cond = f" AND {svc}" if svc else ""
        lat = "arrow_cast(completed_at, 'Int64') - arrow_cast(created_at, 'Int64')"
        done = {int(r["b"]): r for r in self.src.rows(
            f"SELECT arrow_cast(completed_at, 'Int64') / {b} AS b, count(*) AS n, "
            "sum(CASE WHEN completion_result = 'failure' THEN 1 ELSE 0 END) AS failed, "
            f"approx_percentile_cont({lat}, 0.5) AS p50, "
            f"approx_percentile_cont({lat}, 0.95) AS p95 FROM sys_invocation "
            f"WHERE arrow_cast(completed_at, 'Int64') >= {first}{cond} GROUP BY 1")}
        started = {int(r["b"]): int(r["n"]) for r in self.src.rows(
            f"SELECT arrow_cast(created_at, 'Int64') / {b} AS b, count(*) AS n "
            f"FROM sys_invocation WHERE arrow_cast(created_at, 'Int64') >= {first}{cond} "
            "GROUP BY 1")}
        out = []
        for i in range(first // b, now_ms // b + 1):
            d = done.get(i, {})
            out.append(Bucket(dt.datetime.fromtimestamp(i * b / 1000, dt.UTC),
                              started.get(i, 0), int(d.get("n") or 0), int(d.get("failed") or 0),
                              d.get("p50"), d.get("p95")))
        return out

    def _partitions(self, parts: list[Row]) -> list[Row]:
        t = time.monotonic()
        out = []
        for p in parts:
            pid, lsn = int(p["partition_id"]), int(p["applied_lsn"] or 0)
            prev = self._last_lsn.get(pid)
            rate = (lsn - prev[1]) / (t - prev[0]) if prev and t > prev[0] else None
            self._last_lsn[pid] = (t, lsn)
            out.append({**p, "cmd_per_s": rate})
        return out

    def _waits(self, waiting_rows: list[Row]) -> list[Waiting]:
        if not waiting_rows:
            return []
        ids = ", ".join(sql_str(str(r["id"])) for r in waiting_rows)
        journal: dict[str, list[Row]] = {}
        for e in self.src.rows(f"SELECT id, {JOURNAL_COLUMNS} FROM sys_journal "
                               f"WHERE id IN ({ids}) AND completed = false ORDER BY index"):
            journal.setdefault(str(e["id"]), []).append(e)
        holders: dict[tuple[str, str], str] = {}
        pending = {(str(r["target_service_name"]), str(r["target_service_key"]))
                   for r in waiting_rows if r["status"] == "pending"}
        if pending:
            names = ", ".join(sql_str(s) for s in sorted({s for s, _ in pending}))
            for h in self.src.rows("SELECT service_name, service_key, invocation_id FROM "
                                   f"sys_keyed_service_status WHERE service_name IN ({names})"):
                holders[(str(h["service_name"]), str(h["service_key"]))] = str(h["invocation_id"])
        return [Waiting(r, tuple(waits_for(
                    r, journal.get(str(r["id"]), []),
                    lock_holder=holders.get((str(r["target_service_name"]),
                                             str(r["target_service_key"]))))))
                for r in waiting_rows]

    def detail(self, invocation_id: str) -> RenderableType:
        try:
            return describe_renderable(fetch_detail(self.src, invocation_id), self.clock())
        except AdminError as e:
            return Text(f"error: {e.message}", style="red")

    def trace(self, invocation_id: str) -> RenderableType:
        try:
            doc = self.client.trace(invocation_id)
        except AdminError as e:
            if e.status == 404:
                return Text("this server has no trace API (GET /traces/{id})", style="yellow")
            return Text(f"error: {e.message}", style="red")
        return trace_renderable(invocation_id, doc)


def trace_renderable(invocation_id: str, doc: Any) -> RenderableType:
    spans = list((doc or {}).get("spans") or [])
    if not spans:
        return Text(f"no spans kept for {invocation_id} (the server runs with --no-trace-store, "
                    "or they are older than its --trace-store-size)", style="yellow")
    try:
        from rstq.tracing.render import waterfall
        from rstq.tracing.spans import SpanRecord

        recs = [SpanRecord.from_json(s) for s in spans]
        return Group(Text(f"trace {', '.join(sorted({r.trace_id for r in recs}))} "
                          f"({len(recs)} spans)", style="bold"),
                     waterfall(recs, time.time_ns()))
    except Exception:  # tracing not installed / other span format: a plain table
        return table(["span", "start", "duration"],
                     [(s.get("name"), s.get("start_ns") or s.get("start"),
                       s.get("duration_ms") or "") for s in spans])


# --- the screen ----------------------------------------------------------------------------------


@dataclasses.dataclass
class ViewState:
    view: str = "main"  # main, journal, trace
    selected: int = 0
    filter_input: str | None = None  # typing a service filter
    subject: str | None = None  # the invocation shown in journal / trace
    detail: RenderableType | None = None
    message: str | None = None
    interval_s: float = 2.0


def _status_panel(d: TopData) -> Panel:
    total = sum(d.by_status.values()) or 1
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column(no_wrap=True)
    for s in SHOWN_STATUSES:
        n = d.by_status.get(s, 0)
        bar = "█" * (max(1, round(n / total * 8)) if n else 0)
        grid.add_row(status_text(s), str(n), Text(bar, style=STATUS_STYLE.get(s, "")))
    return Panel(grid, title="invocations", title_align="left")


def _throughput_panel(d: TopData) -> Panel:
    b = d.buckets
    per = f"/{d.bucket_s}s" if d.bucket_s != 60 else "/min"
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, justify="right")

    def series(name: str, vals: Sequence[float | None], unit: str, style: str) -> None:
        clean = [v or 0.0 for v in vals]
        last = next((v for v in reversed(vals) if v is not None), None)
        shown = "" if last is None else (human_duration(last / 1000) if unit == "ms"
                                         else f"{last:.0f}{unit}")
        grid.add_row(name, Text(sparkline(clean), style=style), shown)

    series("started", [x.started for x in b], per, "cyan")
    series("completed", [x.completed for x in b], per, "green")
    series("failed", [x.failed for x in b], per, "red")
    series("p50 latency", [x.p50_ms for x in b], "ms", "yellow")
    series("p95 latency", [x.p95_ms for x in b], "ms", "magenta")
    minutes = len(b) * d.bucket_s // 60
    return Panel(grid, title=f"throughput & latency, last {minutes} min", title_align="left")


def _partition_panel(d: TopData) -> Panel:
    rows = []
    for p in d.partitions:
        rate = p.get("cmd_per_s")
        rows.append((p["partition_id"], p["applied_lsn"], p["durable_lsn"], p["snapshot_lsn"],
                     p["first_lsn"], p["invocations"], "" if rate is None else f"{rate:.0f}"))
    return Panel(table(["p", "applied", "durable", "snap", "first", "inv", "cmd/s"], rows),
                 title="partitions (log positions)", title_align="left")


def _waiting_panel(d: TopData, st: ViewState, width: int) -> Panel:
    t = Table(show_edge=False, box=None, header_style="bold", pad_edge=False, expand=True)
    t.add_column("", width=1, no_wrap=True)
    t.add_column("ID", no_wrap=True)
    t.add_column("TARGET", no_wrap=True, max_width=28)
    t.add_column("STATUS", no_wrap=True)
    t.add_column("FOR", no_wrap=True, justify="right")
    t.add_column("WAITING FOR", ratio=1, overflow="fold")
    for i, w in enumerate(d.waiting):
        r = w.row
        mark = Text("▶", style="bold") if st.view == "main" and i == st.selected else ""
        since = r.get("modified_at")
        waits = "; ".join(wait_line(x, d.now, compact=True) for x in w.waits)
        t.add_row(mark, str(r["id"]), shorten(str(r["target"]), 28), status_text(r["status"]),
                  human_duration((d.now - since).total_seconds()) if since else "",
                  Text(waits))
    if not d.waiting:
        t.add_row("", Text("nothing waiting", style="dim"), "", "", "", "")
    return Panel(t, title="longest waiting (since last progress)", title_align="left")


def _retried_panel(d: TopData) -> Panel:
    t = Table(show_edge=False, box=None, header_style="bold", pad_edge=False, expand=True)
    cols: tuple[tuple[str, dict[str, Any]], ...] = (
        ("ID", {}), ("TARGET", {"max_width": 28}), ("RETRIES", {"justify": "right"}),
        ("NEXT", {}), ("LAST FAILURE", {"ratio": 1}))
    for name, kw in cols:
        t.add_column(name, no_wrap=True, **kw)
    for r in d.retried:
        failure = f"[{r['last_failure_error_code']}] " if r.get("last_failure_error_code") else ""
        t.add_row(str(r["id"]), shorten(str(r.get("target") or ""), 28), str(r["retry_count"]),
                  relative(r.get("next_retry_at"), d.now) if r.get("next_retry_at") else
                  str(r.get("status") or ""),
                  Text(failure + str(r.get("last_failure") or ""), style="red",
                       overflow="ellipsis"))
    return Panel(t, title="most retried", title_align="left")


def _failures_panel(d: TopData) -> Panel:
    t = Table(show_edge=False, box=None, header_style="bold", pad_edge=False, expand=True)
    t.add_column("ID", no_wrap=True)
    t.add_column("TARGET", no_wrap=True, max_width=28)
    t.add_column("WHEN", no_wrap=True)
    t.add_column("FAILURE", no_wrap=True, ratio=1)
    for r in d.failures:
        t.add_row(str(r["id"]), shorten(str(r["target"]), 28),
                  relative(r.get("completed_at"), d.now),
                  Text(str(r.get("completion_failure") or ""), style="red", overflow="ellipsis"))
    return Panel(t, title="recent failures", title_align="left")


def _header(d: TopData, st: ViewState) -> Text:
    h = Text()
    h.append("rstq top", style="bold reverse")
    h.append(f"  {d.server}  {iso(d.now)}  ")
    h.append(f"service: {d.service or 'all'}", style="bold cyan" if d.service else "")
    h.append(f"  every {st.interval_s:g}s")
    if d.error:
        h.append(f"  ⚠ {d.error}", style="bold red")
    return h


def _footer(st: ViewState) -> Text:
    if st.filter_input is not None:
        return Text(f"service filter: {st.filter_input}▏ (enter: apply, esc: cancel)",
                    style="reverse")
    if st.view != "main":
        keys = "esc/b back  t trace  j journal  r refresh  q quit"
    else:
        keys = "↑↓ select  enter journal  t trace  / filter  s next service  a all  r refresh  " \
               "q quit"
    return Text(keys + (f"   {st.message}" if st.message else ""), style="dim")


def render_screen(d: TopData, st: ViewState, width: int, height: int) -> RenderableType:
    """The whole screen for `d` (pure: same data and state, same screen)."""
    layout = Layout()
    if st.view != "main":
        title = f"{'journal' if st.view == 'journal' else 'trace'} of {st.subject}"
        layout.split_column(
            Layout(_header(d, st), size=1),
            Layout(Panel(st.detail or Text("loading…"), title=title, title_align="left")),
            Layout(_footer(st), size=1))
        return layout
    top_rows = max(10, min(len(d.partitions), 12) + 3)
    top = Layout(size=top_rows)
    top.split_row(Layout(_status_panel(d), size=30), Layout(_throughput_panel(d), ratio=1),
                  Layout(_partition_panel(d), size=52))
    layout.split_column(Layout(_header(d, st), size=1), top,
                        Layout(_waiting_panel(d, st, width), ratio=3),
                        Layout(_retried_panel(d), ratio=1), Layout(_failures_panel(d), ratio=1),
                        Layout(_footer(st), size=1))
    return layout


# --- keys and the live loop ----------------------------------------------------------------------

KEYS: Final = {"\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down",
               "\r": "enter", "\n": "enter", "\x1b": "esc", "\x7f": "backspace",
               "\x08": "backspace", "\x03": "q"}


def split_keys(data: str) -> list[str]:
    """Raw terminal input -> key names (arrows, enter, esc, backspace) or characters."""
    out = []
    i = 0
    while i < len(data):
        for seq in ("\x1b[A", "\x1bOA", "\x1b[B", "\x1bOB"):
            if data.startswith(seq, i):
                out.append(KEYS[seq])
                i += len(seq)
                break
        else:
            if data.startswith("\x1b[", i):  # another escape sequence: skip it
                j = i + 2
                while j < len(data) and not data[j].isalpha() and data[j] != "~":
                    j += 1
                i = j + 1
                continue
            ch = data[i]
            out.append(KEYS.get(ch, ch))
            i += 1
    return out


class KeyReader:
    """Reads keys from a terminal in cbreak mode on a thread; restores the terminal on close."""

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self.fd = fd
        self.keys: queue.Queue[str] = queue.Queue()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rstq-top-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 64)
            except OSError:
                return
            if not data:
                self.keys.put("q")
                return
            for k in split_keys(data.decode(errors="replace")):
                self.keys.put(k)

    def get(self, timeout: float) -> str | None:
        try:
            return self.keys.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        import termios

        self._stop.set()
        self._thread.join(1)
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class Top:
    """The interaction: a key changes the ViewState (and maybe refetches)."""

    def __init__(self, source: TopSource, interval_s: float = 2.0,
                 service: str | None = None) -> None:
        self.source = source
        self.st = ViewState(interval_s=interval_s)
        self.service = service
        self.data = source.fetch(service)

    def refresh(self) -> None:
        self.data = self.source.fetch(self.service)
        self.st.selected = min(self.st.selected, max(0, len(self.data.waiting) - 1))
        if self.st.view == "journal" and self.st.subject:
            self.st.detail = self.source.detail(self.st.subject)

    def selected_id(self) -> str | None:
        if self.st.view != "main" and self.st.subject:
            return self.st.subject
        if not self.data.waiting:
            return None
        return str(self.data.waiting[min(self.st.selected, len(self.data.waiting) - 1)].row["id"])

    def key(self, k: str) -> bool:
        """Handle one key; False = quit."""
        st = self.st
        st.message = None
        if st.filter_input is not None:
            if k == "enter":
                self.service = st.filter_input.strip() or None
                st.filter_input = None
                self.refresh()
            elif k == "esc":
                st.filter_input = None
            elif k == "backspace":
                st.filter_input = st.filter_input[:-1]
            elif len(k) == 1 and k.isprintable():
                st.filter_input += k
            return True
        if k == "q":
            return False
        if k == "r":
            self.refresh()
        elif k in ("esc", "b") and st.view != "main":
            st.view, st.detail, st.subject = "main", None, None
        elif k in ("up", "k") and st.view == "main":
            st.selected = max(0, st.selected - 1)
        elif k in ("down", "j") and st.view == "main":
            st.selected = min(max(0, len(self.data.waiting) - 1), st.selected + 1)
        elif k in ("enter", "j", "t"):
            inv_id = self.selected_id()
            if inv_id is None:
                st.message = "no invocation selected"
                return True
            st.subject = inv_id
            st.view = "trace" if k == "t" else "journal"
            st.detail = (self.source.trace(inv_id) if k == "t" else self.source.detail(inv_id))
        elif k == "/" and st.view == "main":
            st.filter_input = self.service or ""
        elif k == "s" and st.view == "main":
            names = self.data.services
            if names:
                i = names.index(self.service) + 1 if self.service in names else 0
                self.service = names[i] if i < len(names) else None
                self.refresh()
        elif k == "a":
            self.service = None
            self.refresh()
        return True

    def screen(self, width: int, height: int) -> RenderableType:
        return render_screen(self.data, self.st, width, height)


def run_live(top: Top, console: Console, once: bool = False) -> None:
    from rich.live import Live

    if once:  # print one screen and exit (scripts, `watch`)
        console.print(top.screen(console.width, console.height))
        return
    reader = KeyReader(sys.stdin.fileno()) if sys.stdin.isatty() else None
    try:
        with Live(top.screen(console.width, console.height), console=console, screen=True,
                  auto_refresh=False, transient=True) as live:
            next_refresh = time.monotonic() + top.st.interval_s
            while True:
                timeout = next_refresh - time.monotonic()
                k = None
                if reader is not None:
                    k = reader.get(timeout)
                else:
                    time.sleep(max(0.0, timeout))
                if k is not None:
                    if not top.key(k):
                        return
                if time.monotonic() >= next_refresh:
                    if top.st.view == "main" or top.st.view == "journal":
                        top.refresh()
                    next_refresh = time.monotonic() + top.st.interval_s
                live.update(top.screen(console.width, console.height), refresh=True)
    finally:
        if reader is not None:
            reader.close()


@click.command("top")
@click.option("--service", default=None, help="Start filtered to this service.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between refreshes.")
@click.option("--window", default=10, show_default=True, type=click.IntRange(1, 24 * 60),
              help="Minutes of throughput / latency history.")
@click.option("--once", is_flag=True, help="Print one screen and exit (no terminal needed).")
@admin_options
def top(service: str | None, interval: float, window: int, once: bool, client: AdminClient,
        as_json: bool) -> None:
    """A live, full-screen view of the server (q quits; keys in the footer)."""
    client.health()  # a clear error (exit 3) when no server is running
    bucket_s = 60 if window >= 5 else 15
    source = SqlTopSource(client, window_s=window * 60, bucket_s=bucket_s)
    t = Top(source, interval, service)
    if as_json:
        from rstq.cli.render import print_json

        print_json(dataclasses.asdict(t.data))
        return
    tty = sys.stdout.isatty()
    out = Console() if tty else Console(width=int(os.environ.get("COLUMNS") or 160),
                                        height=int(os.environ.get("LINES") or 48))
    run_live(t, out, once=once or not tty)
