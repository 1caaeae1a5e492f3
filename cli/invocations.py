"""`rstq invocations list | describe | cancel | kill | purge | pause | resume`.

`describe` answers "why is this invocation stuck?" on one screen: status, target, caller,
retries and the last failure, the journal entry by entry, and what it waits for (a timer and
when it fires, an awakeable by id, a callee invocation and its status, the key's lock and who
holds it, the next retry).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, Final, Protocol

import click
from rich.console import Group, RenderableType
from rich.text import Text
from rstq.cli.admin_client import EXIT_NOT_FOUND, AdminClient, AdminError, sql_str
from rstq.cli.bulk import bulk_op
from rstq.cli.common import admin_options, confirm_or_abort, yes_option
from rstq.cli.render import (
    console,
    err,
    fields,
    human_duration,
    iso,
    print_json,
    relative,
    shorten,
    status_text,
    table,
    when,
)

Row = dict[str, Any]
STATUSES: Final = ("pending", "scheduled", "ready", "running", "backing-off", "suspended",
                   "paused", "completed")
FIRST_AWAKEABLE_SIGNAL: Final = 17  # signal indexes 1..16 are reserved (1 = cancel)


class RowSource(Protocol):
    """Anything that answers SQL with rows (AdminClient, or a fake in tests)."""

    def rows(self, query: str) -> list[Row]: ...


# --- what an invocation waits for ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Wait:
    kind: str  # timer, awakeable, call, run, promise, lock, retry, scheduled, paused, attempt
    what: str  # one line for people
    until: dt.datetime | None = None  # timers, retries, scheduled starts
    ref: str | None = None  # awakeable id, callee invocation id, lock holder

    def to_json(self) -> Row:
        return {"kind": self.kind, "what": self.what, "until": iso(self.until) or None,
                "ref": self.ref}


def _entry_kind(entry: Row) -> str:
    return str(entry.get("entry_type") or "").split(": ", 1)[-1]


def _awakeable(inv_id: str, signal: int) -> str:
    from rstq.protocol.ids import InvocationId, awakeable_id

    try:
        return awakeable_id(InvocationId.parse(inv_id), signal)
    except ValueError:
        return f"signal {signal}"


def waits_for(inv: Row, journal: Sequence[Row], *, lock_holder: str | None = None,
              callee_status: dict[str, str] | None = None) -> list[Wait]:
    """What keeps `inv` from completing, from its sys_invocation row and sys_journal rows."""
    status = inv.get("status")
    inv_id = str(inv.get("id"))
    callee_status = callee_status or {}
    if status == "completed":
        return []
    if status == "pending":
        target = f"{inv.get('target_service_name')}/{inv.get('target_service_key')}"
        holder = f", held by {lock_holder}" if lock_holder else ""
        return [Wait("lock", f"the lock of {target}{holder}", ref=lock_holder)]
    if status == "scheduled":
        at = inv.get("scheduled_start_at")
        return [Wait("scheduled", "its scheduled start", until=at)]
    out: list[Wait] = []
    if status == "backing-off":
        out.append(Wait("retry", f"retry #{(inv.get('retry_count') or 0) + 1} after: "
                                 f"{_failure_line(inv) or 'a failed attempt'}",
                        until=inv.get("next_retry_at")))
    if status == "paused":
        out.append(Wait("paused", "an operator: paused (retries exhausted or `pause`); "
                                  f"`rstq invocations resume {inv_id}`"))
    for e in journal:
        is_command = str(e.get("entry_type", "")).startswith("Command")
        if not is_command or e.get("completed") is not False:
            continue
        kind = _entry_kind(e)
        if kind == "Sleep":
            out.append(Wait("timer", "a timer (sleep)", until=e.get("sleep_wakeup_at")))
        elif kind == "Call":
            callee = e.get("invoked_id")
            st = callee_status.get(str(callee)) if callee else None
            label = f"the call to {e.get('invoked_target')}"
            if callee:
                label += f" ({callee}{', ' + st if st else ''})"
            out.append(Wait("call", label, ref=callee))
        elif kind == "Run":
            out.append(Wait("run", f"its side effect {e.get('name') or '(unnamed run)'!r}"))
        elif "Promise" in kind:
            out.append(Wait("promise", f"the promise {e.get('promise_name')!r}"))
        elif kind == "AttachInvocation" or kind == "GetInvocationOutput":
            out.append(Wait("call", f"the output of another invocation ({kind})"))
        else:
            out.append(Wait("completion", f"the completion of {kind} (entry {e.get('index')})"))
    for sig in inv.get("suspended_waiting_for_signals") or []:
        if sig >= FIRST_AWAKEABLE_SIGNAL:
            aid = _awakeable(inv_id, int(sig))
            out.append(Wait("awakeable", f"the awakeable {aid}", ref=aid))
    if not out and status == "running":
        out.append(Wait("attempt", "its running attempt (handler code, or an awakeable not yet "
                                   "visible: it shows once the invocation suspends)"))
    if not out and status == "suspended":
        out.append(Wait("completion", "a completion "
                        f"{list(inv.get('suspended_waiting_for_completions') or [])}"))
    if not out and status == "ready":
        out.append(Wait("attempt", "a free invoker slot (ready to start an attempt)"))
    return out


def _failure_line(inv: Row) -> str:
    msg = inv.get("last_failure")
    if not msg:
        return ""
    code = inv.get("last_failure_error_code")
    return f"[{code}] {msg}" if code else str(msg)


def wait_line(w: Wait, now: dt.datetime, compact: bool = False) -> str:
    if w.until is not None:
        if compact:
            return f"{w.what}, {relative(w.until, now)}"
        return f"{w.what} at {iso(w.until)} ({relative(w.until, now)})"
    return w.what


# --- fetching ------------------------------------------------------------------------------------


@dataclasses.dataclass
class InvocationDetail:
    inv: Row
    journal: list[Row]
    timers: list[Row]
    children: list[Row]
    lock_holder: str | None
    inbox: list[Row]
    waits: list[Wait]
    events: list[Row] = dataclasses.field(default_factory=list)  # sys_journal_events, parsed

    @property
    def last_error(self) -> Row | None:
        """The newest TransientError event's fields (message, code, stack trace, ...)."""
        for e in reversed(self.events):
            if e.get("event_type") == "TransientError":
                return dict(e.get("event") or {})
        return None

    def to_json(self) -> Row:
        return {"invocation": self.inv, "waiting_for": [w.to_json() for w in self.waits],
                "journal": self.journal, "timers": self.timers, "children": self.children,
                "lock_holder": self.lock_holder, "inbox": self.inbox, "events": self.events,
                "stop": [cmd for cmd, _ in stop_commands(self.inv)]}


def stop_commands(inv: Row) -> list[tuple[str, str]]:
    """The commands that stop a live invocation, each with what it does."""
    status, inv_id = inv.get("status"), inv.get("id")
    if status == "completed" or status is None:
        return []
    out = [(f"rstq inv cancel {inv_id}",
            "ends it cancelled (the handler may compensate)"),
           (f"rstq inv kill {inv_id}", "ends it at once, no compensation")]
    if status in ("running", "ready", "backing-off", "suspended"):
        out.append((f"rstq inv pause {inv_id}", "no more attempts until `rstq inv resume`"))
    elif status == "paused":
        out.append((f"rstq inv resume {inv_id}", "retries it now"))
    return out


JOURNAL_COLUMNS: Final = ("index, entry_type, name, completed, invoked_id, invoked_target, "
                          "sleep_wakeup_at, promise_name, entry_json, appended_at")


def fetch_detail(src: RowSource, inv_id: str) -> InvocationDetail:
    q = sql_str(inv_id)
    found = src.rows(f"SELECT * FROM sys_invocation WHERE id = {q}")
    if not found:
        raise AdminError(f"the invocation {inv_id} does not exist (or its retention has passed)",
                         EXIT_NOT_FOUND, 404)
    inv = found[0]
    journal = src.rows(f"SELECT {JOURNAL_COLUMNS} FROM sys_journal WHERE id = {q} "
                       "ORDER BY index")
    timers = src.rows("SELECT timer_id, kind, fire_at, completion_id FROM sys_timer "
                      f"WHERE invocation_id = {q} ORDER BY fire_at")
    children = src.rows("SELECT id, target, status, created_at FROM sys_invocation "
                        f"WHERE invoked_by_id = {q} ORDER BY created_at")
    lock_holder = None
    inbox: list[Row] = []
    key = inv.get("target_service_key")
    if key is not None and inv.get("target_service_ty") != "service":
        svc, k = sql_str(str(inv["target_service_name"])), sql_str(str(key))
        held = src.rows("SELECT invocation_id FROM sys_keyed_service_status "
                        f"WHERE service_name = {svc} AND service_key = {k}")
        lock_holder = str(held[0]["invocation_id"]) if held else None
        inbox = src.rows(f"SELECT id, created_at FROM sys_inbox WHERE service_name = {svc} "
                         f"AND service_key = {k} ORDER BY sequence_number")
    callees = sorted({str(e["invoked_id"]) for e in journal
                      if e.get("invoked_id") and e.get("completed") is False})
    callee_status: dict[str, str] = {}
    if callees:
        ids = ", ".join(sql_str(c) for c in callees)
        for r in src.rows(f"SELECT id, status FROM sys_invocation WHERE id IN ({ids})"):
            callee_status[str(r["id"])] = str(r["status"])
    waits = waits_for(inv, journal, lock_holder=lock_holder if lock_holder != inv_id else None,
                      callee_status=callee_status)
    events = []
    for e in src.rows("SELECT after_journal_entry_index, appended_at, event_type, event_json "
                      f"FROM sys_journal_events WHERE id = {q} ORDER BY appended_at"):
        try:
            event = json.loads(e.pop("event_json") or "{}")
        except ValueError:
            event = {}
        events.append({**e, "event": event})
    return InvocationDetail(inv, journal, timers, children, lock_holder, inbox, waits, events)


# --- rendering -----------------------------------------------------------------------------------


def _entry_detail(e: Row, width: int = 80) -> str:
    kind = _entry_kind(e)
    if e.get("invoked_target"):
        s = f"→ {e['invoked_target']}"
        return s + (f" {e['invoked_id']}" if e.get("invoked_id") else "")
    if e.get("sleep_wakeup_at") is not None:
        return f"until {iso(e['sleep_wakeup_at'])}"
    if e.get("promise_name"):
        return f"promise {e['promise_name']!r}"
    try:
        doc = json.loads(e.get("entry_json") or "{}")
        body = next(iter(next(iter(doc.values())).values()))
    except (ValueError, StopIteration, AttributeError):
        return ""
    if not isinstance(body, dict):
        return ""
    parts = []
    for name in ("key", "value", "failure", "result", "name", "completion_id",
                 "invocation_id"):
        if name in body and not (name == "name" and kind == "Run"):
            v = body[name]
            if isinstance(v, dict) and "content" in v:
                v = v["content"]
            parts.append(f"{name}={v}" if name != "value" else str(v))
    return shorten(" ".join(str(p) for p in parts), width)


def journal_table(journal: Sequence[Row], created: dt.datetime | None,
                  detail_width: int = 60) -> RenderableType:
    rows = []
    for e in journal:
        at = e.get("appended_at")
        offset = f"+{human_duration((at - created).total_seconds())}" if at and created else ""
        done = {True: "✓", False: Text("waiting", style="bold magenta"), None: ""}[
            e.get("completed")]
        rows.append((e.get("index"), e.get("entry_type"), e.get("name") or "", done,
                     _entry_detail(e, detail_width), offset))
    return table(["#", "entry", "name", "done", "detail", "at"], rows)


def describe_renderable(d: InvocationDetail, now: dt.datetime) -> RenderableType:
    inv = d.inv
    status = Text.assemble(status_text(inv.get("status")))
    if inv.get("completion_result"):
        status.append(" (")
        status.append_text(status_text(str(inv["completion_result"])))
        status.append(")")
    caller = "ingress" if inv.get("invoked_by") == "ingress" else \
        f"{inv.get('invoked_by_target') or inv.get('invoked_by_service_name')} " \
        f"({inv.get('invoked_by_id')})"
    attempts = None
    if inv.get("last_start_at") is not None or inv.get("retry_count"):
        attempts = (f"{inv.get('retry_count') or 0} failed since the last journal entry; "
                    f"last started {relative(inv.get('last_start_at'), now)}")
    failure = _failure_line(inv)
    if failure and inv.get("last_failure_related_entry_index") is not None:
        failure += (f" (at entry {inv['last_failure_related_entry_index']} "
                    f"{inv.get('last_failure_related_entry_type') or ''} "
                    f"{inv.get('last_failure_related_entry_name') or ''})").replace("  ", " ")
    parts: list[RenderableType] = [fields([
        ("ID", inv.get("id")),
        ("Target", inv.get("target")),
        ("Status", status),
        ("Caller", caller),
        ("Idempotency key", inv.get("idempotency_key")),
        ("Created", when(inv.get("created_at"), now)),
        ("Modified", when(inv.get("modified_at"), now)),
        ("Completed", when(inv.get("completed_at"), now)),
        ("Duration", human_duration((inv["completed_at"] - inv["created_at"]).total_seconds())
         if inv.get("completed_at") and inv.get("created_at") else None),
        ("Deployment", inv.get("pinned_deployment_id") and
         f"{inv['pinned_deployment_id']} (protocol v{inv.get('pinned_service_protocol_version')})"),
        ("Attempts", attempts),
        ("Last failure", Text(failure, style="red") if failure else None),
        ("Failure", Text(str(inv["completion_failure"]), style="red")
         if inv.get("completion_failure") else None),
        ("Trace", f"{inv['trace_id']} (rstq trace {inv.get('id')})"
         if inv.get("trace_id") else None),
        ("Lock holder", d.lock_holder if d.lock_holder and d.lock_holder != inv.get("id")
         else None),
        ("Key inbox", f"{len(d.inbox)} queued" if d.inbox else None),
    ])]
    if d.waits:
        waits = Text("Waiting for:\n", style="bold")
        for w in d.waits:
            waits.append(f"  • {wait_line(w, now)}\n", style="magenta")
        parts.append(waits)
    err_ = d.last_error
    if err_ and err_.get("error_stacktrace"):
        trace = Text(f"Stack trace of the last failure ([{err_.get('error_code')}] "
                     f"{err_.get('error_message')}, as the service sent it):\n", style="bold")
        trace.append(str(err_["error_stacktrace"]).rstrip() + "\n", style="red")
        parts.append(trace)
    stops = stop_commands(inv)
    if stops:
        stop = Text("To stop it:\n", style="bold")
        width = max(len(cmd) for cmd, _ in stops)
        for cmd, what in stops:
            stop.append(f"  {cmd.ljust(width)}", style="cyan")
            stop.append(f"  {what}\n")
        parts.append(stop)
    parts.append(Text(f"Journal ({len(d.journal)} entries)", style="bold"))
    parts.append(journal_table(d.journal, inv.get("created_at")))
    if d.timers:
        parts.append(Text("\nTimers", style="bold"))
        parts.append(table(["timer", "kind", "fires"],
                           [(t["timer_id"], t["kind"], when(t.get("fire_at"), now))
                            for t in d.timers]))
    if d.children:
        parts.append(Text("\nInvocations it started", style="bold"))
        parts.append(table(["id", "target", "status"],
                           [(c["id"], c["target"], status_text(c["status"])) for c in d.children]))
    return Group(*parts)


# --- commands ------------------------------------------------------------------------------------


@click.group("invocations")
def invocations() -> None:
    """List, inspect and manage invocations (alias: rstq inv)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def list_query(statuses: Sequence[str], service: str | None, key: str | None,
               handler: str | None, limit: int) -> str:
    where = []
    if statuses:
        wanted = set(statuses)
        if "live" in wanted:  # everything not completed
            wanted = (wanted - {"live"}) | (set(STATUSES) - {"completed"})
        where.append("status IN (" + ", ".join(sql_str(s) for s in sorted(wanted)) + ")")
    if service:
        where.append(f"target_service_name = {sql_str(service)}")
    if key is not None:
        where.append(f"target_service_key = {sql_str(key)}")
    if handler:
        where.append(f"target_handler_name = {sql_str(handler)}")
    return ("SELECT id, target, status, invoked_by, invoked_by_id, created_at, modified_at, "
            "completed_at, retry_count, next_retry_at, journal_size, last_failure, "
            "last_failure_error_code, completion_result, completion_failure FROM sys_invocation"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY created_at DESC LIMIT {int(limit)}")


def _split_statuses(values: Sequence[str]) -> list[str]:
    out = [s.strip().lower() for v in values for s in v.split(",") if s.strip()]
    bad = [s for s in out if s not in (*STATUSES, "live")]
    if bad:
        raise click.BadParameter(f"{', '.join(bad)}: expected one of "
                                 f"{', '.join((*STATUSES, 'live'))}", param_hint="--status")
    return out


@invocations.command("list")
@click.option("--status", "statuses", multiple=True, metavar="S[,S]",
              help="Only these statuses (repeatable or comma separated; `live` = not completed).")
@click.option("--service", default=None, help="Only invocations of this service.")
@click.option("--key", default=None, help="Only this virtual object / workflow key.")
@click.option("--handler", default=None, help="Only this handler.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000),
              help="At most this many rows (newest first).")
@admin_options
def list_(statuses: tuple[str, ...], service: str | None, key: str | None, handler: str | None,
          limit: int, client: AdminClient, as_json: bool) -> None:
    """List invocations, newest first."""
    rows = client.rows(list_query(_split_statuses(statuses), service, key, handler, limit))
    if as_json:
        print_json(rows)
        return
    now = _now()
    out = []
    for r in rows:
        note = r.get("completion_failure") or _failure_line(r)
        if r.get("status") == "backing-off" and r.get("next_retry_at"):
            note = f"retry {relative(r['next_retry_at'], now)}: {note}"
        out.append((r["id"], r["target"], status_text(r["status"]),
                    relative(r.get("created_at"), now), r.get("retry_count") or "",
                    r.get("journal_size"), shorten(str(note or ""), 60)))
    console().print(table(["id", "target", "status", "created", "retries", "journal",
                           "last failure"], out, no_wrap=("id",)))
    err(f"{len(rows)} invocation(s){' (limit reached)' if len(rows) == limit else ''}")


@invocations.command("describe")
@click.argument("invocation_id")
@admin_options
def describe(invocation_id: str, client: AdminClient, as_json: bool) -> None:
    """Everything about one invocation, and what it is waiting for."""
    d = fetch_detail(client, invocation_id)
    if as_json:
        print_json(d.to_json())
        return
    console().print(describe_renderable(d, _now()))


def _op_command(op: str, doc: str, past: str, destructive: bool) -> click.Command:
    @click.argument("invocation_ids", nargs=-1, required=False, metavar="[ID...]")
    @click.option("--where", "where", default=None, metavar="PREDICATE",
                  help="Instead of ids: every invocation matching this SQL predicate over "
                       "sys_invocation, e.g. \"target_service_name = 'Payment' AND status = "
                       "'backing-off'\" (asks first unless --yes).")
    @click.option("--limit", type=click.IntRange(min=1), default=None,
                  help="With --where: at most this many invocations (oldest first).")
    @yes_option
    @admin_options
    def run(invocation_ids: tuple[str, ...], where: str | None, limit: int | None,
            client: AdminClient, as_json: bool, yes: bool = False) -> None:
        if where is not None:
            if invocation_ids:
                raise click.UsageError("give invocation ids or --where, not both")
            bulk_op(client, op, past, where, limit=limit, yes=yes, as_json=as_json)
            return
        if not invocation_ids:
            raise click.UsageError("give one or more invocation ids, or --where PREDICATE")
        if limit is not None:
            raise click.UsageError("--limit goes with --where")
        if destructive:
            what = invocation_ids[0] if len(invocation_ids) == 1 else \
                f"{len(invocation_ids)} invocations"
            confirm_or_abort(f"{op.capitalize()} {what}?", yes)
        results = []
        for inv_id in invocation_ids:
            status = client.invocation_op(inv_id, op)
            results.append({"id": inv_id, "op": op, "status": status})
            if not as_json:
                note = " (accepted; it takes effect at the invocation's next step)" \
                    if status == 202 else ""
                err(f"{past} {inv_id}{note}")
        if as_json:
            print_json(results)

    run.__doc__ = doc
    return click.command(op, help=doc + "\n\nWith --where PREDICATE instead of ids: every "
                         "invocation the predicate selects, after a confirmation.")(run)


for _op, _doc, _past, _destructive in (
    ("cancel", "Cancel: the handler sees a cancellation and can compensate.", "cancelled", True),
    ("kill", "Kill: end at once with a failure, no compensation (also its callees).", "killed",
     True),
    ("purge", "Purge a completed invocation: forget its status, journal and idempotency key.",
     "purged", True),
    ("pause", "Pause: stop retrying / running it until `resume`.", "paused", False),
    ("resume", "Resume a paused (or backing-off: retry now) invocation.", "resumed", False),
):
    invocations.add_command(_op_command(_op, _doc, _past, _destructive))
