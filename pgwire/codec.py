"""Sans-IO Postgres v3 wire codec: frontend message parsing and backend message building.

`Parser.feed(data)` buffers bytes and returns the complete frontend messages they finish; the
first message of a connection has no type byte (startup, SSL, cancel). Nothing here does IO.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 256 * 1024 * 1024
MAX_STARTUP = 10_000


class ProtocolViolation(Exception):
    """Bytes that are not a valid frontend message (SQLSTATE 08P01)."""


# --- frontend messages --------------------------------------------------------------------------


@dataclass
class Startup:
    params: dict[str, str]


@dataclass
class SSLRequest:
    pass


@dataclass
class GSSENCRequest:
    pass


@dataclass
class CancelRequest:
    pid: int
    secret: int


@dataclass
class Query:
    sql: str


@dataclass
class Parse:
    name: str
    sql: str
    param_oids: list[int]


@dataclass
class Bind:
    portal: str
    statement: str
    param_formats: list[int]
    params: list[bytes | None]
    result_formats: list[int]


@dataclass
class Describe:
    kind: str  # "S" statement, "P" portal
    name: str


@dataclass
class Execute:
    portal: str
    max_rows: int


@dataclass
class Close:
    kind: str
    name: str


@dataclass
class Sync:
    pass


@dataclass
class Flush:
    pass


@dataclass
class Terminate:
    pass


@dataclass
class Password:
    """'p': a password, SASLInitialResponse or SASLResponse (the session knows which)."""

    data: bytes


@dataclass
class Unsupported:
    type: str
    data: bytes = field(repr=False, default=b"")


FrontendMessage = (Startup | SSLRequest | GSSENCRequest | CancelRequest | Query | Parse | Bind
                   | Describe | Execute | Close | Sync | Flush | Terminate | Password | Unsupported)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def int16(self) -> int:
        v: int = struct.unpack_from("!h", self.buf, self.pos)[0]
        self.pos += 2
        return v

    def int32(self) -> int:
        v: int = struct.unpack_from("!i", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def uint32(self) -> int:
        v: int = struct.unpack_from("!I", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def cstr(self) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        s = self.buf[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return s

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise ProtocolViolation("message too short")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self) -> str:
        return self.take(1).decode("latin-1")


def _parse_startup(body: bytes) -> FrontendMessage:
    if len(body) < 4:
        raise ProtocolViolation("invalid startup packet length")
    code = struct.unpack_from("!i", body)[0]
    if code == SSL_REQUEST:
        return SSLRequest()
    if code == GSSENC_REQUEST:
        return GSSENCRequest()
    if code == CANCEL_REQUEST:
        if len(body) != 12:
            raise ProtocolViolation("invalid cancel request")
        pid, secret = struct.unpack_from("!ii", body, 4)
        return CancelRequest(pid, secret)
    if code >> 16 != 3:
        raise ProtocolViolation(
            f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
            "server supports 3.0 to 3.0")
    r = _Reader(body)
    r.pos = 4
    params: dict[str, str] = {}
    try:
        while r.pos < len(body) and body[r.pos] != 0:
            k = r.cstr()
            params[k] = r.cstr()
    except (UnicodeDecodeError, struct.error) as e:
        raise ProtocolViolation("invalid startup packet layout") from e
    return Startup(params)


def _parse_message(t: str, body: bytes) -> FrontendMessage:
    r = _Reader(body)
    try:
        if t == "Q":
            return Query(r.cstr())
        if t == "P":
            name = r.cstr()
            sql = r.cstr()
            n = r.int16()
            return Parse(name, sql, [r.uint32() for _ in range(n)])
        if t == "B":
            portal = r.cstr()
            stmt = r.cstr()
            pf = [r.int16() for _ in range(r.int16())]
            params: list[bytes | None] = []
            for _ in range(r.int16()):
                ln = r.int32()
                params.append(None if ln < 0 else r.take(ln))
            rf = [r.int16() for _ in range(r.int16())]
            return Bind(portal, stmt, pf, params, rf)
        if t == "D":
            return Describe(r.byte(), r.cstr())
        if t == "E":
            return Execute(r.cstr(), r.int32())
        if t == "C":
            return Close(r.byte(), r.cstr())
        if t == "S":
            return Sync()
        if t == "H":
            return Flush()
        if t == "X":
            return Terminate()
        if t == "p":
            return Password(body)
    except (UnicodeDecodeError, struct.error) as e:
        raise ProtocolViolation(f"invalid message format ({t!r})") from e
    return Unsupported(t, body)


class Parser:
    """Incremental frontend parser. `startup` is True until the startup message is read
    (and again after an SSL/GSS request that was refused)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.startup = True

    def feed(self, data: bytes) -> list[FrontendMessage]:
        self._buf += data
        out: list[FrontendMessage] = []
        buf = self._buf
        while True:
            if self.startup:
                if len(buf) < 4:
                    break
                ln = struct.unpack_from("!i", buf)[0]
                if ln < 8 or ln > MAX_STARTUP:
                    raise ProtocolViolation("invalid length of startup packet")
                if len(buf) < ln:
                    break
                msg = _parse_startup(bytes(buf[4:ln]))
                del buf[:ln]
                if isinstance(msg, Startup):
                    self.startup = False
                out.append(msg)
                if isinstance(msg, CancelRequest):
                    break
            else:
                if len(buf) < 5:
                    break
                t = chr(buf[0])
                ln = struct.unpack_from("!i", buf, 1)[0]
                if ln < 4 or ln > MAX_MESSAGE:
                    raise ProtocolViolation(f"invalid message length {ln}")
                if len(buf) < ln + 1:
                    break
                body = bytes(buf[5:ln + 1])
                del buf[:ln + 1]
                out.append(_parse_message(t, body))
        return out


# --- backend messages ---------------------------------------------------------------------------


def msg(t: bytes, body: bytes = b"") -> bytes:
    return t + struct.pack("!i", len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.encode("utf-8") + b"\0"


def auth_ok() -> bytes:
    return msg(b"R", struct.pack("!i", 0))


def auth_sasl(mechanisms: list[str]) -> bytes:
    return msg(b"R", struct.pack("!i", 10) + b"".join(cstr(m) for m in mechanisms) + b"\0")


def auth_sasl_continue(data: bytes) -> bytes:
    return msg(b"R", struct.pack("!i", 11) + data)


def auth_sasl_final(data: bytes) -> bytes:
    return msg(b"R", struct.pack("!i", 12) + data)


def parameter_status(name: str, value: str) -> bytes:
    return msg(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return msg(b"K", struct.pack("!ii", pid, secret))


def ready_for_query(status: str) -> bytes:
    return msg(b"Z", status.encode("ascii"))


def command_complete(tag: str) -> bytes:
    return msg(b"C", cstr(tag))


def empty_query_response() -> bytes:
    return msg(b"I")


def parse_complete() -> bytes:
    return msg(b"1")


def bind_complete() -> bytes:
    return msg(b"2")


def close_complete() -> bytes:
    return msg(b"3")


def no_data() -> bytes:
    return msg(b"n")


def portal_suspended() -> bytes:
    return msg(b"s")


def parameter_description(oids: list[int]) -> bytes:
    return msg(b"t", struct.pack("!h", len(oids)) + b"".join(struct.pack("!I", o) for o in oids))


@dataclass(frozen=True)
class Field:
    name: str
    type_oid: int
    type_len: int = -1
    type_mod: int = -1
    format: int = 0
    table_oid: int = 0
    attnum: int = 0


def row_description(fields: list[Field]) -> bytes:
    parts = [struct.pack("!h", len(fields))]
    for f in fields:
        parts.append(cstr(f.name) + struct.pack("!IhIhih", f.table_oid, f.attnum, f.type_oid,
                                                 f.type_len, f.type_mod, f.format))
    return msg(b"T", b"".join(parts))


def data_row(values: list[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(struct.pack("!i", len(v)) + v)
    return msg(b"D", b"".join(parts))


def _notice_fields(severity: str, code: str, message: str, detail: str | None,
                   hint: str | None, position: int | None) -> bytes:
    parts = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(code),
             b"M" + cstr(message)]
    if detail:
        parts.append(b"D" + cstr(detail))
    if hint:
        parts.append(b"H" + cstr(hint))
    if position:
        parts.append(b"P" + cstr(str(position)))
    return b"".join(parts) + b"\0"


def error_response(code: str, message: str, *, severity: str = "ERROR",
                   detail: str | None = None, hint: str | None = None,
                   position: int | None = None) -> bytes:
    return msg(b"E", _notice_fields(severity, code, message, detail, hint, position))

