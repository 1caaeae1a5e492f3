"""The catalog SQL rewriter (pgwire/rewrite.py), result column names, and the error texts
(query/errors.py), case by case; the clients that send these are in test_clients.py."""

from __future__ import annotations

import pytest
from rstq.pgwire import rewrite as R
from rstq.query.errors import readable

CTX = R.Context(functions={"format_type", "pg_get_expr"}, empty={"pg_attrdef", "pg_index"},
                constants={"txid_current": "1"})


@pytest.mark.parametrize("sql,want", [
    ("SELECT pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a",
     "SELECT format_type__2(CAST(a.atttypid AS VARCHAR), CAST(NULL AS VARCHAR)) "
     "FROM pg_attribute a"),
    ("SELECT c.relname FROM pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' "
     "COLLATE pg_catalog.default", "SELECT c.relname FROM pg_class c WHERE c.relname ~ "
     "'^(x)$'"),
    ("SELECT 'state'::regclass, c.oid::regclass, c.oid::regclass::text FROM pg_class c "
     "WHERE c.oid = 'x'::pg_catalog.regclass",
     "SELECT reg_oid__2('class', CAST('state' AS VARCHAR)), reg_name__2('class', "
     "CAST(c.oid AS VARCHAR)), reg_name__2('class', CAST(c.oid AS VARCHAR)) FROM pg_class c "
     "WHERE c.oid = reg_oid__2('class', CAST('x' AS VARCHAR))"),
    ("SELECT relkind::\"char\", oid::oid FROM pg_class",
     "SELECT CAST(relkind AS VARCHAR), CAST(oid AS BIGINT) FROM pg_class"),
    # a scalar subquery over an always-empty catalog is NULL; EXISTS over one is false
    ("SELECT (SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d WHERE "
     "d.adrelid = a.attrelid AND a.atthasdef) FROM pg_attribute a WHERE NOT EXISTS "
     "(SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid)",
     "SELECT NULL FROM pg_attribute a WHERE NOT false"),
    # ... but count(*) over one is 0, and correlated scalar subqueries are aggregated
    ("SELECT (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid), "
     "(SELECT t.typname FROM pg_type t WHERE t.oid = c.reltype) AS tn FROM pg_class c",
     "SELECT (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid), "
     "(SELECT max(t.typname) FROM pg_type t WHERE t.oid = c.reltype) AS tn "
     "FROM pg_class c"),
    ("SELECT ARRAY(SELECT a.attname FROM pg_attribute a ORDER BY a.attnum)",
     "SELECT (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a)"),
    ("SELECT 1 FROM pg_class WHERE relkind = ANY('{r,p,\"\"}')",
     "SELECT 1 FROM pg_class WHERE relkind = ANY(make_array('r', 'p', ''))"),
    ("SELECT txid_current()", "SELECT 1"),
])
def test_rewrite(sql: str, want: str) -> None:
    assert R.rewrite(sql, CTX) == want


def test_scalar_subquery_keeps_its_alias() -> None:
    got = R.rewrite("SELECT (SELECT t.typname AS n FROM pg_type t WHERE t.oid = 1) AS tn", CTX)
    assert got == "SELECT (SELECT max(t.typname) AS n FROM pg_type t WHERE t.oid = 1) AS tn"


@pytest.mark.parametrize("sql,names", [
    ("SELECT c.relname, count(*), c.oid::regclass, 1, n.nspname schema_name, "
     "x AS \"Name\", CASE WHEN a THEN 1 END, (SELECT t.typname FROM t), EXISTS (SELECT 1), "
     "CAST(a.attnum AS int), true FROM pg_class c",
     ["relname", "count", "oid", "?column?", "schema_name", "Name", "case", "typname",
      "exists", "attnum", "bool"]),
    ("SELECT n.oid, n.* FROM pg_namespace n", None),
    ("WITH v AS (SELECT 1 AS a) SELECT v.a FROM v", ["a"]),
])
def test_postgres_names(sql: str, names: list[str] | None) -> None:
    assert R.postgres_names(sql) == names


@pytest.mark.parametrize("msg,want", [
    ("Error during planning: table 'restate.public.sys_invocations' not found",
     'table "sys_invocations" does not exist; did you mean "sys_invocation"? '
     "(tables: state, sys_invocation)"),
    ("Schema error: No field named statu. Did you mean 'sys_invocation.status'?\nValid "
     "fields are sys_invocation.id, sys_invocation.status.",
     'column "statu" does not exist; did you mean "status"?'),
    ("Schema error: No field named nope.\nValid fields are s.key, s.value, i.id.",
     'column "nope" does not exist (s has: key, value; i has: id)'),
    ('SQL error: ParserError("Expected: an expression, found: EOF")',
     "syntax error: expected an expression, found EOF"),
    ("Error during planning: Invalid function 'lenght'.\nDid you mean 'length'?",
     "function lenght() does not exist; did you mean length()?"),
    ("DataFusion error: Arrow error: Divide by zero error", "division by zero"),
    ("type_coercion\ncaused by\nError during planning: Cannot infer common type",
     "Cannot infer common type"),
])
def test_readable_errors(msg: str, want: str) -> None:
    assert readable(msg, ["sys_invocation", "state"]) == want
