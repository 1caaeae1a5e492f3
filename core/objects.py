"""A partition's K/V state: recently used objects in memory, the rest on disk.

`ObjectStates` is what `PartitionState.kv` holds: (service, key) -> {state key -> value}. It
behaves like the dict it replaces for `apply` and the invoker (get, setdefault, `del`, pop),
but with a backing (the partition store) only recently used objects are resident; the others
are read from the store when a handler needs them, and evicted again (least recently used
first) after each store write once more than `cache_size` are resident. Without a backing
(the snapshot format, tests) everything stays resident.

An object is absent when it has no state (apply deletes the entry when its last key goes);
`removed` remembers the objects deleted since the last write, so the writer deletes their rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol, overload

Obj = tuple[str, str]
Values = dict[bytes, bytes]

DEFAULT_CACHE = 10_000  # objects kept resident per partition


class StateBacking(Protocol):
    def load_state(self, obj: Obj) -> Values | None:
        """The object's stored state (None: it has none)."""

    def stored_objects(self) -> Iterator[Obj]:
        """Every object with stored state (a full scan: SQL rebuilds)."""


class ObjectStates:
    __slots__ = ("backing", "cache_size", "lru", "mem", "removed")

    def __init__(self, backing: StateBacking | None = None,
                 cache_size: int = DEFAULT_CACHE) -> None:
        self.mem: dict[Obj, Values] = {}
        self.lru: OrderedDict[Obj, None] = OrderedDict()
        self.removed: set[Obj] = set()
        self.backing = backing
        self.cache_size = cache_size

    @overload
    def get(self, obj: Obj) -> Values | None: ...

    @overload
    def get(self, obj: Obj, default: Values) -> Values: ...

    def get(self, obj: Obj, default: Values | None = None) -> Values | None:
        got = self.mem.get(obj)
        if got is not None:
            if self.backing is not None:
                self.lru.move_to_end(obj)
            return got
        if self.backing is None or obj in self.removed:
            return default
        loaded = self.backing.load_state(obj)
        if not loaded:
            return default
        self.mem[obj] = loaded
        self.lru[obj] = None
        return loaded

    def peek(self, obj: Obj) -> Values | None:
        """The object's state without caching it (readers such as the SQL views)."""
        got = self.mem.get(obj)
        if got is not None or self.backing is None or obj in self.removed:
            return got
        return self.backing.load_state(obj)

    def setdefault(self, obj: Obj, default: Values) -> Values:
        got = self.get(obj)
        if got is None:
            self[obj] = got = default
        return got

    def __getitem__(self, obj: Obj) -> Values:
        got = self.get(obj)
        if got is None:
            raise KeyError(obj)
        return got

    def __setitem__(self, obj: Obj, values: Values) -> None:
        self.mem[obj] = values
        self.removed.discard(obj)
        if self.backing is not None:
            self.lru[obj] = None
            self.lru.move_to_end(obj)

    def __delitem__(self, obj: Obj) -> None:
        if self.pop(obj, None) is None:
            raise KeyError(obj)

    def pop(self, obj: Obj, default: Values | None = None) -> Values | None:
        got = self.get(obj)
        if got is None:
            return default
        del self.mem[obj]
        self.lru.pop(obj, None)
        if self.backing is not None:
            self.removed.add(obj)
        return got

    def __contains__(self, obj: object) -> bool:
        return isinstance(obj, tuple) and self.get(obj) is not None

    def __len__(self) -> int:
        return len(self.mem)

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self.mem))

    def keys(self) -> set[Obj]:
        return set(self.mem)

    def items(self) -> Iterator[tuple[Obj, Values]]:
        return iter(list(self.mem.items()))

    def values(self) -> Iterator[Values]:
        return iter(list(self.mem.values()))

    def all_objects(self) -> set[Obj]:
        """Resident and stored objects (a full scan of the store)."""
        out = set(self.mem)
        if self.backing is not None:
            out.update(o for o in self.backing.stored_objects() if o not in self.removed)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ObjectStates):
            return self.mem == other.mem
        if isinstance(other, dict):
            return self.mem == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"ObjectStates({len(self.mem)} resident)"

    def written(self) -> None:
        """After a store write: what was removed is now gone from the store too."""
        self.removed.clear()

    def evict(self) -> int:
        """Drop the least recently used objects beyond the cache size (call after a write:
        every resident object is then stored as it is)."""
        n = 0
        while len(self.lru) > self.cache_size:
            obj, _ = self.lru.popitem(last=False)
            self.mem.pop(obj, None)
            n += 1
        return n
