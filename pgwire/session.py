"""One client connection's protocol state machine: startup/auth, simple and extended query
protocol, transactions (status only: every query reads a fresh snapshot), SET/SHOW, errors.

Sans-socket: messages come in through `handle()`, bytes go out through an `Output`; queries run
through a `Runner` so that the shell can cancel them. The server shell owns sockets and threads.
"""

from __future__ import annotations

import logging
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from rstq.pgwire import codec as m
from rstq.pgwire import sql as S
from rstq.pgwire import types as T
from rstq.pgwire.auth import ScramError, ScramServer
from rstq.pgwire.catalog import Catalog
from rstq.query.api import QueryEngine, QueryError, QueryObserver

log = logging.getLogger(__name__)

SERVER_VERSION = "16.4"
SLICE_ROWS = 65536


class Output(Protocol):
    def write(self, data: bytes | pa.Buffer) -> None: ...

    def flush(self) -> None: ...


class Cancelled(Exception):
    pass


@dataclass
class WireConfig:
    password: str | None = None  # None: trust (loopback clients only)
    user: str | None = None  # with a password: the only user accepted (None: any name)
    database: str = "rstq"
    statement_timeout_s: float | None = None


class PgError(Exception):
    def __init__(self, code: str, message: str, severity: str = "ERROR") -> None:
        super().__init__(message)
        self.code = code
        self.severity = severity


@dataclass
class Statement:
    sql: str
    param_oids: list[int]
    # A parameterless statement that Describe had to run: its result serves the next Bind.
    described: pa.Table | None = None
    described_at: float = 0.0


@dataclass
class Result:
    """What one statement produced: rows (with their Arrow schema) or just a command tag."""

    tag: str
    table: pa.Table | None = None


@dataclass
class Portal:
    stmt: Statement
    params: list[Any]
    result_formats: list[int]
    result: Result | None = None
    pos: int = 0
    fields: list[m.Field] = field(default_factory=list)


DEFAULT_SETTINGS: dict[str, str] = {
    "server_version": SERVER_VERSION,
    "server_version_num": "160004",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "intervalstyle": "postgres",
    "timezone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "is_superuser": "off",
    "default_transaction_read_only": "on",
    "transaction_read_only": "on",
    "transaction_isolation": "repeatable read",
    "default_transaction_isolation": "repeatable read",
    "search_path": '"$user", public',
    "application_name": "",
    "extra_float_digits": "1",
    "max_identifier_length": "63",
    "lc_collate": "C",
    "lc_ctype": "C",
    "lc_messages": "C",
    "lc_monetary": "C",
    "lc_numeric": "C",
    "lc_time": "C",
    "jit": "off",
    "statement_timeout": "0",
    "bytea_output": "hex",
    "in_hot_standby": "off",
    "scram_iterations": "4096",
}
# Reported to the client at startup and whenever they change (names as Postgres spells them).
REPORTED = {
    "server_version": "server_version", "server_encoding": "server_encoding",
    "client_encoding": "client_encoding", "application_name": "application_name",
    "datestyle": "DateStyle", "intervalstyle": "IntervalStyle", "timezone": "TimeZone",
    "integer_datetimes": "integer_datetimes", "is_superuser": "is_superuser",
    "standard_conforming_strings": "standard_conforming_strings",
    "default_transaction_read_only": "default_transaction_read_only",
    "in_hot_standby": "in_hot_standby", "session_authorization": "session_authorization",
    "scram_iterations": "scram_iterations",
}
_TXN_TAGS = {"BEGIN": "BEGIN", "START": "BEGIN", "COMMIT": "COMMIT", "END": "COMMIT",
             "ROLLBACK": "ROLLBACK", "ABORT": "ROLLBACK"}


class Session:
    def __init__(self, engine: QueryEngine, catalog: Catalog, config: WireConfig, out: Output,
                 executor: Executor, *, pid: int, loopback: bool = True,
                 on_query: QueryObserver | None = None) -> None:
        self.engine = engine
        self.on_query = on_query  # told of every statement run (time, outcome)
        self.catalog = catalog
        self.config = config
        self.out = out
        self.executor = executor
        self._lock = threading.Lock()
        self._cancelled = False
        self._wake: threading.Event | None = None
        self.pid = pid
        self.secret = secrets.randbits(31)
        self.loopback = loopback
        self.state = "startup"  # startup -> sasl -> ready -> closed
        self.txn = "I"
        self.settings = dict(DEFAULT_SETTINGS)
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        self.skip_until_sync = False
        self._scram: ScramServer | None = None
        self._user = "rstq"

    # --- entry point -----------------------------------------------------------------------------

    def handle(self, msg: m.FrontendMessage) -> bool:
        """Process one message; False when the connection must close."""
        try:
            if self.state in ("startup", "sasl"):
                return self._handle_startup(msg)
            return self._handle(msg)
        except PgError as e:
            self.out.write(m.error_response(e.code, str(e), severity=e.severity))
            self.out.flush()
            return e.severity != "FATAL"

    def _handle(self, msg: m.FrontendMessage) -> bool:
        if isinstance(msg, m.Terminate):
            return False
        if isinstance(msg, m.Sync):
            self.skip_until_sync = False
            self.portals.pop("", None) if self.txn == "I" else None
            self._ready()
            return True
        if isinstance(msg, m.Flush):
            self.out.flush()
            return True
        if isinstance(msg, m.Query | m.Describe | m.Execute):
            self._cancelled = False  # a cancel only applies to a running statement
        if isinstance(msg, m.Query):
            self.skip_until_sync = False
            self._simple_query(msg.sql)
            self._ready()
            return True
        if isinstance(msg, m.Unsupported) and msg.type not in ("d", "c", "f"):
            raise PgError("08P01", f"invalid frontend message type {ord(msg.type[0])}", "FATAL")
        if self.skip_until_sync:
            return True
        try:
            if isinstance(msg, m.Parse):
                self._parse(msg)
            elif isinstance(msg, m.Bind):
                self._bind(msg)
            elif isinstance(msg, m.Describe):
                self._describe(msg)
            elif isinstance(msg, m.Execute):
                self._execute(msg)
            elif isinstance(msg, m.Close):
                (self.statements if msg.kind == "S" else self.portals).pop(msg.name, None)
                self.out.write(m.close_complete())
            elif isinstance(msg, m.Unsupported) and msg.type in ("d", "c", "f"):
                raise PgError("08P01", "COPY is not supported")
            else:
                raise PgError("08P01", f"unexpected message type {type(msg).__name__}")
        except Cancelled:
            self._error_extended(PgError("57014", "canceling statement due to user request"))
        except PgError as e:
            self._error_extended(e)
        return True

    def _error_extended(self, e: PgError) -> None:
        self.out.write(m.error_response(e.code, str(e), severity=e.severity))
        self.skip_until_sync = True
        if self.txn == "T":
            self.txn = "E"

    def _ready(self) -> None:
        self.out.write(m.ready_for_query(self.txn))
        self.out.flush()

    # --- startup and authentication ----------------------------------------------------------

    def _handle_startup(self, msg: m.FrontendMessage) -> bool:
        if self.state == "startup":
            if not isinstance(msg, m.Startup):
                raise PgError("08P01", "expected startup message", "FATAL")
            user = msg.params.get("user", "")
            if not user:
                raise PgError("28000", "no PostgreSQL user name specified in startup packet",
                              "FATAL")
            self._user = user
            # There is one database. Without credentials any name reaches it (psql defaults
            # the name to the OS user's); with them, only its name and "postgres" do.
            db = msg.params.get("database") or user
            if self.config.password is not None and db not in (self.config.database,
                                                               "postgres"):
                raise PgError("3D000", f'database "{db}" does not exist (this server has one '
                              f'database: connect to "{self.config.database}" or "postgres")',
                              "FATAL")
            if msg.params.get("application_name"):
                self.settings["application_name"] = msg.params["application_name"]
            for opt in re.findall(r"-c\s*([\w.]+)=(\S+)", msg.params.get("options", "")):
                self.settings[opt[0].lower()] = opt[1]
            if self.config.password is not None:
                if self.config.user is not None and user != self.config.user:
                    raise PgError("28P01", f'password authentication failed for user "{user}"',
                                  "FATAL")
                self._scram = ScramServer(self.config.password)
                self.state = "sasl"
                self.out.write(m.auth_sasl(["SCRAM-SHA-256"]))
                self.out.flush()
                return True
            if not self.loopback:
                raise PgError("28000", "no password configured: only loopback clients may "
                              "connect (set a pgwire password to allow remote clients)", "FATAL")
            self._startup_done()
            return True
        # SASL exchange
        if not isinstance(msg, m.Password) or self._scram is None:
            raise PgError("08P01", "expected SASL response", "FATAL")
        try:
            if not self._scram.server_first:
                self.out.write(m.auth_sasl_continue(self._scram.first(msg.data)))
                self.out.flush()
                return True
            final = self._scram.final(msg.data)
        except (ScramError, ValueError, struct.error) as e:
            log.info("pgwire: SCRAM failed for %s: %s", self._user, e)
            raise PgError("28P01", f'password authentication failed for user "{self._user}"',
                          "FATAL") from e
        self.out.write(m.auth_sasl_final(final))
        self._startup_done()
        return True

    def _startup_done(self) -> None:
        self.state = "ready"
        self.settings["session_authorization"] = self._user
        self.out.write(m.auth_ok())
        for key, name in REPORTED.items():
            self.out.write(m.parameter_status(name, self.settings.get(key, "")))
        self.out.write(m.backend_key_data(self.pid, self.secret))
        self._ready()

    # --- simple query ----------------------------------------------------------------------------

    def _simple_query(self, sql: str) -> None:
        stmts = S.split_statements(sql)
        if not stmts:
            self.out.write(m.empty_query_response())
            return
        self.portals.pop("", None)
        for text in stmts:
            try:
                result = self._run_statement(text, [])
                if result.table is not None:
                    fields = self._fields(result.table.schema, [0])
                    self.out.write(m.row_description(fields))
                    n = self._send_rows(result.table, fields, 0, None)
                    self.out.write(m.command_complete(f"SELECT {n}"))
                else:
                    self.out.write(m.command_complete(result.tag))
            except Cancelled:
                self._fail(PgError("57014", "canceling statement due to user request"))
                return
            except PgError as e:
                self._fail(e)
                return

    def _fail(self, e: PgError) -> None:
        self.out.write(m.error_response(e.code, str(e), severity=e.severity))
        if self.txn == "T":
            self.txn = "E"

    # --- extended query --------------------------------------------------------------------------

    def _parse(self, msg: m.Parse) -> None:
        if len(S.split_statements(msg.sql)) > 1:
            raise PgError("42601", "cannot insert multiple commands into a prepared statement")
        if msg.name and msg.name in self.statements:
            raise PgError("42P05", f'prepared statement "{msg.name}" already exists')
        oids = S.infer_param_types(msg.sql, self.catalog.column_types(), msg.param_oids)
        self.statements[msg.name] = Statement(msg.sql, oids)
        self.out.write(m.parse_complete())

    def _bind(self, msg: m.Bind) -> None:
        stmt = self.statements.get(msg.statement)
        if stmt is None:
            raise PgError("26000", f'prepared statement "{msg.statement}" does not exist')
        if len(msg.params) != len(stmt.param_oids):
            raise PgError("08P01", f"bind message supplies {len(msg.params)} parameters, but "
                          f"prepared statement \"{msg.statement}\" requires "
                          f"{len(stmt.param_oids)}")
        fmts = msg.param_formats
        params: list[Any] = []
        for i, raw in enumerate(msg.params):
            fmt = fmts[0] if len(fmts) == 1 else (fmts[i] if i < len(fmts) else 0)
            if raw is None:
                params.append(None)
                continue
            oid = stmt.param_oids[i]
            try:
                params.append(T.decode_param(raw, oid, fmt))
            except (ValueError, UnicodeDecodeError, struct.error, ArithmeticError) as e:
                raise PgError("22P02", f"invalid input for parameter ${i + 1} "
                              f"({T.format_type(oid)}): {e}") from e
        portal = Portal(stmt, params, msg.result_formats)
        if stmt.described is not None and time.monotonic() - stmt.described_at < 2.0:
            portal.result = Result("SELECT", stmt.described)
            portal.fields = self._fields(stmt.described.schema, msg.result_formats)
            stmt.described = None
        self.portals[msg.portal] = portal
        self.out.write(m.bind_complete())

    def _describe(self, msg: m.Describe) -> None:
        if msg.kind == "S":
            stmt = self.statements.get(msg.name)
            if stmt is None:
                raise PgError("26000", f'prepared statement "{msg.name}" does not exist')
            self.out.write(m.parameter_description(stmt.param_oids))
            schema = self._describe_sql(stmt)
            if schema is None:
                self.out.write(m.no_data())
            else:
                self.out.write(m.row_description(self._fields(schema, [0])))
            return
        portal = self.portals.get(msg.name)
        if portal is None:
            raise PgError("34000", f'portal "{msg.name}" does not exist')
        result = self._portal_result(portal)
        if result.table is None:
            self.out.write(m.no_data())
        else:
            self.out.write(m.row_description(portal.fields))

    def _portal_result(self, portal: Portal) -> Result:
        if portal.result is None:
            portal.result = self._run_statement(portal.stmt.sql, portal.params)
            if portal.result.table is not None:
                portal.fields = self._fields(portal.result.table.schema, portal.result_formats)
        return portal.result

    def _execute(self, msg: m.Execute) -> None:
        portal = self.portals.get(msg.portal)
        if portal is None:
            raise PgError("34000", f'portal "{msg.portal}" does not exist')
        if not portal.stmt.sql.strip():
            self.out.write(m.empty_query_response())
            return
        result = self._portal_result(portal)
        if result.table is None:
            self.out.write(m.command_complete(result.tag))
            return
        limit = msg.max_rows if msg.max_rows > 0 else None
        n = self._send_rows(result.table, portal.fields, portal.pos, limit)
        portal.pos += n
        if limit is not None and portal.pos < result.table.num_rows:
            self.out.write(m.portal_suspended())
        else:
            self.out.write(m.command_complete(f"SELECT {n}"))

    def _describe_sql(self, stmt: Statement) -> pa.Schema | None:
        """Result schema of a statement without running it on the data where possible."""
        kw = S.keywords(stmt.sql, 1)
        if kw and kw[0] == "SHOW":
            return pa.schema([pa.field(S.keywords(stmt.sql, 2)[-1].lower(), pa.string())])
        if not kw or kw[0] not in ("SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN"):
            if kw and kw[0] in S.WRITE_COMMANDS:
                return None
            return None
        nulls: list[Any] = [None] * len(stmt.param_oids)
        cat = self.catalog.answer(stmt.sql, nulls)
        if cat is not None:
            return cat.schema
        if self.catalog.reads_catalog(stmt.sql):
            return self._catalog_sql(stmt.sql, nulls).schema
        if kw[0] in ("SELECT", "WITH", "VALUES"):
            body = S.strip_comments(stmt.sql).strip().rstrip(";")
            try:
                return self._engine_sql(f"SELECT * FROM ({body}) AS _describe LIMIT 0",
                                        nulls).schema
            except PgError:
                pass
        table = self._run_statement(stmt.sql, nulls).table
        if not nulls:
            stmt.described, stmt.described_at = table, time.monotonic()
        return None if table is None else table.schema

    # --- statements ------------------------------------------------------------------------------

    def _run_statement(self, sql: str, params: Sequence[Any]) -> Result:
        on_query = self.on_query
        if on_query is None:
            return self._statement(sql, params)
        t0 = time.perf_counter()
        ok = False
        try:
            result = self._statement(sql, params)
            ok = True
            return result
        finally:
            on_query(time.perf_counter() - t0, ok)

    def _statement(self, sql: str, params: Sequence[Any]) -> Result:
        log.debug("pgwire %d: %s %r", self.pid, sql, params)
        kw = S.keywords(sql, 3)
        head = kw[0] if kw else ""
        if self.txn == "E" and head not in ("COMMIT", "END", "ROLLBACK", "ABORT"):
            raise PgError("25P02", "current transaction is aborted, commands ignored until end "
                          "of transaction block")
        if head in _TXN_TAGS:
            tag = _TXN_TAGS[head]
            if tag == "BEGIN":
                self.txn = "T"
            else:
                if len(kw) > 1 and kw[1] == "TO":  # ROLLBACK TO SAVEPOINT
                    self.txn = "T" if self.txn != "I" else "I"
                    return Result("ROLLBACK")
                if self.txn == "E":
                    tag = "ROLLBACK"
                self.txn = "I"
            return Result(tag)
        if head in ("SAVEPOINT", "RELEASE"):
            return Result(head)
        if head in ("SET", "RESET"):
            return self._set(sql, head)
        if head == "DISCARD":
            self.statements.clear()
            self.portals.clear()
            return Result("DISCARD " + (kw[1] if len(kw) > 1 else "ALL"))
        if head == "SHOW":
            return self._show(sql)
        if head == "DEALLOCATE":
            words = [w for w in kw[1:] if w != "PREPARE"]
            name_m = re.search(r"(?is)deallocate\s+(?:prepare\s+)?\"?([\w$]+)\"?", sql)
            if words and words[0] == "ALL":
                self.statements.clear()
            elif name_m:
                self.statements.pop(name_m.group(1), None)
            return Result("DEALLOCATE ALL" if words and words[0] == "ALL" else "DEALLOCATE")
        if head in ("LISTEN", "UNLISTEN"):
            return Result(head)
        if head == "CLOSE":
            return Result("CLOSE CURSOR ALL" if len(kw) > 1 and kw[1] == "ALL"
                          else "CLOSE CURSOR")
        cmd = S.write_command(sql)
        if cmd is not None:
            raise PgError("25006", f"cannot execute {cmd} in a read-only transaction")
        if head in ("PREPARE", "EXECUTE", "DECLARE", "FETCH", "MOVE", "COPY"):
            raise PgError("0A000", f"{head} is not supported by rstq")
        cat = self.catalog.answer(sql, list(params))
        if cat is not None:
            return Result("SELECT", cat)
        if self.catalog.reads_catalog(sql):
            return Result("SELECT", self._catalog_sql(sql, params))
        table = self._engine_sql(sql, params)
        return Result("SELECT", table)

    def _session_settings(self) -> dict[str, str]:
        settings = dict(self.settings)
        settings.update(__version=f"PostgreSQL {SERVER_VERSION} (rstq) on x86_64-pc-linux-gnu",
                        __database=self.config.database, __pid=str(self.pid),
                        __user=self._user)
        return settings

    def _catalog_sql(self, sql: str, params: Sequence[Any]) -> pa.Table:
        """A catalog query (pg_catalog, information_schema) on the generated catalogs."""
        text = S.rewrite_session_functions(sql, self._session_settings(), self._set_value)
        catalog, p = self.catalog, list(params)
        try:
            return self._run(lambda: catalog.query(text, p))
        except QueryError as e:
            raise PgError(e.sqlstate or "XX000", str(e)) from e
        except Cancelled:
            raise
        except Exception as e:
            log.exception("pgwire: catalog query failed on %r", text[:200])
            raise PgError("XX000", f"internal error: {e}") from e

    def _engine_sql(self, sql: str, params: Sequence[Any]) -> pa.Table:
        text = S.rewrite_session_functions(sql, self._session_settings(), self._set_value)
        timeout = self.config.statement_timeout_s
        st = self.settings.get("statement_timeout", "0")
        if _timeout_s(st):
            timeout = _timeout_s(st)
        engine, p = self.engine, list(params)
        try:
            return self._run(lambda: engine.sql(text, p or None, timeout))
        except QueryError as e:
            raise PgError(e.sqlstate or "XX000", str(e)) from e
        except Cancelled:
            raise
        except Exception as e:  # an engine bug must not end the session
            log.exception("pgwire: engine failed on %r", text[:200])
            raise PgError("XX000", f"internal error: {e}") from e

    def _set_value(self, name: str, value: str) -> None:
        name = name.lower()
        if name == "client_encoding" and value.upper().replace("-", "") not in ("UTF8",
                                                                                 "UNICODE"):
            raise PgError("0A000", f"client_encoding {value} is not supported (only UTF8)")
        if name == "client_encoding":
            value = "UTF8"
        if name == "default_transaction_read_only" and value.lower() in ("off", "false", "0"):
            raise PgError("25006", "rstq's SQL endpoint is read-only")
        self.settings[name] = value
        if name in REPORTED:
            self.out.write(m.parameter_status(REPORTED[name], value))

    def _set(self, sql: str, head: str) -> Result:
        s = S.strip_comments(sql).strip().rstrip(";").strip()
        if head == "RESET":
            name = s.split(None, 1)[1].strip().lower() if len(s.split()) > 1 else ""
            if name == "all":
                for k, v in DEFAULT_SETTINGS.items():
                    if self.settings.get(k) != v:
                        self._set_value(k, v)
            elif name in DEFAULT_SETTINGS:
                self._set_value(name, DEFAULT_SETTINGS[name])
            return Result("RESET")
        mt = re.match(r"(?is)set\s+(?:session\s+|local\s+)?"
                      r"(?:time\s+zone\s+(?P<tz>.+)|(?P<name>[\w.]+)\s*(?:=|\s+to\s+)\s*(?P<v>.+)"
                      r"|(?P<txn>(?:session\s+characteristics\s+as\s+)?transaction\b.*)"
                      r"|(?P<other>.*))$", s)
        if mt is None or mt.group("other") is not None:
            raise PgError("42601", f"syntax error in SET: {s}")
        if mt.group("txn"):
            if re.search(r"(?i)read\s+write", mt.group("txn")):
                raise PgError("25006", "rstq's SQL endpoint is read-only")
            return Result("SET")
        if mt.group("tz") is not None:
            name, value = "timezone", mt.group("tz")
        else:
            name, value = mt.group("name").lower(), mt.group("v")
        value = value.strip()
        if value.lower() == "default":
            value = DEFAULT_SETTINGS.get(name, "")
        else:
            parts = re.findall(r"'((?:[^']|'')*)'|\"([^\"]*)\"|([^,\s]+)", value)
            value = ", ".join(a.replace("''", "'") or b or c for a, b, c in parts)
        self._set_value(name, value)
        return Result("SET")

    def _show(self, sql: str) -> Result:
        s = S.strip_comments(sql).strip().rstrip(";").strip()
        name = s.split(None, 1)[1].strip().strip('"').lower() if len(s.split()) > 1 else ""
        name = {"time zone": "timezone", "transaction isolation level":
                "transaction_isolation", "session authorization": "session_authorization"}.get(
            re.sub(r"\s+", " ", name), name)
        if name == "all":
            keys = sorted(k for k in self.settings if not k.startswith("__"))
            return Result("SHOW", pa.table({
                "name": keys, "setting": [self.settings[k] for k in keys],
                "description": [""] * len(keys)}))
        if name not in self.settings:
            if name.startswith("datafusion."):
                return Result("SELECT", self._engine_sql(sql, []))
            raise PgError("42704", f'unrecognized configuration parameter "{name}"')
        return Result("SHOW", pa.table({name: [self.settings[name]]}))

    # --- rows ------------------------------------------------------------------------------------

    def _fields(self, schema: pa.Schema, formats: Sequence[int]) -> list[m.Field]:
        out = []
        for i, f in enumerate(schema):
            fmt = formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)
            out.append(T.field_for(f.name, f.type, fmt, f.metadata))
        return out

    def _send_rows(self, table: pa.Table, fields: list[m.Field], start: int,
                   limit: int | None) -> int:
        end = table.num_rows if limit is None else min(table.num_rows, start + limit)
        oids = [f.type_oid for f in fields]
        fmts = [f.format for f in fields]
        pos = start
        cpu = 0.0
        try:
            while pos < end:
                n = min(SLICE_ROWS, end - pos)
                t0 = time.thread_time()
                cols = [c.slice(pos, n) for c in table.columns]
                data = T.encode_data_rows(cols, oids, fmts)
                cpu += time.thread_time() - t0
                self.out.write(data)
                pos += n
                if self.is_cancelled():
                    raise Cancelled()
        finally:
            # Engines with a CPU share for SQL (rstq.query.Engine) count the encoding too.
            charge = getattr(self.engine, "charge", None)
            if charge is not None:
                charge(cpu)
        return end - start

    # --- cancellation (called from another thread) ---------------------------------------------

    def _run(self, fn: Callable[[], pa.Table]) -> pa.Table:
        """Run `fn` on the executor; a cancel request abandons it (the result is dropped)."""
        wake = threading.Event()
        with self._lock:
            if self._cancelled:
                raise Cancelled()
            self._wake = wake
        try:
            fut = self.executor.submit(fn)
            fut.add_done_callback(lambda _: wake.set())
            wake.wait()
            if not fut.done():
                self._cancelled = False
                raise Cancelled()
            return fut.result()
        finally:
            with self._lock:
                self._wake = None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._wake is not None:
                self._wake.set()

    def is_cancelled(self) -> bool:
        return self._cancelled


def _timeout_s(value: str) -> float | None:
    mt = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*", value)
    if not mt:
        return None
    v = float(mt.group(1)) * {"ms": 0.001, "s": 1, "min": 60, "h": 3600, None: 0.001}[mt.group(2)]
    return v or None
