"""Row builders: a partition's Python state to row tuples, in the declared column order.

Each builder takes one key of a tracked dict of `PartitionState` and returns the rows that key
contributes now (none when it is gone). They run on the partition's own thread (the event
loop), so they see a state between two applied batches, never a half-applied one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rstq.core import model as m
from rstq.core.partitioning import partition_key_for
from rstq.query.entries import describe, describe_type

Row = tuple[Any, ...]
SERVER_VERSION = "rstq 0.1.0"

_RAW_STATUS = {m.BACKING_OFF: "invoked"}
_INVOKER_VIEW = (m.INVOKED, m.BACKING_OFF, m.PAUSED)  # rows of sys_invocation_state


def computed_status(inv: m.Invocation, in_flight: bool) -> str:
    """sys_invocation.status, as Restate's view computes it."""
    s = inv.status
    if s == m.INBOXED:
        return "pending"
    if s in (m.SCHEDULED, m.COMPLETED, m.SUSPENDED, m.PAUSED):
        return s
    if s == m.INVOKED and in_flight:
        return "running"
    if s == m.BACKING_OFF or inv.retry_count > 0:
        return "backing-off"
    return "ready"


def _utf8(b: bytes | None) -> str | None:
    if b is None:
        return None
    try:
        return b.decode()
    except UnicodeDecodeError:
        return None


def _failure(f: tuple[int, str] | None) -> str | None:
    return None if f is None else f"[{f[0]}] {f[1]}"


def _type_name(code: int | None) -> str | None:
    if code is None:
        return None
    return describe_type(code)[0].split(": ", 1)[-1]


def invocation_row(inv: m.Invocation, in_flight: bool) -> Row:
    """One row of the invocation store (INVOCATION_STORE's column order)."""
    keyed = inv.service_ty != "service"
    caller_service = inv.caller_target.split("/", 1)[0] if inv.caller_target else None
    completed = inv.status == m.COMPLETED
    invoker = inv.status in _INVOKER_VIEW
    running = in_flight and inv.status == m.INVOKED
    waiting = inv.status == m.SUSPENDED
    return (
        inv.partition_key, inv.invocation_id, None, inv.target, inv.service,
        inv.key if keyed else None, inv.handler, inv.service_ty, None, None,
        inv.idempotency_key, inv.invoked_by, caller_service, inv.caller_id, None,
        inv.caller_target, None, inv.deployment_id or None, inv.protocol_version or None,
        inv.trace_id or None, len(inv.journal), inv.journal_commands,
        inv.created_at, SERVER_VERSION, inv.modified_at, inv.inboxed_at,
        inv.created_at if inv.execute_at is not None else None, inv.execute_at,
        inv.running_at, inv.completed_at,
        inv.completion_retention_ms, inv.journal_retention_ms,
        inv.waiting_completions if waiting else None,
        inv.waiting_signals if waiting else None,
        (inv.waiting_future_json or None) if waiting else None,
        # invoker view (NULL outside it, as Restate's RIGHT JOIN gives)
        running if invoker else None,
        inv.retry_count if invoker else None,
        inv.last_start_at if invoker else None,
        inv.next_retry_at if invoker else None,
        (inv.deployment_id or None) if invoker else None,
        None,
        inv.last_failure if invoker else None,
        (str(inv.last_failure_code) if inv.last_failure_code is not None else None)
        if invoker else None,
        None, None, None,
        inv.last_failure_command_index if invoker else None,
        inv.last_failure_command_name if invoker else None,
        _type_name(inv.last_failure_command_type) if invoker else None,
        None,
        computed_status(inv, running),
        ("failure" if inv.output_failure is not None else "success") if completed else None,
        _failure(inv.output_failure) if completed else None,
        _RAW_STATUS.get(inv.status, inv.status),
    )


def journal_proto(inv: m.Invocation | None) -> list[Row]:
    """What the journal rows of `inv` need, captured now (cheap); `journal_rows` expands it
    later, off the event loop. Entries are never changed once appended, so referencing them
    is safe; the list itself is copied."""
    if inv is None or not inv.journal:
        return []
    return [(inv.invocation_id, inv.partition_key, tuple(inv.journal),
             frozenset(inv.completed_ids))]


# sys_journal columns that need the payload decoded (~20 µs an entry); the others come from
# the entry's type code and bytes alone.
DECODED_JOURNAL_COLUMNS = ("name", "completed", "invoked_target", "sleep_wakeup_at",
                           "promise_name", "entry_json")


def journal_rows(protos: list[Row], wanted: frozenset[str] | None = None
                 ) -> tuple[dict[str, list[Any]], list[str]]:
    """The `wanted` sys_journal columns (None: all) and each row's key, from
    `journal_proto`s. Built column by column: no per-row tuples for hundreds of thousands of
    entries. The entries are decoded only for DECODED_JOURNAL_COLUMNS."""
    def want(name: str) -> bool:
        return wanted is None or name in wanted

    keys: list[str] = []
    for inv_id, _pk, journal, _done in protos:
        keys.extend([inv_id] * len(journal))
    journals = [p[2] for p in protos]
    cols: dict[str, list[Any]] = {}
    if want("partition_key"):
        cols["partition_key"] = [p[1] for p in protos for _ in p[2]]
    if want("id"):
        cols["id"] = keys
    if want("index"):
        cols["index"] = [i for j in journals for i in range(len(j))]
    if want("version"):
        cols["version"] = [2] * len(keys)
    if want("invoked_id"):
        cols["invoked_id"] = [e.callee_id for j in journals for e in j]
    if want("raw"):
        cols["raw"] = [e.raw for j in journals for e in j]
    if want("raw_length"):
        cols["raw_length"] = [len(e.raw) for j in journals for e in j]
    if want("appended_at"):
        cols["appended_at"] = [e.appended_at for j in journals for e in j]
    if want("entry_type") or want("entry_lite_json"):
        kinds = [describe_type(e.entry_type) for j in journals for e in j]
        cols["entry_type"] = [k[0] for k in kinds]
        cols["entry_lite_json"] = [k[1] for k in kinds]
    if any(want(c) for c in DECODED_JOURNAL_COLUMNS):
        name_, done_, target_, sleep_, promise_, json_ = (
            cols.setdefault(n, []) for n in DECODED_JOURNAL_COLUMNS)
        for _inv_id, _pk, journal, done in protos:
            for e in journal:
                info = describe(e.entry_type, e.raw)
                cid = info.completion_id
                name_.append(info.name)
                done_.append((cid in done) if cid is not None else None)
                target_.append(info.invoked_target)
                sleep_.append(info.sleep_wakeup_at)
                promise_.append(info.promise_name)
                json_.append(info.entry_json)
    return cols, keys


def kv_rows(state: m.PartitionState, key: tuple[str, str]) -> list[Row]:
    kv = dict.get(state.kv, key)
    if not kv:
        return []
    service, skey = key
    pk = partition_key_for(service, skey)
    out: list[Row] = []
    for k, v in kv.items():
        out.append((pk, None, service, skey, _utf8(k) or k.hex(), len(k), _utf8(v), v, len(v)))
    return out


def inbox_rows(state: m.PartitionState, key: tuple[str, str]) -> list[Row]:
    queue = dict.get(state.inboxes, key)
    if not queue:
        return []
    pk = partition_key_for(*key)
    out: list[Row] = []
    for inv_id in queue:
        seq = state.inbox_seqs.get(inv_id)
        inv = dict.get(state.invocations, inv_id)
        if seq is None or inv is None or inv.status != m.INBOXED:
            continue
        out.append((pk, key[0], key[1], inv_id, seq, inv.inboxed_at))
    return out


def lock_rows(state: m.PartitionState, key: tuple[str, str]) -> list[Row]:
    holder = dict.get(state.locks, key)
    if holder is None:
        return []
    return [(partition_key_for(*key), key[0], key[1], holder)]


def timer_rows(state: m.PartitionState, key: str) -> list[Row]:
    t = dict.get(state.timers, key)
    if t is None:
        return []
    inv = dict.get(state.invocations, t.invocation_id)
    pk = inv.partition_key if inv is not None else None
    return [(pk, t.timer_id, t.kind, t.invocation_id, t.fire_at,
             t.completion_id if t.kind == "sleep" else None,
             t.epoch if t.kind == "retry" else None)]


def promise_rows(state: m.PartitionState, key: tuple[str, str, str]) -> list[Row]:
    p = dict.get(state.promises, key)
    if p is None:
        return []
    value = p.value if p.completed and p.failure is None else None
    return [(partition_key_for(key[0], key[1]), None, key[0], key[1], key[2], p.completed,
             value, _utf8(value), _failure(p.failure) if p.completed else None)]


def idempotency_rows(state: m.PartitionState, key: tuple[str, str, str, str]) -> list[Row]:
    inv_id = dict.get(state.idempotency, key)
    if inv_id is None:
        return []
    service, skey, handler, ikey = key
    inv = dict.get(state.invocations, inv_id)
    pk = inv.partition_key if inv is not None else partition_key_for(service, skey or ikey)
    return [(pk, service, skey or None, handler, ikey, inv_id)]


RowBuilder = Callable[[m.PartitionState, Any], list[Row]]
