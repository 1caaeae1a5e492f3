"""A partition's invocations: live ones in memory, the history on disk.

`InvocationTable` is what `PartitionState.invocations` holds. It behaves like the dict it
replaces for `apply` (get, set, pop, `in`), but only *resident* invocations are Python objects:
every invocation that is not completed, plus a bounded cache of completed ones. A completed
invocation that is not resident is loaded on demand from the backing (the partition store, or
its history segments) and cached; after each store write, completed invocations beyond the
cache size are evicted. Without a backing (the snapshot format, tests) everything stays
resident, as before.

What the store writer needs to know is kept next to the objects: where each resident one is
stored (`loc`: its journal length in the hot store, or the id of the segment holding it), and
what `pop` removed since the last write (`removed`), so deletions reach the right rows.

Expiry: a completed invocation exists until `expires_at` (completed_at + retention). `get`
treats an expired one as absent (at `now`, the time of the command being applied, so replay
decides the same); apply removes it when it touches it, and history segments are dropped whole
once all their rows expired. No command or timer per invocation is needed to clean up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

from rstq.core.model import COMPLETED, Invocation

Loc = int | str  # journal entries in the hot store (int), or the segment holding it (str)

DEFAULT_CACHE = 1000  # completed invocations kept resident per partition


def expires_at(inv: Invocation) -> int:
    """When a completed invocation stops existing (what apply keeps it for)."""
    return (inv.completed_at or inv.modified_at) + max(inv.completion_retention_ms,
                                                       inv.journal_retention_ms)


def expired(inv: Invocation, now_ms: int) -> bool:
    return inv.status == COMPLETED and expires_at(inv) <= now_ms


class Backing(Protocol):
    """Where non-resident invocations are (the partition store and its history)."""

    def load(self, invocation_id: str) -> tuple[Invocation, Loc] | None: ...

    def load_hot(self, invocation_id: str) -> Invocation | None:
        """From the hot store only (not history); nothing is cached."""

    def stored_count(self) -> int:
        """Invocations in history segments (an estimate: expired ones count until dropped)."""

    def history_ids(self) -> Iterator[str]:
        """Ids held by history segments (not the tombstoned ones; maybe expired)."""


class InvocationTable:
    __slots__ = ("_missed", "backing", "cache_size", "hot_completed", "hot_since", "loc",
                 "lru", "mem", "now", "removed")

    def __init__(self, backing: Backing | None = None, cache_size: int = DEFAULT_CACHE) -> None:
        self.mem: dict[str, Invocation] = {}
        self.loc: dict[str, Loc] = {}
        self.removed: dict[str, tuple[Invocation, Loc | None]] = {}
        self.lru: OrderedDict[str, None] = OrderedDict()  # resident completed ids
        self.hot_completed: set[str] = set()  # completed, stored in the hot store
        self.hot_since = 0  # ms: when the oldest of them got there (about)
        self.backing = backing
        self.cache_size = cache_size
        self.now = 0  # ms: the time of the command being applied (expiry is relative to it)
        self._missed: str | None = None  # the last id the backing did not have

    # --- the dict interface apply uses -----------------------------------------------------

    def get(self, inv_id: str, default: None = None) -> Invocation | None:
        """The invocation, unless it is absent or expired at `now`."""
        inv = self.peek(inv_id)
        return None if inv is not None and expired(inv, self.now) else inv

    def peek(self, inv_id: str) -> Invocation | None:
        """The invocation even if expired (apply deletes it then), loading it if needed."""
        inv = self.mem.get(inv_id)
        if inv is not None:
            if inv_id in self.lru:
                self.lru.move_to_end(inv_id)
            return inv
        if self.backing is None or inv_id in self.removed:  # removed: the store is stale
            return None
        got = self.backing.load(inv_id)
        if got is None:
            self._missed = inv_id  # (an Invoke looks its id up, then sets it: one read)
            return None
        inv, where = got
        self.mem[inv_id] = inv
        self.loc[inv_id] = where
        if inv.status == COMPLETED:
            self.lru[inv_id] = None
            if len(self.lru) > self.cache_size:  # reads alone must not grow the cache
                self.evict(keep=1)
        return inv

    def __getitem__(self, inv_id: str) -> Invocation:
        inv = self.get(inv_id)
        if inv is None:
            raise KeyError(inv_id)
        return inv

    def __contains__(self, inv_id: object) -> bool:
        return isinstance(inv_id, str) and self.get(inv_id) is not None

    def __setitem__(self, inv_id: str, inv: Invocation) -> None:
        old = self.mem.get(inv_id)
        if old is not None and old is not inv:
            self._removed(inv_id, old)
        elif (old is None and self.backing is not None and inv_id not in self.removed
              and inv_id != self._missed):
            stored = self.backing.load(inv_id)  # an expired copy being replaced
            if stored is not None:
                self.removed[inv_id] = stored
        self.mem[inv_id] = inv
        self.lru.pop(inv_id, None)

    def pop(self, inv_id: str, default: None = None) -> Invocation | None:
        inv = self.peek(inv_id)
        if inv is None:
            return None
        self.mem.pop(inv_id, None)
        self.lru.pop(inv_id, None)
        self._removed(inv_id, inv)
        return inv

    def _removed(self, inv_id: str, inv: Invocation) -> None:
        where = self.loc.pop(inv_id, None)
        if inv_id not in self.removed:  # the first removal since the last write is stored
            self.removed[inv_id] = (inv, where)

    def __len__(self) -> int:
        if self.backing is None:
            return len(self.mem)
        # resident, less the completed ones that are also stored, plus everything stored
        return (len(self.mem) - len(self.lru) + len(self.hot_completed)
                + self.backing.stored_count())

    # --- what else reads it ----------------------------------------------------------------

    def resident(self) -> Iterator[Invocation]:
        """The resident invocations (without a backing: all of them)."""
        return iter(list(self.mem.values()))

    def values(self) -> Iterator[Invocation]:
        return self.resident()

    def keys(self) -> set[str]:
        return set(self.mem)

    def items(self) -> Iterator[tuple[str, Invocation]]:
        return iter(list(self.mem.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.mem))

    def live(self) -> Iterator[Invocation]:
        """The invocations that are not completed (always resident)."""
        return (inv for inv in list(self.mem.values()) if inv.status != COMPLETED)

    def hot(self, inv_id: str) -> Invocation | None:
        """The invocation unless it is in a history segment (or absent): what the SQL views
        keep rows for (history is scanned from the segments). Loads nothing into the cache."""
        inv = self.mem.get(inv_id)
        if inv is not None:
            return None if isinstance(self.loc.get(inv_id), str) else inv
        if self.backing is None or inv_id in self.removed:
            return None
        return self.backing.load_hot(inv_id)

    def everything(self) -> dict[str, Invocation]:
        """Every invocation, resident or not, expired ones included until removed (tests,
        diagnostics: O(history), and nothing is cached)."""
        out = dict(self.mem)
        if self.backing is not None:
            for inv_id in [*self.hot_completed, *self.backing.history_ids()]:
                if inv_id not in out and inv_id not in self.removed:
                    got = self.backing.load(inv_id)
                    if got is not None:
                        out[inv_id] = got[0]
        return out

    def hot_ids(self) -> set[str]:
        """Ids not held by history segments: resident ones and completed ones in the hot
        store (what the SQL views rebuild from; bounded by the segment size)."""
        out = {i for i in self.mem if not isinstance(self.loc.get(i), str)}
        return out | self.hot_completed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, InvocationTable):
            return self.mem == other.mem
        if isinstance(other, dict):
            return self.mem == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"InvocationTable({len(self.mem)} resident)"

    # --- the store writer's side -----------------------------------------------------------

    def written(self, updates: dict[str, Loc | None]) -> None:
        """After a store write: where each written invocation is now (None: gone)."""
        self._missed = None
        for inv_id, where in updates.items():
            self.removed.pop(inv_id, None)
            if where is None:
                self.loc.pop(inv_id, None)
                self.hot_completed.discard(inv_id)
                continue
            if inv_id not in self.mem:
                continue
            self.loc[inv_id] = where
            if self.mem[inv_id].status == COMPLETED:
                if isinstance(where, int):
                    if not self.hot_completed:
                        self.hot_since = self.now
                    self.hot_completed.add(inv_id)
                self.lru[inv_id] = None
                self.lru.move_to_end(inv_id)
        self.removed.clear()

    def moved(self, ids: list[str], segment_id: str) -> None:
        """Completed invocations now held by a history segment (their hot rows are gone)."""
        for inv_id in ids:
            self.hot_completed.discard(inv_id)
            if inv_id in self.mem:
                self.loc[inv_id] = segment_id
        self.hot_since = self.now

    def evict(self, keep: int = 0) -> int:
        """Drop completed invocations beyond the cache size (every id in `lru` is written:
        stored as it is). `keep`: the newest ones stay whatever the size (the one a caller
        just loaded)."""
        if self.backing is None:
            return 0
        n = 0
        while len(self.lru) > max(self.cache_size, keep):
            inv_id, _ = self.lru.popitem(last=False)
            self.mem.pop(inv_id, None)
            self.loc.pop(inv_id, None)
            n += 1
        return n
