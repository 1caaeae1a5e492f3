"""Change tracking on a partition's state, so the SQL views rebuild only what changed.

`track(state)` swaps the keyed tables of a `PartitionState` (invocations, kv, locks, inboxes,
timers, promises, idempotency) for `TrackedDict`s: dicts that remember every key that was
read through `get`/`[]`/`setdefault`, set, or removed. `apply` reaches every row it changes
through these dicts (an invocation is always looked up in `state.invocations` before it is
mutated), so the touched keys are a superset of the changed rows; no code in `apply` has to
remember to mark anything, and its semantics are untouched (a `TrackedDict` is a `dict`).

Tracking is off until `track` is called, and the query layer drains the sets each time it
refreshes its Arrow views, so they stay bounded by the keys touched between two queries.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any, TypeVar, overload

from rstq.core.model import PartitionState

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING: Any = object()

TRACKED_FIELDS = ("invocations", "kv", "locks", "inboxes", "timers", "promises", "idempotency")


class TrackedDict(dict[K, V]):
    """A dict that records the keys it hands out for update, sets and removes."""

    __slots__ = ("touched",)

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        super().__init__(data)
        self.touched: set[K] = set()

    def take(self) -> set[K]:
        out, self.touched = self.touched, set()
        return out

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: Any, /) -> Any: ...

    def get(self, key: K, default: Any = None, /) -> Any:
        self.touched.add(key)
        return super().get(key, default)

    def __getitem__(self, key: K) -> V:
        self.touched.add(key)
        return super().__getitem__(key)

    def __setitem__(self, key: K, value: V) -> None:
        self.touched.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        self.touched.add(key)
        super().__delitem__(key)

    def setdefault(self, key: K, default: Any = None, /) -> Any:
        self.touched.add(key)
        return super().setdefault(key, default)

    def pop(self, key: K, default: Any = _MISSING, /) -> Any:
        self.touched.add(key)
        if default is _MISSING:
            return super().pop(key)
        return super().pop(key, default)

    def popitem(self) -> tuple[K, V]:
        k, v = super().popitem()
        self.touched.add(k)
        return k, v

    def clear(self) -> None:
        self.touched.update(self.keys())
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        other = dict(*args, **kwargs)
        self.touched.update(other.keys())
        super().update(other)


def track(state: PartitionState) -> None:
    """Turn change tracking on for `state` (idempotent). Call it on the state's own thread."""
    for name in TRACKED_FIELDS:
        d = getattr(state, name)
        if not isinstance(d, TrackedDict):
            setattr(state, name, TrackedDict(d))


def tracked(state: PartitionState, name: str) -> TrackedDict[Any, Any]:
    d = getattr(state, name)
    assert isinstance(d, TrackedDict), f"{name} is not tracked: call track() first"
    return d
