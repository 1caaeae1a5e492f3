"""pg_catalog / information_schema emulation, generated from `QueryEngine.tables()`.

The engine has no pg_catalog. Two layers answer clients' catalog queries:

- `Catalog.answer()` recognises a few fixed query shapes and answers them from the table
  declarations: psql 15's backslash commands (`\\dt`, `\\d`, `\\d NAME`, `\\l`, `\\dn`, so
  `\\d state` shows each column's doc string) and asyncpg's type introspection. The shapes are
  pinned by tests against the real psql and asyncpg.
- Any other query that names a catalog relation or function (`reads_catalog()`) runs on
  `catalog_data.CatalogSession`: DataFusion over generated pg_catalog and information_schema
  tables, after `rewrite.py` has turned the Postgres-only syntax into DataFusion's. That is what
  SQLAlchemy, pandas, pgcli and BI tools (DBeaver, Grafana) send, in many variants.

Everything else goes to the engine.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
from rstq.pgwire import rewrite as R
from rstq.pgwire import types as T
from rstq.pgwire.catalog_data import (
    FIRST_TABLE_OID,
    OWNER,
    CatalogSession,
    Model,
    format_type,
    typmod,
)
from rstq.query.api import QueryEngine, TableDef

_ALIAS = re.compile(r'\bas\s+"([^"]+)"', re.I)
_REGEX_FILTER = re.compile(
    r"(?P<col>\w+\.\w+)\s+OPERATOR\(pg_catalog\.~\)\s+'(?P<re>(?:[^']|'')*)'", re.I)
_OID_EQ = re.compile(r"\b(?:c\.oid|a\.attrelid|attrelid|i\.indrelid|inhrelid|"
                     r"c\.oid|pol\.polrelid|stxrelid|pr\.prrelid|tgrelid|r\.conrelid|"
                     r"conrelid|objid|indrelid|inhparent)\s*=\s*'?(\d+)'?", re.I)


def _norm(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip()


def _select_head(sql: str) -> str:
    """The text before the top-level FROM."""
    depth, quote = 0, False
    for i, ch in enumerate(sql):
        if ch == "'":
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and sql[i:i + 4].upper() == "FROM" and not sql[i - 1:i].isalnum() \
                    and not sql[i + 4:i + 5].isalnum():
                return sql[:i]
    return sql


def _aliases(sql: str) -> list[str]:
    return [a for part in _split_select(_select_head(sql)[len("SELECT "):])
            for a in _ALIAS.findall(part)[-1:]]


def _pg_regex(pattern: str) -> re.Pattern[str]:
    # psql emits POSIX regexes like ^(state)$ or ^(sys_.*)$; Python's syntax covers them.
    return re.compile(pattern.replace("''", "'"))


def _table(columns: dict[str, tuple[pa.DataType, list[Any]]]) -> pa.Table:
    return pa.table({k: pa.array(v, t) for k, (t, v) in columns.items()})


def _text_table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [pa.array([None if v is None else str(v) for v in c], pa.string()) for c in cols]
    return pa.Table.from_arrays(arrays, names=list(names))


class Catalog:
    def __init__(self, engine: QueryEngine, database: str = "rstq",
                 settings: Mapping[str, str] | None = None) -> None:
        self.engine = engine
        self.database = database
        self.settings = dict(settings or {})
        self.started = dt.datetime.now(dt.UTC)
        self._session: tuple[tuple[TableDef, ...], CatalogSession] | None = None
        self._session_lock = threading.Lock()
        self._handlers: list[tuple[Callable[[str], bool],
                                   Callable[[str, str, Sequence[Any]], pa.Table]]] = [
            (lambda q: "typeinfo_tree" in q and "pg_catalog.pg_type" in q, self._asyncpg_types),
            (lambda q: "FROM pg_catalog.pg_type AS t" in q and "t.typname = $1" in q,
             self._asyncpg_type_by_name),
            (lambda q: "FROM pg_catalog.pg_database d" in q, self._databases),
            (lambda q: "FROM pg_catalog.pg_namespace n" in q and "pg_class" not in q,
             self._namespaces),
            (lambda q: "FROM pg_catalog.pg_class c" in q and "c.relkind IN" in q
             and '"Name"' in q, self._relation_list),
            (lambda q: q.startswith("SELECT c.oid, n.nspname, c.relname FROM "
                                    "pg_catalog.pg_class c"),
             self._relation_lookup),
            (lambda q: "c.relchecks, c.relkind, c.relhasindex" in q, self._relation_info),
            (lambda q: "FROM pg_catalog.pg_attribute a" in q and "a.attnum > 0" in q,
             self._attributes),
            (self._is_empty_followup, self._followup),
        ]

    # --- the model -------------------------------------------------------------------------------

    def tables(self) -> list[tuple[int, TableDef]]:
        return [(FIRST_TABLE_OID + i, t) for i, t in enumerate(self.engine.tables())]

    def column_types(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.engine.tables():
            for c in t.columns:
                out.setdefault(c.name.lower(), T.pg_type_of(c.type))
        return out

    def _by_oid(self, sql: str) -> tuple[int, TableDef] | None:
        m = _OID_EQ.search(sql)
        if not m:
            return None
        oid = int(m.group(1))
        for o, t in self.tables():
            if o == oid:
                return o, t
        return None

    # --- entry points ----------------------------------------------------------------------------

    def answer(self, sql: str, params: Sequence[Any]) -> pa.Table | None:
        """The answer to a recognised catalog query shape, else None."""
        if "pg_catalog" not in sql and "pg_" not in sql:
            return None
        q = _norm(sql)
        for match, fn in self._handlers:
            if match(q):
                return fn(q, sql, params)
        return None

    def session(self) -> CatalogSession:
        """The catalog session over the engine's current table declarations."""
        tables = tuple(self.engine.tables())
        with self._session_lock:
            if self._session is None or self._session[0] != tables:
                model = Model(self.tables(), self.database, self.settings, self.started)
                self._session = (tables, CatalogSession(model))
            return self._session[1]

    def reads_catalog(self, sql: str) -> bool:
        """Whether `sql` names a catalog relation or function (then `query()` runs it)."""
        return self.session().reads_catalog(sql)

    def query(self, sql: str, params: Sequence[Any]) -> pa.Table:
        """Run a catalog query on the generated catalogs; raises QueryError."""
        return self.session().sql(sql, params)

    # --- psql ------------------------------------------------------------------------------------

    def _databases(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        values = {"Name": self.database, "Owner": OWNER, "Encoding": "UTF8", "Collate": "C",
                  "Ctype": "C", "ICU Locale": None, "ICU Rules": None, "Locale Provider": "libc",
                  "Access privileges": None, "Size": None, "Tablespace": "pg_default",
                  "Description": "rstq state (read-only)"}
        names = _aliases(q)
        if not names:  # not psql's \l: the generic catalog answers
            return self.session().sql(sql, params)
        return _text_table(names, [[values.get(n, self.database) for n in names]])

    def _namespaces(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        names = _aliases(q)
        if not names:  # not psql's \dn
            return self.session().sql(sql, params)
        values = {"Name": "public", "Owner": OWNER, "Access privileges": None,
                  "Description": "standard public schema", "nspname": "public"}
        return _text_table(names, [[values.get(n) for n in names]])

    def _relation_list(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        kinds = re.search(r"c\.relkind IN \(([^)]*)\)", q)
        wanted = set(re.findall(r"'(\w)'", kinds.group(1))) if kinds else {"r"}
        rx = _REGEX_FILTER.search(sql)
        names = _aliases(q)
        rows = []
        if "r" in wanted:  # psql orders by schema, name
            for _oid, t in sorted(self.tables(), key=lambda ot: ot[1].name):
                if rx and "relname" in rx.group("col") and \
                        not _pg_regex(rx.group("re")).search(t.name):
                    continue
                if rx and "nspname" in rx.group("col") and \
                        not _pg_regex(rx.group("re")).search("public"):
                    continue
                v = {"Schema": "public", "Name": t.name, "Type": "table", "Owner": OWNER,
                     "Persistence": "permanent", "Access method": "arrow", "Size": None,
                     "Description": t.doc, "Table": None}
                rows.append([v.get(n) for n in names])
        return _text_table(names, rows)

    def _relation_lookup(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        rx = _REGEX_FILTER.search(sql)
        if rx is None and params:  # pgcli's: the pattern is a parameter
            return self.session().sql(sql, params)
        rows = []
        for oid, t in sorted(self.tables(), key=lambda ot: ot[1].name):
            if rx is None or _pg_regex(rx.group("re")).search(t.name):
                rows.append((str(oid), "public", t.name))
        return _text_table(["oid", "nspname", "relname"], rows)

    def _relation_info(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        # \d NAME, step 2: SELECT c.relchecks, c.relkind, c.relhasindex, ... WHERE c.oid = 'N'
        head = _select_head(q)
        cols = _split_select(head[len("SELECT "):])
        found = self._by_oid(q)
        values = {
            "c.relchecks": "0", "c.relkind": "r", "c.relhasindex": "f", "c.relhasrules": "f",
            "c.relhastriggers": "f", "c.relrowsecurity": "f", "c.relforcerowsecurity": "f",
            "false AS relhasoids": "f", "c.relispartition": "f", "c.reltablespace": "0",
            "CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::"
            "pg_catalog.text END": "", "c.relpersistence": "p", "c.relreplident": "d",
            "am.amname": "arrow",
        }
        names = []
        for c in cols:
            m = re.search(r"(?i)\bAS\s+(\w+)$", c)
            names.append(m.group(1) if m else c.split(".")[-1].split()[-1])
        row = [values.get(c, "") for c in cols]
        if "relhasoids" in names:
            row[names.index("relhasoids")] = "f"
        return _typed(_text_table(names, [row] if found else []), _RELATION_TYPES)

    def _attributes(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        # \d NAME, step 3: one row per column (attname, format_type, default, notnull, ...)
        found = self._by_oid(q)
        head = _select_head(q)
        markers = ["format_type", "attrdef", "attnotnull", "attcollation", "attidentity",
                   "attgenerated", "indexdef", "attfdwoptions", "attstorage", "attstattarget",
                   "description", "attcompression", "attname"]
        names = []
        for part in _split_select(head[len("SELECT "):]):
            low = part.lower()
            key = next((mk for mk in markers if mk in low), None)
            if "pg_get_expr" in low:
                key = "attrdef"
            m = re.search(r"(?i)\bAS\s+(\w+)\s*$", part)
            names.append(key or (m.group(1) if m else part))
        rows = []
        if found:
            for c in found[1].columns:
                oid = T.pg_type_of(c.type)
                v = {"attname": c.name, "format_type": format_type(oid, typmod(c.type)),
                     "attrdef": None,
                     "attnotnull": "f" if c.nullable else "t", "attcollation": None,
                     "attidentity": "", "attgenerated": "", "indexdef": None,
                     "attfdwoptions": None, "attstorage": "x", "attstattarget": None,
                     "description": c.doc, "attcompression": ""}
                rows.append([v.get(n) for n in names])
        return _typed(_text_table(names, rows), {"attnotnull": pa.bool_()})

    _EMPTY_MARKERS = ("pg_catalog.pg_policy", "pg_catalog.pg_statistic_ext",
                      "pg_catalog.pg_publication", "pg_catalog.pg_inherits",
                      "pg_catalog.pg_trigger", "pg_catalog.pg_constraint",
                      "pg_catalog.pg_index", "pg_catalog.pg_rewrite",
                      "pg_catalog.pg_foreign_table", "pg_catalog.pg_partitioned_table")

    def _is_empty_followup(self, q: str) -> bool:
        return any(mk in q for mk in self._EMPTY_MARKERS)

    def _followup(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        """psql's follow-up queries on catalogs rstq has nothing in: empty when the query
        reads only those; else what the generic catalog says (empty if it cannot say)."""
        session = self.session()
        try:
            nothing = R.reads_nothing(R.strip_qualifiers(R.tokenize(q)), session.empty)
        except R.RewriteError:
            nothing = False
        if nothing:
            return self._empty(q, sql, params)
        try:
            return session.sql(sql, params)
        except Exception:
            return self._empty(q, sql, params)

    def _empty(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        head = _select_head(q)
        names = []
        for part in _split_select(head[len("SELECT "):]):
            m = re.search(r"(?i)\bAS\s+\"?(\w+)\"?\s*$", part)
            names.append(m.group(1) if m else part.split(".")[-1].strip() or "?column?")
        return _text_table(_dedup(names), [])

    # --- asyncpg ---------------------------------------------------------------------------------

    def _asyncpg_types(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        wanted = [int(o) for o in (params[0] if params and params[0] is not None else [])]
        rows: list[dict[str, Any]] = []
        seen: set[int] = set()

        def add(oid: int, depth: int) -> None:
            t = T.TYPES.get(oid)
            if t is None or oid in seen:
                return
            seen.add(oid)
            if t.elem:
                add(t.elem, depth + 1)
            elem = T.TYPES.get(t.elem) if t.elem else None
            rows.append({"oid": oid, "ns": "pg_catalog", "name": t.name,
                         "kind": b"p" if t.category == "P" else b"b",
                         "basetype": None, "elemtype": t.elem or 0,
                         "elemdelim": elem.delim if elem else None, "range_subtype": None,
                         "attrtypoids": None, "attrnames": None, "depth": depth,
                         "basetype_name": None,
                         "elemtype_name": T.format_type(t.elem) if t.elem else None,
                         "range_subtype_name": None})

        for o in wanted:
            add(o, 0)
        rows.sort(key=lambda r: -int(r["depth"]))
        u32, s = pa.uint32(), pa.string()
        fields = [
            T.pg_field("oid", u32, T.OID), T.pg_field("ns", s, T.NAME),
            T.pg_field("name", s, T.NAME), T.pg_field("kind", s, T.CHAR),
            T.pg_field("basetype", u32, T.OID), T.pg_field("elemtype", u32, T.OID),
            T.pg_field("elemdelim", s, T.CHAR), T.pg_field("range_subtype", u32, T.OID),
            T.pg_field("attrtypoids", pa.list_(u32), 1028),
            T.pg_field("attrnames", pa.list_(s), 1009), pa.field("depth", pa.int32()),
            pa.field("basetype_name", s), pa.field("elemtype_name", s),
            pa.field("range_subtype_name", s),
        ]
        for r in rows:
            r["kind"] = r["kind"].decode()
        return pa.Table.from_pylist(rows, schema=pa.schema(fields))

    def _asyncpg_type_by_name(self, q: str, sql: str, params: Sequence[Any]) -> pa.Table:
        name = str(params[0]) if params else ""
        oid = T.TYPE_BY_NAME.get(name)
        rows = [] if oid is None else [oid]
        schema = pa.schema([T.pg_field("oid", pa.uint32(), T.OID),
                            T.pg_field("elemtype", pa.uint32(), T.OID),
                            T.pg_field("kind", pa.string(), T.CHAR)])
        return pa.Table.from_pylist([{"oid": o, "elemtype": T.TYPES[o].elem, "kind": "b"}
                                     for o in rows], schema=schema)


_RELATION_TYPES: dict[str, pa.DataType] = {
    "relchecks": pa.int16(), "relhasindex": pa.bool_(), "relhasrules": pa.bool_(),
    "relhastriggers": pa.bool_(), "relhasoids": pa.bool_(), "relrowsecurity": pa.bool_(),
    "relforcerowsecurity": pa.bool_(), "relispartition": pa.bool_(), "reltablespace": pa.int64()}


def _typed(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    """Columns of a text answer with their Postgres types (psql reads the same text, clients
    that read values get booleans and numbers)."""
    for i, name in enumerate(table.column_names):
        t = types.get(name)
        if t is not None:
            col = table.column(i)
            typed = (pa.array([None if v is None else v == "t" for v in col.to_pylist()], t)
                     if pa.types.is_boolean(t) else col.cast(t))
            table = table.set_column(i, name, typed)
    return table


def _split_select(s: str) -> list[str]:
    """Split a select list on top-level commas."""
    out: list[str] = []
    cur: list[str] = []
    depth, quote = 0, False
    for ch in s:
        if ch == "'":
            quote = not quote
        if not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "," and depth == 0:
                out.append("".join(cur).strip())
                cur = []
                continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _dedup(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out
