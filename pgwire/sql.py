"""SQL text helpers that need no parser: statement splitting, classification, local rewrites of
session functions (`version()`, `current_setting(...)`, ...), and parameter type inference."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from rstq.pgwire import types as T

# Quoted strings, quoted identifiers, dollar quotes and comments: skipped by every scan below.
_SKIP = (r"""'(?:[^']|'')*'|E'(?:[^'\\]|\\.|'')*'|"(?:[^"]|"")*"|\$(\w*)\$.*?\$\1\$"""
         r"""|--[^\n]*|/\*.*?\*/""")
_TOKENS = re.compile(_SKIP + r"|(?P<semi>;)", re.S)


def split_statements(sql: str) -> list[str]:
    """Top-level `;`-separated statements (empty ones dropped)."""
    out: list[str] = []
    start = 0
    for m in _TOKENS.finditer(sql):
        if m.group("semi"):
            out.append(sql[start:m.start()])
            start = m.end()
    out.append(sql[start:])
    return [s.strip() for s in out if strip_comments(s).strip()]


_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)


def strip_comments(sql: str) -> str:
    return re.sub(_SKIP, lambda m: " " if m.group(0)[:2] in ("--", "/*") else m.group(0), sql,
                  flags=re.S)


def keywords(sql: str, n: int = 3) -> list[str]:
    """The first `n` words of a statement, upper-cased (comments and parentheses skipped)."""
    s = strip_comments(sql).lstrip(" \t\r\n(")
    return [w.upper() for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", s[:200])[:n]]


WRITE_COMMANDS = {
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "GRANT",
    "REVOKE", "COMMENT", "VACUUM", "ANALYZE", "CLUSTER", "REINDEX", "REFRESH", "LOCK", "CALL",
    "DO", "NOTIFY", "IMPORT", "SECURITY", "COPY", "CHECKPOINT", "REASSIGN", "UPSERT", "REPLACE",
}
_WRITE_IN_WITH = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE)\b", re.I)


def write_command(sql: str) -> str | None:
    """The command name if the statement would write (refused with 25006), else None."""
    kw = keywords(sql, 2)
    if not kw:
        return None
    if kw[0] in WRITE_COMMANDS:
        if kw[0] == "COPY":
            return None  # COPY ... TO is not a write; refused as unsupported elsewhere
        return kw[0]
    if kw[0] in ("WITH", "EXPLAIN"):
        code = re.sub(_SKIP, " ", sql, flags=re.S)
        m = _WRITE_IN_WITH.search(code)
        if m and kw[0] == "WITH":
            return m.group(1).upper()
    if kw[0] == "SELECT":
        code = re.sub(_SKIP, " ", sql, flags=re.S)
        if re.search(r"\bINTO\b", code, re.I) and not re.search(r"\bINTO\s+STRICT\b", code, re.I):
            if re.search(r"^\s*SELECT\b[^;]*?\bINTO\s+(TEMP|TEMPORARY|UNLOGGED|TABLE|\w+\s+FROM)",
                         code, re.I | re.S):
                return "SELECT INTO"
        if re.search(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b", code, re.I):
            return "SELECT FOR UPDATE"
    return None


def _sql_literal(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


def rewrite_session_functions(sql: str, settings: Mapping[str, str],
                              set_config: Callable[[str, str], None]) -> str:
    """Answer session functions locally by substituting literals (outside quotes/comments)."""
    fn = re.compile(
        _SKIP + r"""|(?P<fn>\b(?:pg_catalog\s*\.\s*)?(?:
            version\s*\(\s*\)
          | current_database\s*\(\s*\)
          | current_schema\s*\(\s*\)
          | current_schemas\s*\(\s*\w+\s*\)
          | pg_backend_pid\s*\(\s*\)
          | current_setting\s*\(\s*'(?P<cs>[^']*)'\s*(?:,\s*\w+\s*)?\)
          | set_config\s*\(\s*'(?P<sc>[^']*)'\s*,\s*'(?P<sv>[^']*)'\s*,\s*\w+\s*\)
          | (?P<user>current_user|session_user|current_role|user)\b(?!\s*[(.])
          | current_catalog\b(?!\s*\()
          | pg_is_in_recovery\s*\(\s*\)
        ))""", re.S | re.I | re.X)

    def sub(m: re.Match[str]) -> str:
        text = m.group("fn")
        if text is None:
            return m.group(0)
        value = literal(m, text)
        # a bare select item keeps Postgres' column name (`SELECT version()` -> "version")
        before = m.string[:m.start()].rstrip().lower()
        after = m.string[m.end():].lstrip().lower()
        if (before.endswith(("select", ",")) and (after == "" or after.startswith((",", ";"))
                                                   or re.match(r"from\b", after))):
            name = re.match(r"(?:pg_catalog\s*\.\s*)?(\w+)", text, re.I)
            assert name is not None
            return f'{value} AS "{name.group(1).lower()}"'
        return value

    def literal(m: re.Match[str], text: str) -> str:
        low = re.sub(r"\s+", "", text.lower()).removeprefix("pg_catalog.")
        if low.startswith("version("):
            return _sql_literal(settings["__version"])
        if low.startswith("current_database(") or low == "current_catalog":
            return _sql_literal(settings["__database"])
        if low.startswith("current_schemas("):  # (true): with the implicit pg_catalog
            implicit = low[len("current_schemas("):].startswith(("true", "t)", "1"))
            return "make_array('pg_catalog', 'public')" if implicit else "make_array('public')"
        if low.startswith("current_schema("):
            return "'public'"
        if low.startswith("pg_backend_pid("):
            return settings["__pid"]
        if low.startswith("pg_is_in_recovery("):
            return "false"
        if m.group("cs") is not None:
            name = m.group("cs").lower()
            return _sql_literal(settings.get(name, ""))
        if m.group("sc") is not None:
            set_config(m.group("sc").lower(), m.group("sv"))
            return _sql_literal(m.group("sv"))
        if m.group("user"):
            return _sql_literal(settings["__user"])
        return m.group(0)

    return fn.sub(sub, sql)


# --- parameter type inference (for Describe Statement: asyncpg encodes by the types we say) -----

_CAST = re.compile(
    r"\$(\d+)\s*::\s*(?:pg_catalog\.)?(\"?[A-Za-z_][\w ]*?\"?)(\[\])?(?=\s*(?:[^\w\s]|$|\b(?:"
    r"AND|OR|FROM|WHERE|LIMIT|OFFSET|ORDER|GROUP|AS|THEN|ELSE|END|IS|IN|NOT)\b))", re.I)
_CAST_FN = re.compile(r"CAST\s*\(\s*\$(\d+)\s+AS\s+([A-Za-z_][\w ]*?)\s*(\[\])?\s*\)", re.I)
_OP = r"(?:=|<>|!=|<=|>=|<|>|\bI?LIKE\b|\bNOT\s+I?LIKE\b|\bIS\s+(?:NOT\s+)?DISTINCT\s+FROM\b)"
_COL = r"(?:\"?[A-Za-z_]\w*\"?\s*\.\s*)?\"?([A-Za-z_]\w*)\"?"
_LEFT = re.compile(_COL + r"\s*" + _OP + r"\s*\$(\d+)", re.I)
_RIGHT = re.compile(r"\$(\d+)\s*" + _OP + r"\s*" + _COL, re.I)
_ANY = re.compile(_COL + r"\s*(?:=|<>|!=)\s*ANY\s*\(\s*\$(\d+)", re.I)
_ANY_PARAM = re.compile(r"\b(?:ANY|ALL|SOME)\s*\(\s*\$(\d+)\s*\)", re.I)
_IN = re.compile(_COL + r"\s+(?:NOT\s+)?IN\s*\(([^()]*)\)", re.I)
_LIMIT = re.compile(r"\b(?:LIMIT|OFFSET|FETCH\s+FIRST|FETCH\s+NEXT)\s+\$(\d+)", re.I)
_PARAM = re.compile(r"\$(\d+)")


def param_count(sql: str) -> int:
    code = re.sub(_SKIP, " ", sql, flags=re.S)
    return max((int(n) for n in _PARAM.findall(code)), default=0)


def infer_param_types(sql: str, columns: Mapping[str, int],
                      given: Sequence[int] = ()) -> list[int]:
    """OIDs of `$1..$n`: the client's (non-zero) first, then casts, then the type of the column
    a parameter is compared with (`columns`: column name -> OID), LIMIT/OFFSET int8, else text."""
    code = re.sub(_SKIP, " ", sql, flags=re.S)
    n = max(param_count(sql), len(given))
    found: dict[int, int] = {}

    def note(idx: str, oid: int | None) -> None:
        i = int(idx)
        if oid and i not in found:
            found[i] = oid

    def by_name(name: str, array: bool) -> int | None:
        raw = name.strip()
        # unquoted char is character(1) (bpchar); only "char" is the one-byte type
        oid = T.BPCHAR if raw.lower() == "char" else T.TYPE_BY_NAME.get(raw.strip('"').lower())
        if oid is None and re.match(r"(?i)(varchar|character varying|char|numeric|decimal)",
                                    name.strip()):
            oid = T.TYPE_BY_NAME.get(name.split("(")[0].strip().lower())
        if oid is not None and array:
            return T.TYPES[oid].array_oid or None
        return oid

    for m in _CAST.finditer(code):
        note(m.group(1), by_name(m.group(2), bool(m.group(3))))
    for m in _CAST_FN.finditer(code):
        note(m.group(1), by_name(m.group(2), bool(m.group(3))))
    for m in _LIMIT.finditer(code):
        note(m.group(1), T.INT8)
    for m in _ANY.finditer(code):
        col = columns.get(m.group(1).lower())
        if col:
            note(m.group(2), T.TYPES[col].array_oid)
    for m in _ANY_PARAM.finditer(code):  # an array of something: text[] unless told
        note(m.group(1), 1009)
    for m in _IN.finditer(code):
        col = columns.get(m.group(1).lower())
        for p in _PARAM.findall(m.group(2)):
            note(p, col)
    for m in _LEFT.finditer(code):
        note(m.group(2), columns.get(m.group(1).lower()))
    for m in _RIGHT.finditer(code):
        note(m.group(1), columns.get(m.group(2).lower()))
    out = []
    for i in range(1, n + 1):
        g = given[i - 1] if i - 1 < len(given) else 0
        out.append(g or found.get(i, T.TEXT))
    return out
