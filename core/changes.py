"""The partition's change feed: which keys of its keyed tables `apply` changed.

`apply` marks every key it may change (`state.changes.mark(table, key)`), explicitly, at the
point where it looks a row up to change it or writes it; readers of the state (the SQL views)
`take` the marked keys and rebuild just those rows. A marked key is a superset of a changed row:
an invocation looked up by a command that then leaves it as it was is marked all the same.
`tests/core/test_apply_properties.py` checks that no change goes unmarked.

A reader `subscribe`s and `take`s from its own feed; with no reader, marking costs a loop over
an empty list. A reader must `take` regularly (or unsubscribe), or its sets grow with every key
touched.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable


class Keyed(enum.StrEnum):
    """The keyed tables of `PartitionState` whose rows are tracked (the field names)."""

    INVOCATIONS = "invocations"  # invocation id
    KV = "kv"  # (service, key)
    LOCKS = "locks"  # (service, key)
    INBOXES = "inboxes"  # (service, key)
    TIMERS = "timers"  # timer id
    PROMISES = "promises"  # (workflow, key, promise name)
    IDEMPOTENCY = "idempotency"  # (service, key, handler, idempotency key)


class ChangeSet:
    """Where `apply` marks; each reader has its own `ChangeFeed` of what was marked since it
    last took (the store writer after each batch, the SQL views before each query)."""

    __slots__ = ("_feeds",)

    def __init__(self) -> None:
        self._feeds: list[ChangeFeed] = []

    @property
    def enabled(self) -> bool:
        return bool(self._feeds)

    def subscribe(self) -> ChangeFeed:
        feed = ChangeFeed()
        self._feeds.append(feed)
        return feed

    def unsubscribe(self, feed: ChangeFeed) -> None:
        if feed in self._feeds:
            self._feeds.remove(feed)

    def mark(self, table: Keyed, key: Hashable) -> None:
        for feed in self._feeds:
            feed.keys[table].add(key)


class ChangeFeed:
    """One reader's marked keys."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: dict[Keyed, set[Hashable]] = {t: set() for t in Keyed}

    def take(self) -> dict[Keyed, set[Hashable]]:
        """The keys marked since the last take (every table present, maybe empty)."""
        out, self.keys = self.keys, {t: set() for t in Keyed}
        return out
