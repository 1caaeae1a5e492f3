"""Postgres catalog SQL -> SQL that DataFusion plans, on a token tree (no parser).

Clients introspect with Postgres-only syntax that DataFusion 55 rejects (sql-stack.md): schema
qualified names (`pg_catalog.pg_class`, `pg_catalog.format_type(`), `OPERATOR(pg_catalog.~)`,
`COLLATE`, casts to `regclass`/`regtype`/`oid`/`"char"`/`name`, `ARRAY(SELECT ...)`, correlated
scalar subqueries that are not aggregated, and overloaded catalog functions. `rewrite()` turns
them into what DataFusion has: plain names, `CAST`s, helper functions (`reg_oid`, `reg_name`,
`<name>__<arity>`, registered by `catalog_data`), `(SELECT array_agg(...))` and `max(...)`;
a scalar subquery that reads only always-empty catalogs (pg_attrdef, pg_index, ...) is NULL.

`postgres_names()` gives the result column names Postgres would (`relname`, not
`pg_class.relname`; `count`, not `count(*)`), since clients read columns by name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

from rstq.pgwire import types as T


class RewriteError(Exception):
    """SQL this module cannot tokenize (unbalanced parentheses, ...)."""


@dataclass
class Tok:
    kind: str  # str, qident, ident, num, param, op, punct
    text: str

    @property
    def word(self) -> str:
        """Upper-cased keyword/identifier text ('' for other tokens)."""
        return self.text.upper() if self.kind == "ident" else ""


@dataclass
class Group:
    open: str  # "(" or "["
    items: list[Item] = field(default_factory=list)

    @property
    def close(self) -> str:
        return ")" if self.open == "(" else "]"


Item = Tok | Group

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<str>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
  | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?\$(?P=tag)?\$)
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<param>\$\d+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_\u0080-\uffff][\w$]*)
  | (?P<op>::|<=|>=|<>|!=|!~\*|!~|~\*|\|\||->>|->|=>|[-+*/%^<>=~!|&#@?])
  | (?P<punct>[(),;.\[\]:])
""", re.S | re.X)


def tokenize(sql: str) -> list[Item]:
    """The statement as a tree of tokens and parenthesised/bracketed groups."""
    root = Group("(")
    stack = [root]
    pos = 0
    while pos < len(sql):
        mt = _TOKEN.match(sql, pos)
        if mt is None:
            raise RewriteError(f"cannot tokenize at {sql[pos:pos + 20]!r}")
        pos = mt.end()
        kind = mt.lastgroup
        if kind == "tag":
            kind = "dollar"
        if kind in ("ws", "comment"):
            continue
        text = mt.group(0)
        if kind == "dollar":
            kind = "str"
        if kind == "punct" and text in "([":
            g = Group(text)
            stack[-1].items.append(g)
            stack.append(g)
            continue
        if kind == "punct" and text in ")]":
            if len(stack) == 1 or stack[-1].close != text:
                raise RewriteError("unbalanced parentheses")
            stack.pop()
            continue
        assert kind is not None
        stack[-1].items.append(Tok(kind, text))
    if len(stack) != 1:
        raise RewriteError("unbalanced parentheses")
    return root.items


def render(items: Sequence[Item]) -> str:
    out: list[str] = []
    prev: Item | None = None
    for it in items:
        text = (it.open + render(it.items) + it.close) if isinstance(it, Group) else it.text
        if out and _space_between(prev, it):
            out.append(" ")
        out.append(text)
        prev = it
    return "".join(out)


def _space_between(a: Item | None, b: Item) -> bool:
    if a is None:
        return False
    if isinstance(b, Tok) and b.text in (".", ",", ";", "::"):
        return False
    if isinstance(a, Tok) and a.text in (".", "::"):
        return False
    if isinstance(b, Group) and isinstance(a, Tok) and a.kind in ("ident", "qident") \
            and (a.word not in _KEYWORDS or a.word in _CALL_LIKE):
        return False  # f(x), arr[1]
    return True


def _toks(sql: str) -> list[Item]:
    return tokenize(sql)


def is_word(it: Item | None, *words: str) -> bool:
    return isinstance(it, Tok) and it.kind == "ident" and it.word in words


def is_group(it: Item | None, open_: str) -> TypeGuard[Group]:
    return isinstance(it, Group) and it.open == open_


def is_punct(it: Item | None, text: str) -> bool:
    return isinstance(it, Tok) and it.kind in ("punct", "op") and it.text == text


def split_commas(items: Sequence[Item]) -> list[list[Item]]:
    out: list[list[Item]] = [[]]
    for it in items:
        if is_punct(it, ","):
            out.append([])
        else:
            out[-1].append(it)
    return out if any(out) else []


def join_commas(parts: Iterable[list[Item]]) -> list[Item]:
    out: list[Item] = []
    for i, p in enumerate(parts):
        if i:
            out.append(Tok("punct", ","))
        out += p
    return out


_KEYWORDS = {
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS", "AS", "ON", "JOIN", "LEFT",
    "RIGHT", "INNER", "OUTER", "FULL", "CROSS", "GROUP", "ORDER", "BY", "HAVING", "LIMIT",
    "OFFSET", "UNION", "EXCEPT", "INTERSECT", "CASE", "WHEN", "THEN", "ELSE", "END", "EXISTS",
    "ANY", "ALL", "SOME", "ARRAY", "WITH", "DISTINCT", "NULL", "TRUE", "FALSE", "LIKE", "ILIKE",
    "BETWEEN", "USING", "LATERAL", "VALUES", "CAST", "OVER", "FILTER", "WINDOW", "FETCH",
    "RECURSIVE", "ASC", "DESC", "NULLS", "FIRST", "LAST", "INTERVAL", "COLLATE", "OPERATOR",
    "SIMILAR", "ESCAPE", "RETURNING", "FOR", "INTO",
}
_CALL_LIKE = {"CAST", "ANY", "ALL", "SOME", "EXISTS", "ARRAY"}  # rendered as f(...)
_CLAUSE_END = {"FROM", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION",
               "EXCEPT", "INTERSECT", "WINDOW", "FETCH", "FOR", "INTO"}
_AFTER_FROM = {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "UNION", "EXCEPT",
               "INTERSECT", "WINDOW", "FETCH", "FOR"}
AGGREGATES = {"COUNT", "MAX", "MIN", "SUM", "AVG", "ARRAY_AGG", "STRING_AGG", "BOOL_AND",
              "BOOL_OR", "EVERY", "JSON_AGG", "JSONB_AGG", "FIRST_VALUE", "LAST_VALUE"}

# --- casts ---------------------------------------------------------------------------------------

REG_KINDS = {"regclass": "class", "regtype": "type", "regnamespace": "namespace",
             "regrole": "role", "regproc": "proc", "regprocedure": "proc", "regoper": "oper",
             "regoperator": "oper", "regconfig": "config", "regdictionary": "dictionary",
             "regcollation": "collation"}
_TEXTUAL = {"text", "varchar", "character varying", "name", "char", '"char"', "bpchar",
            "character", "citext", "sql_identifier", "character_data", "yes_or_no", "json",
            "jsonb", "unknown", "inet", "cidr", "xml", "pg_node_tree", "aclitem",
            "pg_ndistinct", "pg_dependencies", "pg_mcv_list", "regproc", "regprocedure"}
_TYPE_MAP = {
    "oid": "BIGINT", "xid": "BIGINT", "xid8": "BIGINT", "cid": "BIGINT", "tid": "VARCHAR",
    "int2": "SMALLINT", "smallint": "SMALLINT", "int4": "INT", "int": "INT", "integer": "INT",
    "int8": "BIGINT", "bigint": "BIGINT", "cardinal_number": "BIGINT", "float4": "REAL",
    "real": "REAL", "float8": "DOUBLE", "double precision": "DOUBLE", "bool": "BOOLEAN",
    "boolean": "BOOLEAN", "timestamptz": "TIMESTAMP", "timestamp with time zone": "TIMESTAMP",
    "time_stamp": "TIMESTAMP",
}
_MULTIWORD = (("DOUBLE", "PRECISION"), ("CHARACTER", "VARYING"), ("BIT", "VARYING"),
              ("TIMESTAMP", "WITH", "TIME", "ZONE"), ("TIMESTAMP", "WITHOUT", "TIME", "ZONE"),
              ("TIME", "WITH", "TIME", "ZONE"), ("TIME", "WITHOUT", "TIME", "ZONE"))


@dataclass
class _Type:
    name: str  # lower-case, quotes kept for "char"
    end: int  # index after the type in the item list
    array: bool


def _read_type(items: Sequence[Item], i: int) -> _Type | None:
    """The type name starting at items[i] (after `::` or `AS`)."""
    it = items[i] if i < len(items) else None
    if not isinstance(it, Tok) or it.kind not in ("ident", "qident"):
        return None
    words = [it]
    j = i + 1
    # schema-qualified (pg_catalog. is gone already): information_schema.sql_identifier
    while is_punct(items[j] if j < len(items) else None, ".") and j + 1 < len(items) \
            and isinstance(items[j + 1], Tok):
        words = [items[j + 1]]  # type: ignore[list-item]
        j += 2
    for multi in _MULTIWORD:
        if tuple(w.word for w in words) == multi[:1] and all(
                is_word(items[j + k] if j + k < len(items) else None, w)
                for k, w in enumerate(multi[1:])):
            words += [items[j + k] for k in range(len(multi) - 1)]  # type: ignore[misc]
            j += len(multi) - 1
            break
    name = " ".join(w.text.lower() if w.kind == "ident" else w.text for w in words)
    if name.startswith('"') and name != '"char"':
        name = name.strip('"').lower()
    if j < len(items) and is_group(items[j], "("):  # typmod
        if name in ("numeric", "decimal", "varchar", "character varying", "char", "bpchar",
                    "character", "timestamp", "timestamptz", "time", "interval", "bit",
                    "bit varying"):
            j += 1
    array = False
    while j < len(items) and is_group(items[j], "[") and not items[j].items:  # type: ignore[union-attr]
        array = True
        j += 1
    return _Type(name, j, array)


def _operand_start(items: Sequence[Item], end: int) -> int:
    """Index of the first item of the primary expression that ends before `end`."""
    i = end - 1
    if i < 0:
        raise RewriteError("cast without operand")
    while i > 0 and is_group(items[i], "[") and not is_word(items[i - 1], "ARRAY"):
        i -= 1  # subscripts: a[1]
    it = items[i]
    if isinstance(it, Group):
        before = items[i - 1] if i > 0 else None
        if isinstance(before, Tok) and before.kind in ("ident", "qident") and (
                before.kind == "qident" or before.word not in _KEYWORDS
                or before.word in ("ARRAY", "EXISTS")):
            i -= 1  # f(x), ARRAY[...]
        else:
            return i  # (expr)
    elif it.kind not in ("ident", "qident", "str", "num", "param"):
        raise RewriteError(f"cast of {it.text!r}")
    while i >= 2 and is_punct(items[i - 1], ".") and isinstance(items[i - 2], Tok) and \
            items[i - 2].kind in ("ident", "qident"):  # type: ignore[union-attr]
        i -= 2  # a.b.c
    return i


def _cast(operand: list[Item], sql_type: str, array: bool = False) -> list[Item]:
    return [Tok("ident", "CAST"), Group("(", [*operand, Tok("ident", "AS"),
                                             *tokenize(sql_type + ("[]" if array else ""))])]


def _call(name: str, *args: list[Item]) -> list[Item]:
    return [Tok("ident", name), Group("(", join_commas(args))]


def _as_text(operand: list[Item]) -> list[Item]:
    return _cast(operand, "VARCHAR")


def _literal(s: str) -> list[Item]:
    return [Tok("str", "'" + s.replace("'", "''") + "'")]


# --- the passes ----------------------------------------------------------------------------------


@dataclass
class Context:
    functions: Collection[str]  # helper functions by name (lower case), registered as name__N
    empty: Collection[str]  # always-empty catalog relations
    constants: dict[str, str] = field(default_factory=dict)  # zero-argument functions -> SQL


ALIAS_PREFIX = "__pg"


def rewrite(sql: str, ctx: Context) -> str:
    items = _alias_beside_wildcards(strip_qualifiers(tokenize(sql)))
    items = _rewrite_level(items, ctx, top=True)
    return render(items)


def _alias_beside_wildcards(items: list[Item]) -> list[Item]:
    """`SELECT n.oid, n.* ...` names oid twice, which DataFusion refuses: each item beside a
    wildcard gets an alias `"__pg<k>__<name>"` (`restore_name()` gives the name back)."""
    span = _select_list_span(items)
    if span is None:
        return items
    cols = split_commas(items[span[0]:span[1]])
    if not any(_column_name(c) is None for c in cols):
        return items
    out = []
    for k, col in enumerate(cols):
        name = _column_name(col)
        aliased = len(col) >= 2 and is_word(col[-2], "AS")
        if name is not None and not aliased:
            col = [*col, Tok("ident", "AS"), Tok("qident", f'"{ALIAS_PREFIX}{k}__{name}"')]
        out.append(col)
    return [*items[:span[0]], *join_commas(out), *items[span[1]:]]


def restore_name(name: str) -> str:
    if name.startswith(ALIAS_PREFIX) and "__" in name[len(ALIAS_PREFIX):]:
        return name[len(ALIAS_PREFIX):].split("__", 1)[1]
    return name


def _rewrite_level(items: list[Item], ctx: Context, top: bool) -> list[Item]:
    items = strip_qualifiers(items)
    # children first (bottom-up); a group's own statement is not the top level
    out: list[Item] = []
    for it in items:
        if isinstance(it, Group):
            it = Group(it.open, _rewrite_level(it.items, ctx, top=False))
        out.append(it)
    items = out
    items = _operators_and_collate(items)
    items = _casts(items, top)
    items = _functions(items, ctx)
    items = _subqueries(items, ctx)
    items = _scalar_functions_in_from(items)
    return _operators_and_collate(items, escape=True)


TABLE_FUNCTIONS = {"generate_series", "unnest", "range", "generate_subscripts"}


def _scalar_functions_in_from(items: list[Item]) -> list[Item]:
    """`FROM string_to_array(x, ',') s`: a scalar function in FROM is one row whose column
    is named like the alias (Postgres); DataFusion knows only table functions there."""
    out: list[Item] = []
    clause, expect = "", False
    i = 0
    while i < len(items):
        it = items[i]
        if isinstance(it, Tok) and it.word in _CLAUSE_END | {"SELECT"}:
            clause = it.word
            expect = clause == "FROM"
        elif is_word(it, "JOIN") or (clause == "FROM" and is_punct(it, ",")):
            expect = True
        elif expect and isinstance(it, Tok) and it.kind == "ident" and \
                it.word not in _KEYWORDS and i + 1 < len(items) and is_group(items[i + 1], "("):
            j = i + 2
            if is_word(items[j] if j < len(items) else None, "AS"):
                j += 1
            alias = items[j] if j < len(items) else None
            named = isinstance(alias, Tok) and alias.kind in ("ident", "qident") and \
                alias.word not in _KEYWORDS
            if it.text.lower() in TABLE_FUNCTIONS:
                # generate_series(...) AS i: Postgres names the column i too
                if named and not is_group(items[j + 1] if j + 1 < len(items) else None, "("):
                    out += [*items[i:j + 1], Group("(", [alias])]  # type: ignore[list-item]
                    i = j + 1
                    expect = False
                    continue
            elif named:
                assert isinstance(alias, Tok)
                call = [it, items[i + 1]]
                out += [Group("(", [Tok("ident", "SELECT"), *call, Tok("ident", "AS"), alias]),
                        Tok("ident", "AS"), alias]
                i = j + 1
                expect = False
                continue
        elif expect and not is_word(it, "LATERAL", "ONLY"):
            expect = False
        out.append(it)
        i += 1
    return out


def strip_qualifiers(items: list[Item]) -> list[Item]:
    out: list[Item] = []
    i = 0
    while i < len(items):
        it = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if isinstance(it, Tok) and (it.kind == "ident" and it.text.lower() == "pg_catalog"
                                    or it.kind == "qident" and it.text == '"pg_catalog"') \
                and is_punct(nxt, ".") and not is_punct(out[-1] if out else None, "."):
            i += 2
            continue
        out.append(it)
        i += 1
    return out


def _operators_and_collate(items: list[Item], escape: bool = False) -> list[Item]:
    """OPERATOR(pg_catalog.~) -> ~, COLLATE x -> nothing; with `escape`, LIKE p ESCAPE 'c'
    -> LIKE p' (DataFusion knows only the backslash)."""
    out: list[Item] = []
    i = 0
    while i < len(items):
        it = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if is_word(it, "OPERATOR") and isinstance(nxt, Group):
            out += [t for t in nxt.items if not is_punct(t, ".")][-1:]
            i += 2
            continue
        if escape and is_word(it, "ESCAPE") and isinstance(nxt, Tok) and nxt.kind == "str" and \
                nxt.text not in ("'\\'", "E'\\\\'"):
            like = max((k for k, t in enumerate(out) if is_word(t, "LIKE", "ILIKE")), default=-1)
            if like < 0 or len(nxt.text) != 3:
                raise RewriteError("LIKE ... ESCAPE")
            pattern = out[like + 1:]
            bs = _literal("\\")
            swapped = _call("replace", _call("replace", [Group("(", pattern)], bs,
                                             _literal("\\\\")), [nxt], bs)
            out[like + 1:] = swapped
            i += 2
            continue
        if is_word(it, "COLLATE") and isinstance(nxt, Tok) and nxt.kind in ("ident", "qident"):
            i += 2
            while i + 1 < len(items) and is_punct(items[i], "."):
                i += 2
            continue
        out.append(it)
        i += 1
    return out


def _select_list_span(items: Sequence[Item]) -> tuple[int, int] | None:
    """[start, end) of the select list of the SELECT at this level, if it starts one."""
    start = next((i for i, it in enumerate(items) if is_word(it, "SELECT")), None)
    if start is None:
        return None
    j = start + 1
    while j < len(items) and is_word(items[j], "DISTINCT", "ALL"):
        j += 1
        if j < len(items) and isinstance(items[j], Group) and is_word(items[j - 1], "ON"):
            j += 1
    end = next((k for k in range(j, len(items)) if is_word(items[k], *_CLAUSE_END)),
               len(items))
    return j, end


def _casts(items: list[Item], top: bool) -> list[Item]:
    span = _select_list_span(items) if top else None
    i = 0
    items = list(items)
    while i < len(items):
        it = items[i]
        if is_word(it, "CAST") and i + 1 < len(items) and isinstance(items[i + 1], Group):
            g = items[i + 1]
            assert isinstance(g, Group)
            as_at = max((k for k, t in enumerate(g.items) if is_word(t, "AS")), default=-1)
            t = _read_type(g.items, as_at + 1) if as_at > 0 else None
            if t is not None and t.end == len(g.items):
                operand = g.items[:as_at]
                repl = _cast_to(operand, t, None, span is not None and span[0] <= i < span[1])
                if repl is not None:
                    items[i:i + 2] = repl
                    i += len(repl)
                    continue
            i += 2
            continue
        if not is_punct(it, "::"):
            i += 1
            continue
        t = _read_type(items, i + 1)
        if t is None:
            raise RewriteError("cast to an unknown type")
        start = _operand_start(items, i)
        operand = items[start:i]
        # a following ::text decides a reg* cast's form
        then: _Type | None = None
        if t.name in REG_KINDS and not t.array and is_punct(
                items[t.end] if t.end < len(items) else None, "::"):
            then = _read_type(items, t.end + 1)
        in_select = span is not None and span[0] <= start < span[1]
        repl = _cast_to(operand, t, then, in_select)
        end = then.end if then is not None and then.name in _TEXTUAL else t.end
        if repl is None:
            repl = [*operand, Tok("op", "::"), *items[i + 1:t.end]]
            end = t.end
        items[start:end] = repl
        i = start + len(repl)
    return items


def _array_literal(operand: Sequence[Item]) -> list[Item] | None:
    """`'{a,b}'` (Postgres array text) -> `make_array('a', 'b')`; None for anything else."""
    if len(operand) != 1 or not isinstance(operand[0], Tok) or operand[0].kind != "str":
        return None
    text = operand[0].text
    if not text.startswith("'{") or not text.endswith("}'"):
        return None
    try:
        values = T.parse_array_text(text[1:-1].replace("''", "'"))
    except (ValueError, IndexError):
        return None
    elems: list[list[Item]] = [_literal(v) if v is not None else [Tok("ident", "NULL")]
                               for v in values]
    return _call("make_array", *elems)


def _cast_to(operand: list[Item], t: _Type, then: _Type | None,
             in_select: bool) -> list[Item] | None:
    """The replacement for `operand::t` (None: leave it as it is)."""
    if t.array:
        array = _array_literal(operand)
        if array is not None:
            operand = array
    if t.name in ("regproc", "regprocedure"):  # catalogs keep function names: compare those
        if len(operand) == 1 and isinstance(operand[0], Tok) and operand[0].kind == "str":
            name = operand[0].text[1:-1].replace("''", "'")
            return _literal(name.removeprefix("pg_catalog."))
        return _cast(operand, "VARCHAR", t.array)
    if t.name in REG_KINDS:
        kind = _literal(REG_KINDS[t.name])
        if t.array:
            return _cast(operand, "BIGINT", array=True)
        literal = len(operand) == 1 and isinstance(operand[0], Tok) and \
            operand[0].kind in ("str", "param")
        textual = then is not None and then.name in _TEXTUAL
        if textual or (in_select and not literal and then is None):
            return _call("reg_name__2", kind, _as_text(operand))
        return _call("reg_oid__2", kind, _as_text(operand))
    if t.name in ("int2vector", "oidvector"):
        return operand
    if t.name in _TEXTUAL:
        return _cast(operand, "VARCHAR", t.array)
    mapped = _TYPE_MAP.get(t.name)
    if mapped is not None:
        return _cast(operand, mapped, t.array)
    return None


def _functions(items: list[Item], ctx: Context) -> list[Item]:
    out: list[Item] = []
    i = 0
    while i < len(items):
        it = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if is_word(it, "ANY", "ALL", "SOME") and isinstance(nxt, Group) and nxt.open == "(":
            array = _array_literal(nxt.items)
            if array is not None:
                out += [it, Group("(", array)]
                i += 2
                continue
        if isinstance(it, Tok) and it.kind == "ident" and isinstance(nxt, Group) and \
                nxt.open == "(" and not is_punct(out[-1] if out else None, "."):
            name = it.text.lower()
            args = split_commas(nxt.items)
            if name in ("array_upper", "array_lower") and len(args) == 2:
                length = _cast(_call("array_length", *args), "BIGINT")
                out += length if name == "array_upper" else [Group("(", [
                    Tok("ident", "CASE"), Tok("ident", "WHEN"), *length, Tok("op", ">"),
                    Tok("num", "0"), Tok("ident", "THEN"), Tok("num", "1"), Tok("ident", "END")])]
                i += 2
                continue
            if name in ctx.constants and not args:
                out += tokenize(ctx.constants[name])
                i += 2
                continue
            if name in ctx.functions:
                out += _call(f"{name}__{len(args)}", *(_as_text(a) for a in args))
                i += 2
                continue
        out.append(it)
        i += 1
    return out


def from_tables(items: Sequence[Item]) -> list[str] | None:
    """The relations the FROM clause at this level reads (lower case); None when it reads
    something else too (a derived table, a function, another schema's relation)."""
    joins = from_joins(items)
    return None if joins is None else [name for name, _kind in joins]


def from_joins(items: Sequence[Item]) -> list[tuple[str, str]] | None:
    """`from_tables`, each with how it is joined: first, inner, left, right, full, cross."""
    out: list[tuple[str, str]] = []
    i = next((k for k, it in enumerate(items) if is_word(it, "FROM")), None)
    if i is None:
        return []
    expect, kind = True, "first"
    i += 1
    while i < len(items):
        it = items[i]
        if is_word(it, *_AFTER_FROM):
            break
        if expect:
            if not isinstance(it, Tok) or it.kind not in ("ident", "qident") or (
                    i + 1 < len(items) and isinstance(items[i + 1], Group)):
                return None
            if i + 2 < len(items) and is_punct(items[i + 1], "."):
                return None
            out.append((it.text.lower() if it.kind == "ident" else it.text.strip('"'), kind))
            expect, kind = False, "inner"
        elif is_punct(it, ","):
            expect, kind = True, "cross"
        elif isinstance(it, Tok) and is_word(it, "LEFT", "RIGHT", "FULL", "CROSS"):
            kind = it.word.lower()
        elif is_word(it, "JOIN"):
            expect = True
        i += 1
    return out


def reads_nothing(items: Sequence[Item], empty: Collection[str]) -> bool:
    """Whether the query at this level has no rows because of always-empty relations: its
    first relation or an inner-joined one is empty (no RIGHT/FULL joins, no aggregate over
    the whole input, no set operation)."""
    joins = from_joins(items)
    if not joins or any(k in ("right", "full") for _n, k in joins):
        return False
    if any(is_word(t, "UNION", "EXCEPT", "INTERSECT") for t in items):
        return False
    if _aggregates_without_group(items):
        return False
    return any(n in empty and k in ("first", "inner", "cross") for n, k in joins)


def _is_query(g: Item) -> bool:
    return isinstance(g, Group) and g.open == "(" and bool(g.items) and \
        is_word(g.items[0], "SELECT")


def _subqueries(items: list[Item], ctx: Context) -> list[Item]:
    out: list[Item] = []
    clause = ""  # the clause keyword this level is in (FROM: a group after `,` is a table)
    for it in items:
        if isinstance(it, Tok) and it.word in _CLAUSE_END | {"SELECT"}:
            clause = it.word
        if not _is_query(it):
            out.append(it)
            continue
        assert isinstance(it, Group)
        prev = out[-1] if out else None
        empty = reads_nothing(it.items, ctx.empty)
        if is_word(prev, "EXISTS"):
            out[-1:] = [Tok("ident", "false")] if empty else [prev, it]  # type: ignore[list-item]
            continue
        if is_word(prev, "ARRAY"):
            out.pop()
            out += [Group("(", _array_subquery(it.items))] if not empty else \
                tokenize("make_array()")
            continue
        if is_word(prev, "IN", "ANY", "ALL", "SOME", "FROM", "JOIN", "LATERAL", "AS", "UNION",
                   "EXCEPT", "INTERSECT") or (clause == "FROM" and is_punct(prev, ",")) or (
                isinstance(prev, Tok) and prev.kind == "ident" and prev.word not in _KEYWORDS):
            out.append(it)  # a table, IN (SELECT ...), f((SELECT ...)): DataFusion's own
            continue
        if empty:
            out.append(Tok("ident", "NULL"))
            continue
        out.append(Group("(", _aggregate_scalar(it.items)))
    return out


def _aggregates_without_group(items: Sequence[Item]) -> bool:
    """`SELECT count(*) FROM t` has one row even when t is empty."""
    span = _select_list_span(items)
    if span is None or any(is_word(t, "GROUP") for t in items):
        return False
    return _has_aggregate(items[span[0]:span[1]])


def _array_subquery(items: list[Item]) -> list[Item]:
    """`ARRAY(SELECT x FROM ... ORDER BY y)` -> `SELECT array_agg(x ORDER BY y) FROM ...`."""
    span = _select_list_span(items)
    if span is None:
        return items
    start, end = span
    order = next((k for k in range(end, len(items)) if is_word(items[k], "ORDER")
                  and is_word(items[k + 1] if k + 1 < len(items) else None, "BY")), None)
    tail = items[order:] if order is not None else []
    stop = next((k for k, t in enumerate(tail) if is_word(t, "LIMIT", "OFFSET")), len(tail))
    order_by, rest = tail[:stop], tail[stop:]
    body = items[end:order] if order is not None else items[end:]
    expr = _strip_alias(items[start:end])
    return [*items[:start], *_call("array_agg", [*expr, *order_by]), *body, *rest]


def _strip_alias(expr: list[Item]) -> list[Item]:
    if len(expr) >= 2 and is_word(expr[-2], "AS"):
        return expr[:-2]
    return expr


def _aggregate_scalar(items: list[Item]) -> list[Item]:
    """A correlated scalar subquery, aggregated (DataFusion requires it): `SELECT x ...` ->
    `SELECT max(x) ...` when it has a WHERE and no aggregate, GROUP BY or LIMIT."""
    span = _select_list_span(items)
    if span is None:
        return items
    start, end = span
    words = {t.word for t in items if isinstance(t, Tok)}
    if "WHERE" not in words or words & {"GROUP", "LIMIT", "UNION", "DISTINCT"}:
        return items
    cols = split_commas(items[start:end])
    if len(cols) != 1 or _has_aggregate(cols[0]):
        return items
    expr = cols[0]
    alias: list[Item] = []
    if len(expr) >= 2 and is_word(expr[-2], "AS"):
        expr, alias = expr[:-2], expr[-2:]
    return [*items[:start], *_call("max", expr), *alias, *items[end:]]


def _has_aggregate(expr: Sequence[Item]) -> bool:
    for k, it in enumerate(expr):
        if isinstance(it, Tok) and it.word in AGGREGATES and k + 1 < len(expr) and \
                isinstance(expr[k + 1], Group):
            return True
        if isinstance(it, Group) and not _is_query(it) and _has_aggregate(it.items):
            return True
    return False


# --- result column names -------------------------------------------------------------------------


def postgres_names(sql: str) -> list[str] | None:
    """The column names Postgres gives the statement's result; None when they cannot be told
    from the text (`*`, set operations at the top level with differing lists, ...)."""
    try:
        items = strip_qualifiers(tokenize(sql))
    except RewriteError:
        return None
    if items and is_word(items[0], "WITH"):  # skip the CTEs
        k = 1
        while k < len(items) and not is_word(items[k], "SELECT"):
            k += 1
        items = items[k:]
    return select_names(items)


def select_names(items: Sequence[Item]) -> list[str] | None:
    span = _select_list_span(items)
    if span is None:
        return None
    names = []
    for col in split_commas(items[span[0]:span[1]]):
        name = _column_name(col)
        if name is None:
            return None
        names.append(name)
    return names


def _ident_name(t: Tok) -> str:
    return t.text[1:-1].replace('""', '"') if t.kind == "qident" else t.text.lower()


def _column_name(col: Sequence[Item]) -> str | None:
    if not col:
        return None
    if any(is_punct(t, "*") for t in col) and not any(isinstance(t, Group) for t in col):
        return None  # a wildcard
    last = col[-1]
    if len(col) >= 2 and isinstance(last, Tok) and last.kind in ("ident", "qident"):
        if is_word(col[-2], "AS"):
            return _ident_name(last)
        prev = col[-2]
        if last.kind == "qident" or last.word not in _KEYWORDS:
            if not is_punct(prev, ".") and not is_punct(prev, "::") and not (
                    isinstance(prev, Tok) and prev.kind == "op"):
                return _ident_name(last)  # implicit alias: expr name
    return _expr_name(list(col))


def _expr_name(expr: list[Item]) -> str:
    # a trailing cast: the cast operand's name, else the type's
    for k in range(len(expr) - 1, 0, -1):
        if is_punct(expr[k], "::"):
            inner = _expr_name(expr[:k])
            if inner != "?column?":
                return inner
            t = _read_type(expr, k + 1)
            return _type_name(t.name) if t is not None else "?column?"
    first = expr[0]
    if len(expr) == 1 and isinstance(first, Group) and _is_query(first):
        names = select_names(first.items)
        return names[0] if names and len(names) == 1 else "?column?"
    if len(expr) == 1 and isinstance(first, Group):
        return _expr_name(first.items) if first.items else "?column?"
    if _is_chain(expr):
        last = expr[-1]
        assert isinstance(last, Tok)
        if last.kind == "ident" and last.word in ("TRUE", "FALSE"):
            return "bool"
        if last.kind == "ident" and last.word in _KEYWORDS and len(expr) == 1:
            return "?column?"
        return _ident_name(last)
    if isinstance(first, Tok) and first.kind == "ident":
        if first.word == "CASE":
            return "case"
        if first.word in ("EXISTS", "ARRAY"):
            return first.text.lower()
        if first.word == "CAST" and len(expr) == 2 and isinstance(expr[1], Group):
            g = expr[1].items
            as_at = max((k for k, t in enumerate(g) if is_word(t, "AS")), default=-1)
            inner = _expr_name(list(g[:as_at])) if as_at > 0 else "?column?"
            if inner != "?column?":
                return inner
            t = _read_type(g, as_at + 1) if as_at > 0 else None
            return _type_name(t.name) if t is not None else "?column?"
        if len(expr) == 2 and isinstance(expr[1], Group) and first.word not in _KEYWORDS:
            return first.text.lower()  # f(...)
        if len(expr) >= 2 and isinstance(expr[1], Group) and first.word not in _KEYWORDS and \
                all(is_word(t, "OVER", "FILTER") or isinstance(t, Group) for t in expr[1:]):
            return first.text.lower()
    return "?column?"


def _is_chain(expr: Sequence[Item]) -> bool:
    """a, a.b, "a".b.c"""
    if len(expr) % 2 == 0:
        return False
    for k, t in enumerate(expr):
        if k % 2 == 0 and not (isinstance(t, Tok) and t.kind in ("ident", "qident")):
            return False
        if k % 2 == 1 and not is_punct(t, "."):
            return False
    return True


_TYPE_NAMES = {"integer": "int4", "int": "int4", "bigint": "int8", "smallint": "int2",
               "boolean": "bool", "real": "float4", "double precision": "float8",
               "character varying": "varchar", '"char"': "char", "decimal": "numeric"}


def _type_name(name: str) -> str:
    return _TYPE_NAMES.get(name, name)
