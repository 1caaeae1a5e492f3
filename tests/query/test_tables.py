"""Declarations: Restate 1.7 compatibility, docs freshness, every table queryable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rstq.core.model import PartitionState
from rstq.query import local_engine
from rstq.query.docs import render, type_name
from rstq.query.tables import BY_NAME, TABLES

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
