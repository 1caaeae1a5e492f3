"""The partition's change feed: which keys of its keyed tables `apply` changed.

`apply` marks every key it may change (`state.changes.mark(table, key)`), explicitly, at the
point where it looks a row up to change it or writes it; readers of the state (the SQL views)
`take` the marked keys and rebuild just those rows. A marked key is a superset of a changed row:
an invocation looked up by a command that then leaves it as it was is marked all the same.
`tests/core/test_apply_properties.py` checks that no change goes unmarked.

Marking is off until a reader calls `enable` (nobody pays for a feed nobody reads), and a reader
that enabled it must `take` regularly, or the sets grow with every key touched.
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
    __slots__ = ("_keys", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self._keys: dict[Keyed, set[Hashable]] = {t: set() for t in Keyed}

    def enable(self) -> None:
        self.enabled = True

    def mark(self, table: Keyed, key: Hashable) -> None:
        if self.enabled:
            self._keys[table].add(key)

    def take(self) -> dict[Keyed, set[Hashable]]:
        """The keys marked since the last take (every table present, maybe empty)."""
        out, self._keys = self._keys, {t: set() for t in Keyed}
        return out
