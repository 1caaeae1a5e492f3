"""Every SQL table, one module each; this registry is what the rest of rstq reads.

A table module (`query/tables/<table>.py`) holds the table's columns with their docs, its row
builder by column name and what it reads from the partition state (`base.Store`); the four
invocation tables, views over one store, share `invocations.py`. The engine (DataFusion
schemas, which tables read which store), the views (which stores to keep current, from which
keys of the change feed), the Postgres wire's `\\d` and information_schema (through the engine)
and `docs/tables.md` (`python -m rstq.query.docs`) all read `REGISTRY`.

Where Restate 1.7 has the table, the columns are Restate's, with the same names, order, types
and meaning, so the same queries work on both servers (tests/query/test_tables.py checks it).
"""

from __future__ import annotations

from rstq.query.api import TableDef
from rstq.query.tables import (
    invocations,
    state,
    sys_deployment,
    sys_idempotency,
    sys_inbox,
    sys_journal,
    sys_journal_events,
    sys_keyed_service_status,
    sys_partition,
    sys_promise,
    sys_service,
    sys_span,
    sys_timer,
)
from rstq.query.tables.base import Kind, Store, Table

MODULES = (
    invocations, sys_journal, sys_journal_events, state, sys_inbox, sys_keyed_service_status,
    sys_promise, sys_service, sys_deployment, sys_timer, sys_idempotency, sys_partition,
    sys_span,
)
REGISTRY: tuple[Table, ...] = tuple(t for m in MODULES for t in m.TABLES)
TABLES: tuple[TableDef, ...] = tuple(t.table for t in REGISTRY)
BY_NAME: dict[str, TableDef] = {t.name: t for t in TABLES}
READS: dict[str, Table] = {t.table.name: t for t in REGISTRY}
# The stores the keyed tables read, each once, in a stable order.
STORES: tuple[Store, ...] = tuple({
    t.store.name: t.store for t in REGISTRY if t.kind == Kind.STORE and t.store is not None
}.values())

# The tables by name, for the code that refers to one.
SYS_INVOCATION = invocations.SYS_INVOCATION
SYS_INVOCATION_STATUS = invocations.SYS_INVOCATION_STATUS
SYS_INVOCATION_STATE = invocations.SYS_INVOCATION_STATE
SYS_STATUS = invocations.SYS_STATUS
SYS_JOURNAL = sys_journal.SYS_JOURNAL
SYS_JOURNAL_EVENTS = sys_journal_events.SYS_JOURNAL_EVENTS
STATE = state.STATE
SYS_INBOX = sys_inbox.SYS_INBOX
SYS_KEYED_SERVICE_STATUS = sys_keyed_service_status.SYS_KEYED_SERVICE_STATUS
SYS_PROMISE = sys_promise.SYS_PROMISE
SYS_SERVICE = sys_service.SYS_SERVICE
SYS_DEPLOYMENT = sys_deployment.SYS_DEPLOYMENT
SYS_TIMER = sys_timer.SYS_TIMER
SYS_IDEMPOTENCY = sys_idempotency.SYS_IDEMPOTENCY
SYS_PARTITION = sys_partition.SYS_PARTITION
SYS_SPAN = sys_span.SYS_SPAN
