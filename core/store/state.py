"""A partition's state in its store: loading it, and writing what each batch changed.

`StateWriter.write(state, changes)` turns the keys `apply` marked (the change feed,
`rstq.core.changes`) into one atomic store batch: the current row of each marked key, or its
deletion, plus the partition's scalars and its applied LSN. So the store is always the state
after some whole log batch, and recovery is: open the store, read its applied LSN, replay the
log after it. Nothing is rewritten that did not change (a snapshot rewrote everything).

Rows (key layout: `rstq.core.store.keys`; values: `rstq.core.store.records`):
- an invocation's status row holds the invocation without its journal; each journal entry is
  a row of its own, written once when appended (entries never change), deleted with the
  invocation or when its journal is dropped at completion;
- an object's state is one row per state key; its inbox one row per waiting invocation (by
  arrival seq); timers are keyed by fire time, so the writer remembers each one's written
  time to delete the old row when a timer is re-set;
- the outbox, the exactly-once dedup table (highest seq per source) and the scalars (inbox
  and outbox sequences, applied LSN) are written in every batch that changes them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator, Sequence

from rstq.core.changes import Keyed
from rstq.core.invocations import DEFAULT_CACHE, InvocationTable, Loc
from rstq.core.model import (
    COMPLETED,
    Invocation,
    JournalEntry,
    OutboxMessage,
    PartitionState,
    Promise,
    Timer,
)
from rstq.core.objects import DEFAULT_CACHE as OBJECTS_CACHE
from rstq.core.objects import ObjectStates
from rstq.core.store import keys as k
from rstq.core.store import records
from rstq.core.store.api import PartitionStore, ReadView, StoreError, WriteBatch, prefix_end
from rstq.core.store.history import History

_NO_JOURNAL = ("journal",)
_STATUS_V2 = b"\x02"  # status rows: this byte, the journal length (u32), the record
_INBOX_SEQ = k.fsm_key(k.Fsm.INBOX_SEQ)
_OUTBOX_NEXT_SEQ = k.fsm_key(k.Fsm.OUTBOX_NEXT_SEQ)
_APPLIED_LSN = k.fsm_key(k.Fsm.APPLIED_LSN)
_NOW = k.fsm_key(k.Fsm.NOW)


class StoreBacking:
    """The partition store (and its history segments) behind an `InvocationTable`."""

    def __init__(self, store: PartitionStore, history: History) -> None:
        self.store = store
        self.history = history

    def load(self, inv_id: str) -> tuple[Invocation, Loc] | None:
        inv = self.load_hot(inv_id)
        if inv is not None:
            return inv, len(inv.journal)
        raw = self.store.get(k.history_key(inv_id))
        if raw is None:
            return None
        segment = raw.decode()
        got = self.history.lookup(segment, k.inv_raw(inv_id))
        return None if got is None else (got, segment)

    def load_hot(self, inv_id: str) -> Invocation | None:
        raw = self.store.get(k.status_key(inv_id))
        return None if raw is None else read_invocation(self.store, inv_id, raw)

    def stored_count(self) -> int:
        return self.history.rows

    def load_state(self, obj: tuple[str, str]) -> dict[bytes, bytes] | None:
        out = {_bytes(k.fields_of(key, k.Table.STATE)[2]): value
               for key, value in self.store.iterate_prefix(k.state_prefix(*obj))}
        return out or None

    def stored_objects(self) -> Iterator[tuple[str, str]]:
        last: tuple[str, str] | None = None
        for key, _ in _rows(self.store, k.Table.STATE):
            service, obj, _name = _fields(key, k.Table.STATE)
            pair = (_str(service), _str(obj))
            if pair != last:
                last = pair
                yield pair

    def history_ids(self) -> Iterator[str]:
        for seg in list(self.history.segments.values()):
            void = self.history.tombstones.get(seg.meta.segment_id, set())
            for raw, inv_id in zip(seg.table.column("id").to_pylist(),
                                   seg.table.column("invocation_id").to_pylist(), strict=True):
                if raw not in void:
                    yield str(inv_id)


def status_value(inv: Invocation) -> bytes:
    """An invocation's status row: its journal length (u32), then its record."""
    return _STATUS_V2 + len(inv.journal).to_bytes(4, "big") + records.encode(inv, _NO_JOURNAL)


def read_invocation(view: ReadView, inv_id: str, raw: bytes) -> Invocation:
    """The invocation of status row `raw`, with its journal."""
    n, inv = _decode_status(raw)
    return _with_journal(view, inv_id, inv, n)


def _decode_status(raw: bytes) -> tuple[int | None, Invocation]:
    """A status row: its journal length (None: the first format, which did not say) and the
    invocation without its journal."""
    if raw[:1] == _STATUS_V2:
        return int.from_bytes(raw[1:5], "big"), records.decode(Invocation, raw[5:], _NO_JOURNAL)
    return None, records.decode(Invocation, raw, _NO_JOURNAL)  # the first format


def _with_journal(view: ReadView, inv_id: str, inv: Invocation, n: int | None) -> Invocation:
    """`inv` with its `n` journal entries read (None: every row of its prefix)."""
    if n == 0:
        return inv
    start = k.journal_prefix(inv_id)
    end = prefix_end(start) if n is None else k.journal_key(inv_id, n)
    for _key, value in view.iterate(start, end):
        inv.journal.append(records.decode(JournalEntry, value))
    if n is not None and len(inv.journal) != n:
        raise StoreError(f"journal of {inv_id}: {len(inv.journal)} entries stored, {n} due")
    return inv


class StateWriter:
    """Writes a partition's changes to its store (the processor's one writer)."""

    def __init__(self, store: PartitionStore, state: PartitionState) -> None:
        self.store = store
        # What is in the store that the rows alone do not say cheaply: timer fire times
        # (their keys), inbound dedup and outbox as last written. (Where each invocation is
        # stored, the invocation table knows: `InvocationTable.loc`.)
        self._timer_at = {t.timer_id: t.fire_at for t in state.timers.values()}
        self._inbound = dict(state.inbound_seq)
        self._outbox = set(state.outbox)
        self._new_timers: dict[str, int | None] = {}
        self._placed: dict[str, Loc | None] = {}
        self._tombstones: list[tuple[str, bytes]] = []
        self._seqs = (-1, -1)  # inbox and outbox sequences as written (-1: not yet)
        self._new_seqs = self._seqs
        self.batches = 0
        self.rows = 0

    def write_all(self, state: PartitionState, sync: bool = True) -> None:
        """Write the whole state (a new store, or a migration from a snapshot)."""
        self._timer_at = {}
        self._inbound = {}
        self._outbox = set()
        every: dict[Keyed, set[Hashable]] = {t: set(getattr(state, t.value)) for t in Keyed}
        self.write(state, every, sync=sync)

    def write(self, state: PartitionState, changes: dict[Keyed, set[Hashable]],
              sync: bool = False, history: History | None = None) -> None:
        """Write the rows of `changes`. Atomic: when the store refuses the batch (e.g. a full
        disk) nothing is written and nothing here changes, so writing the same keys again
        later (their rows as they are then) is correct."""
        # What this batch will have written: applied to the writer's and the invocation
        # table's memory only once the store took the batch.
        self._new_timers = {}
        self._placed = {}
        self._tombstones = []
        self._new_seqs = self._seqs
        inbound, outbox = self._inbound, self._outbox
        try:
            self._write(state, changes, sync)
        except BaseException:
            self._inbound, self._outbox = inbound, outbox
            raise
        for tid, at in self._new_timers.items():
            if at is None:
                self._timer_at.pop(tid, None)
            else:
                self._timer_at[tid] = at
        self._seqs = self._new_seqs
        state.invocations.written(self._placed)
        state.kv.written()
        if history is not None:
            for segment, raw in self._tombstones:
                history.tombstone(segment, raw)

    def _write(self, state: PartitionState, changes: dict[Keyed, set[Hashable]],
               sync: bool) -> None:
        b = self.store.batch()
        for inv_id in changes[Keyed.INVOCATIONS]:
            self._invocation(b, state, str(inv_id))
        for key in changes[Keyed.KV]:
            self._kv(b, state, _pair(key))
        for key in changes[Keyed.LOCKS]:
            service, obj = _pair(key)
            holder = state.locks.get((service, obj))
            if holder is None:
                b.delete(k.lock_key(service, obj))
            else:
                b.put(k.lock_key(service, obj), holder.encode())
        for key in changes[Keyed.INBOXES]:
            self._inbox(b, state, _pair(key))
        for tid in changes[Keyed.TIMERS]:
            self._timer(b, state, str(tid))
        for key in changes[Keyed.PROMISES]:
            wf, obj, name = _strs(key, 3)
            p = state.promises.get((wf, obj, name))
            if p is None:
                b.delete(k.promise_key(wf, obj, name))
            else:
                b.put(k.promise_key(wf, obj, name), records.encode(p))
        for key in changes[Keyed.IDEMPOTENCY]:
            svc, obj, handler, ikey = _strs(key, 4)
            target = state.idempotency.get((svc, obj, handler, ikey))
            if target is None:
                b.delete(k.idempotency_key(svc, obj, handler, ikey))
            else:
                b.put(k.idempotency_key(svc, obj, handler, ikey), target.encode())
        self._small_tables(b, state)
        seqs = (state.inbox_seq, state.outbox_next_seq)
        if seqs != self._seqs:
            b.put(_INBOX_SEQ, k.u64(seqs[0]))
            b.put(_OUTBOX_NEXT_SEQ, k.u64(seqs[1]))
            self._new_seqs = seqs
        b.put(_APPLIED_LSN, k.u64(state.applied_lsn))
        b.put(_NOW, k.u64(state.invocations.now))
        self.rows += len(b)
        self.batches += 1
        self.store.write(b, sync=sync)

    def _invocation(self, b: WriteBatch, state: PartitionState, inv_id: str) -> None:
        table = state.invocations
        inv = table.mem.get(inv_id)
        gone = table.removed.get(inv_id)
        if gone is not None and gone[0] is not inv:  # deleted (maybe replaced) since written
            where = gone[1]
            if isinstance(where, int):
                b.delete(k.status_key(inv_id))
                for i in range(where):
                    b.delete(k.journal_key(inv_id, i))
            elif isinstance(where, str):  # in a segment: its row there is void from now on
                b.delete(k.history_key(inv_id))
                b.put(k.tombstone_key(where, inv_id), b"")
                self._tombstones.append((where, k.inv_raw(inv_id)))
            written = 0
        else:
            where = table.loc.get(inv_id)
            if isinstance(where, str):
                self._placed[inv_id] = where  # in a segment: completed, so unchanged
                return
            written = where or 0
        if inv is None:
            if gone is not None:
                self._placed[inv_id] = None
            return  # (not resident and not removed: unchanged)
        n = len(inv.journal)
        b.put(k.status_key(inv_id), status_value(inv))
        for i in range(written, n):  # appended since: entries never change once stored
            b.put(k.journal_key(inv_id, i), records.encode(inv.journal[i]))
        for i in range(n, written):  # the journal was dropped (retention 0 at completion)
            b.delete(k.journal_key(inv_id, i))
        self._placed[inv_id] = n

    def _kv(self, b: WriteBatch, state: PartitionState, key: tuple[str, str]) -> None:
        service, obj = key
        kv = state.kv
        current = kv.mem.get(key)
        if current is None:
            if key not in kv.removed and kv.backing is not None:
                return  # not resident, not removed: unchanged
            current = {}
        for row, _ in self.store.iterate_prefix(k.state_prefix(service, obj)):
            if _bytes(k.fields_of(row, k.Table.STATE)[2]) not in current:
                b.delete(row)
        for name, value in current.items():
            b.put(k.state_key(service, obj, name), value)

    def _inbox(self, b: WriteBatch, state: PartitionState, key: tuple[str, str]) -> None:
        service, obj = key
        for row, _ in self.store.iterate_prefix(k.inbox_prefix(service, obj)):
            b.delete(row)
        for inv_id in state.inboxes.get(key) or ():
            seq = state.inbox_seqs.get(inv_id)
            if seq is not None:
                b.put(k.inbox_key(service, obj, seq), inv_id.encode())

    def _timer(self, b: WriteBatch, state: PartitionState, tid: str) -> None:
        old = self._timer_at.get(tid)
        if old is not None:
            b.delete(k.timer_key(old, tid))
        t = state.timers.get(tid)
        if t is not None:
            b.put(k.timer_key(t.fire_at, tid), records.encode(t))
        self._new_timers[tid] = t.fire_at if t is not None else None

    def _small_tables(self, b: WriteBatch, state: PartitionState) -> None:
        """The dedup table and the outbox: a few rows, compared with what was written."""
        if state.inbound_seq != self._inbound:
            for src, seq in state.inbound_seq.items():
                if self._inbound.get(src) != seq:
                    b.put(k.dedup_key(src), k.u64(seq))
            self._inbound = dict(state.inbound_seq)
        if state.outbox.keys() != self._outbox:
            now = set(state.outbox)
            for seq in self._outbox - now:
                b.delete(k.outbox_key(seq))
            for seq in now - self._outbox:
                b.put(k.outbox_key(seq), records.encode(state.outbox[seq]))
            self._outbox = now


def _strs(key: Hashable, n: int) -> tuple[str, ...]:
    assert isinstance(key, tuple) and len(key) == n
    return tuple(str(x) for x in key)


def _pair(key: Hashable) -> tuple[str, str]:
    a, b = _strs(key, 2)
    return a, b


def applied_lsn(view: ReadView) -> int | None:
    """The applied LSN a store holds (None: an empty store, never written)."""
    raw = view.get(k.fsm_key(k.Fsm.APPLIED_LSN))
    return None if raw is None else k.read_u64(raw)


def caches(cache_size: int | None) -> tuple[int, int]:
    """Completed invocations and objects kept resident for `--cache-size` (objects: ten
    times as many, they are small)."""
    if cache_size is None:
        return DEFAULT_CACHE, OBJECTS_CACHE
    return cache_size, 10 * cache_size


def load(view: ReadView, partition_id: int, partitions: int,
         backing: StoreBacking | None = None, cache_size: int | None = None) -> PartitionState:
    """The partition state held by a store. With a `backing`, only live invocations are
    loaded (completed ones stay on disk: restart time does not grow with history);
    without, every invocation is (tests, migration checks)."""
    state = PartitionState(partition_id, partitions)
    if backing is not None:
        state.invocations = InvocationTable(backing, caches(cache_size)[0])
        state.kv = ObjectStates(backing, caches(cache_size)[1])
    table = state.invocations
    state.applied_lsn = applied_lsn(view) or 0
    raw = view.get(k.fsm_key(k.Fsm.INBOX_SEQ))
    if raw is not None:
        state.inbox_seq = k.read_u64(raw)
    raw = view.get(k.fsm_key(k.Fsm.OUTBOX_NEXT_SEQ))
    if raw is not None:
        state.outbox_next_seq = k.read_u64(raw)
    raw = view.get(_NOW)
    if raw is not None:
        table.now = k.read_u64(raw)
    for key, value in _rows(view, k.Table.STATUS):
        (inv_field,) = _fields(key, k.Table.STATUS)
        inv_id = _str(inv_field)
        n, inv = _decode_status(value)
        if backing is not None and inv.status == COMPLETED:  # stays on disk
            table.hot_completed.add(inv_id)
            table.hot_since = table.now
            continue
        inv = _with_journal(view, inv_id, inv, n)
        table.mem[inv_id] = inv
        table.loc[inv_id] = len(inv.journal)
    for key, value in _rows(view, k.Table.STATE) if backing is None else ():  # else: lazily
        service, obj, name = _fields(key, k.Table.STATE)
        state.kv.setdefault((_str(service), _str(obj)), {})[_bytes(name)] = value
    for key, value in _rows(view, k.Table.LOCK):
        service, obj = _fields(key, k.Table.LOCK)
        state.locks[(_str(service), _str(obj))] = value.decode()
    for key, value in _rows(view, k.Table.INBOX):  # in (object, seq) order
        service, obj, seq = _fields(key, k.Table.INBOX)
        inv_id = value.decode()
        state.inboxes.setdefault((_str(service), _str(obj)), deque()).append(inv_id)
        state.inbox_seqs[inv_id] = _int(seq)
    for _key, value in _rows(view, k.Table.TIMER):
        t = records.decode(Timer, value)
        state.timers[t.timer_id] = t
    for _key, value in _rows(view, k.Table.OUTBOX):
        m = records.decode(OutboxMessage, value)
        state.outbox[m.seq] = m
    for key, value in _rows(view, k.Table.DEDUP):
        (src,) = _fields(key, k.Table.DEDUP)
        state.inbound_seq[_int(src)] = k.read_u64(value)
    for key, value in _rows(view, k.Table.PROMISE):
        wf, obj, pname = _fields(key, k.Table.PROMISE)
        state.promises[(_str(wf), _str(obj), _str(pname))] = records.decode(Promise, value)
    for key, value in _rows(view, k.Table.IDEMPOTENCY):
        svc, obj, handler, ikey = _fields(key, k.Table.IDEMPOTENCY)
        state.idempotency[(_str(svc), _str(obj), _str(handler), _str(ikey))] = value.decode()
    return state


def _fields(key: bytes, table: k.Table) -> Sequence[k.Field]:
    return k.fields_of(key, table)


def _str(f: k.Field) -> str:
    assert isinstance(f, str)
    return f


def _bytes(f: k.Field) -> bytes:
    assert isinstance(f, bytes)
    return f


def _int(f: k.Field) -> int:
    assert isinstance(f, int)
    return f


def _rows(view: ReadView, table: k.Table) -> Iterator[tuple[bytes, bytes]]:
    start, end = k.table_range(table)
    return view.iterate(start, end)
