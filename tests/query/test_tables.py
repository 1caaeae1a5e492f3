"""Declarations: Restate 1.7 compatibility, docs freshness, every table queryable."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from rstq.core.changes import Keyed
from rstq.core.model import PartitionState
from rstq.query import local_engine
from rstq.query.api import Column
from rstq.query.docs import render, type_name
from rstq.query.tables import BY_NAME, MODULES, REGISTRY, STORES, TABLES
from rstq.query.tables.base import Kind, RowContext, Store, row_type

HERE = Path(__file__).parent
RESTATE = json.loads((HERE / "restate_1_7_columns.json").read_text())
SHARED = ["state", "sys_deployment", "sys_inbox", "sys_invocation", "sys_invocation_state",
          "sys_invocation_status", "sys_journal", "sys_journal_events",
          "sys_keyed_service_status", "sys_promise", "sys_service"]
OURS = ["sys_status", "sys_timer", "sys_idempotency", "sys_partition", "sys_span"]


def test_every_table_is_shared_or_ours() -> None:
    assert sorted(BY_NAME) == sorted(SHARED + OURS)


@pytest.mark.parametrize("name", SHARED)
def test_same_columns_as_restate(name: str) -> None:
    ours = [(c.name, type_name(c.type), c.nullable) for c in BY_NAME[name].columns]
    theirs = [tuple(c) for c in RESTATE[name]["columns"]]
    assert ours == theirs


def test_every_column_documented() -> None:
    for t in TABLES:
        assert t.doc
        for c in t.columns:
            assert c.doc.strip(), f"{t.name}.{c.name}"


def test_docs_page_is_up_to_date() -> None:
    page = Path(__file__).parents[2] / "docs" / "tables.md"
    assert page.read_text() == render(), "run: python -m rstq.query.docs"


def test_every_table_queryable_and_in_information_schema() -> None:
    eng = local_engine([PartitionState(0, 2), PartitionState(1, 2)])
    try:
        for t in TABLES:
            got = eng.sql(f"SELECT * FROM {t.name}")
            assert got.schema.names == [c.name for c in t.columns]
            assert got.schema == t.schema
        cols = eng.sql("SELECT table_name, column_name, data_type FROM information_schema.columns"
                       " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
        by_table: dict[str, list[tuple[str, str]]] = {}
        for r in cols.to_pylist():
            by_table.setdefault(r["table_name"], []).append((r["column_name"], r["data_type"]))
        for t in TABLES:
            assert by_table[t.name] == [(c.name, type_name(c.type)) for c in t.columns]
    finally:
        eng.close()


def test_registry_one_module_per_table() -> None:
    """Each table is declared in the module named after it (the invocation views share
    invocations.py), and each store-backed table reads a store the views keep."""
    for read in REGISTRY:
        owner = next(m for m in MODULES if read in m.TABLES)
        expected = "invocations" if read.table.name.startswith(("sys_invocation", "sys_status")) \
            else read.table.name
        assert owner.__name__.rsplit(".", 1)[1] == expected
        if read.kind == Kind.STORE:
            assert read.store in STORES
    assert len({s.name for s in STORES}) == len(STORES)


def test_row_constructors_are_by_name_and_complete() -> None:
    make = row_type("Demo", (Column("a", pa.uint32(), "a"), Column("b", pa.uint32(), "b")))
    assert make(b=2) == (None, 2)
    with pytest.raises(TypeError):
        make(c=3)  # not a column
    with pytest.raises(TypeError):
        make(1, 2)  # by keyword only
    with pytest.raises(ValueError, match="identifier"):
        row_type("Bad", (Column("not an id", pa.uint32(), "x"),))
    state = PartitionState(0, 1)
    for store in STORES:  # a missing key gives no rows, for every store
        assert store.rows(state, _missing_key(store), RowContext()) == []


def _missing_key(store: Store) -> object:
    return {Keyed.INVOCATIONS: "inv_x", Keyed.TIMERS: "sleep:inv_x:1",
            Keyed.PROMISES: ("W", "k", "p"),
            Keyed.IDEMPOTENCY: ("S", "", "h", "i")}.get(store.source, ("S", "k"))
