"""Arrow -> Postgres type mapping, bulk DataRow encoding from Arrow, and parameter decoding.

Rows are encoded column-at-a-time with pyarrow compute: each column becomes one binary array of
cell payloads, then one element-wise join per slice builds every DataRow message of the slice in
a single contiguous buffer (no per-row Python work for scalar types).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as _pc
from rstq.pgwire.codec import Field

pc: Any = _pc  # the compute stubs are stricter than the kernels' real signatures
Arr = Any  # a pyarrow Array of any type

# --- the types we speak -------------------------------------------------------------------------


@dataclass(frozen=True)
class PgType:
    oid: int
    name: str
    length: int  # typlen: -1 varlena
    array_oid: int
    category: str = "U"
    elem: int = 0  # for array types
    delim: str = ","


_BASE = [
    PgType(16, "bool", 1, 1000, "B"),
    PgType(17, "bytea", -1, 1001, "U"),
    PgType(18, "char", 1, 1002, "Z"),
    PgType(19, "name", 64, 1003, "S"),
    PgType(20, "int8", 8, 1016, "N"),
    PgType(21, "int2", 2, 1005, "N"),
    PgType(23, "int4", 4, 1007, "N"),
    PgType(24, "regproc", 4, 1008, "N"),
    PgType(25, "text", -1, 1009, "S"),
    PgType(26, "oid", 4, 1028, "N"),
    PgType(114, "json", -1, 199, "U"),
    PgType(700, "float4", 4, 1021, "N"),
    PgType(701, "float8", 8, 1022, "N"),
    PgType(705, "unknown", -2, 0, "X"),
    PgType(1042, "bpchar", -1, 1014, "S"),
    PgType(1043, "varchar", -1, 1015, "S"),
    PgType(1082, "date", 4, 1182, "D"),
    PgType(1083, "time", 8, 1183, "D"),
    PgType(1114, "timestamp", 8, 1115, "D"),
    PgType(1184, "timestamptz", 8, 1185, "D"),
    PgType(1186, "interval", 16, 1187, "T"),
    PgType(1700, "numeric", -1, 1231, "N"),
    PgType(2205, "regclass", 4, 2210, "N"),
    PgType(2206, "regtype", 4, 2211, "N"),
    PgType(2950, "uuid", 16, 2951, "U"),
    PgType(3802, "jsonb", -1, 3807, "U"),
    PgType(2278, "void", 4, 0, "P"),
]
TYPES: dict[int, PgType] = {t.oid: t for t in _BASE}
for _t in _BASE:
    if _t.array_oid:
        TYPES[_t.array_oid] = PgType(_t.array_oid, "_" + _t.name, -1, 0, "A", elem=_t.oid)
TYPE_BY_NAME: dict[str, int] = {t.name: t.oid for t in TYPES.values()}
TYPE_BY_NAME.update({
    "bigint": 20, "smallint": 21, "integer": 23, "int": 23, "boolean": 16, "real": 700,
    "double precision": 701, "float": 701, "double": 701, "character varying": 1043,
    "timestamp without time zone": 1114, "timestamp with time zone": 1184, "decimal": 1700,
    "string": 25, "character": 1042,
})

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON = 114
FLOAT4, FLOAT8, UNKNOWN, VARCHAR, DATE, TIME = 700, 701, 705, 1043, 1082, 1083
BPCHAR = 1042
TIMESTAMP, TIMESTAMPTZ, INTERVAL, NUMERIC, UUID, JSONB = 1114, 1184, 1186, 1700, 2950, 3802

PG_EPOCH_US = 946_684_800_000_000
PG_EPOCH_DAYS = 10_957


def format_type(oid: int, typmod: int = -1) -> str:
    """psql-style type name (`format_type`)."""
    names = {16: "boolean", 20: "bigint", 21: "smallint", 23: "integer", 700: "real",
             701: "double precision", 1043: "character varying", 1114:
             "timestamp without time zone", 1184: "timestamp with time zone", 18: '"char"'}
    t = TYPES.get(oid)
    if t is None:
        return "unknown"
    if t.elem:
        return format_type(t.elem) + "[]"
    return names.get(oid, t.name)


def pg_type_of(t: pa.DataType) -> int:
    """The Postgres type OID an Arrow type is served as."""
    if pa.types.is_dictionary(t):
        return pg_type_of(t.value_type)
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return INT2
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return INT4
    if pa.types.is_uint64(t):  # above bigint's range: numeric holds every value
        return NUMERIC
    if pa.types.is_integer(t):
        return INT8
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return FLOAT4
    if pa.types.is_float64(t):
        return FLOAT8
    if pa.types.is_decimal(t):
        return NUMERIC
    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_null(t)):
        return TEXT
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)):
        return BYTEA
    if pa.types.is_timestamp(t):
        return TIMESTAMPTZ if t.tz is not None else TIMESTAMP
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_time(t):
        return TIME
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return INTERVAL
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
            or pa.types.is_list_view(t) or pa.types.is_large_list_view(t)):
        elem = pg_type_of(t.value_type)
        arr = TYPES[elem].array_oid if elem in TYPES else 0
        return arr or 1009
    return JSON


PG_OID_KEY = b"pg_oid"


def pg_field(name: str, t: pa.DataType, oid: int) -> pa.Field[Any]:
    """An Arrow field served as an explicit Postgres type (e.g. oid, "char", name)."""
    return pa.field(name, t, metadata={PG_OID_KEY: str(oid).encode()})


def field_for(name: str, t: pa.DataType, fmt: int, meta: dict[bytes, bytes] | None = None
              ) -> Field:
    oid = int(meta[PG_OID_KEY]) if meta and PG_OID_KEY in meta else pg_type_of(t)
    pt = TYPES.get(oid)
    return Field(name, oid, pt.length if pt else -1, -1, fmt)


# --- scalar text/binary renderings (per value: used for rare types and arrays) -------------------


def _interval_parts(v: Any) -> tuple[int, int, int]:
    """(months, days, microseconds) of a timedelta or pyarrow MonthDayNano."""
    if isinstance(v, dt.timedelta):
        return 0, v.days, v.seconds * 1_000_000 + v.microseconds
    return int(v.months), int(v.days), int(v.nanoseconds) // 1000


def interval_text(v: Any) -> str:
    months, days, us = _interval_parts(v)
    parts = []
    if months:
        y, m = divmod(abs(months), 12)
        sign = "-" if months < 0 else ""
        if y:
            parts.append(f"{sign}{y} year{'s' if y != 1 else ''}")
        if m:
            parts.append(f"{sign}{m} mon{'s' if m != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    if us or not parts:
        sign = "-" if us < 0 else ""
        s, frac = divmod(abs(us), 1_000_000)
        h, rem = divmod(s, 3600)
        mi, se = divmod(rem, 60)
        txt = f"{sign}{h:02d}:{mi:02d}:{se:02d}"
        if frac:
            txt += f".{frac:06d}".rstrip("0")
        parts.append(txt)
    return " ".join(parts)


def _ts_text(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(sep=" ") + "+00"
    return v.isoformat(sep=" ")


def scalar_text(v: Any, oid: int) -> str:
    """Postgres text rendering of one Python value of type `oid`."""
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    if isinstance(v, dt.datetime):
        return _ts_text(v)
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        r = repr(v)
        return r[:-2] if r.endswith(".0") else r
    if oid == INTERVAL:
        return interval_text(v)
    if isinstance(v, list):
        t = TYPES.get(oid)
        return array_text(v, t.elem if t else TEXT)
    if isinstance(v, str):
        return v
    if isinstance(v, int | Decimal):
        return str(v)
    return json.dumps(v, default=str)


def _quote_elem(s: str) -> str:
    if s == "" or s.upper() == "NULL" or any(c in s for c in '{},"\\ \t\n'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def array_text(values: list[Any], elem: int) -> str:
    out = []
    for v in values:
        if v is None:
            out.append("NULL")
        elif isinstance(v, list):
            out.append(array_text(v, elem))
        else:
            out.append(_quote_elem(scalar_text(v, elem)))
    return "{" + ",".join(out) + "}"


def _numeric_binary(v: Decimal) -> bytes:
    if v.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exp = v.as_tuple()
    assert isinstance(exp, int)
    dscale = max(0, -exp)
    s = "".join(map(str, digits))
    if exp > 0:
        s += "0" * exp
        exp = 0
    int_part = s[:len(s) + exp] if exp < 0 else s
    frac = s[len(s) + exp:] if exp < 0 else ""
    int_part = int_part.lstrip("0")
    int_part = "0" * (-len(int_part) % 4) + int_part
    frac = frac + "0" * (-len(frac) % 4)
    groups = [int(int_part[i:i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac[i:i + 4]) for i in range(0, len(frac), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = struct.pack("!hhHH", len(groups), weight, 0x4000 if sign else 0, dscale)
    return head + b"".join(struct.pack("!H", g) for g in groups)


def scalar_binary(v: Any, oid: int) -> bytes:
    """Postgres binary rendering of one Python value of type `oid`."""
    if oid == BOOL:
        return b"\x01" if v else b"\x00"
    if oid == INT2:
        return struct.pack("!h", v)
    if oid == INT4:
        return struct.pack("!i", v)
    if oid in (INT8,):
        return struct.pack("!q", v)
    if oid == OID:
        return struct.pack("!I", v)
    if oid == FLOAT4:
        return struct.pack("!f", v)
    if oid == FLOAT8:
        return struct.pack("!d", v)
    if oid == BYTEA:
        return bytes(v)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        assert isinstance(v, dt.datetime)
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        d = v - dt.datetime(2000, 1, 1)
        return struct.pack("!q", (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds)
    if oid == DATE:
        return struct.pack("!i", v.toordinal() - dt.date(2000, 1, 1).toordinal())
    if oid == TIME:
        return struct.pack("!q", ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000
                           + v.microsecond)
    if oid == INTERVAL:
        months, days, us = _interval_parts(v)
        return struct.pack("!qii", us, days, months)
    if oid == NUMERIC:
        return _numeric_binary(v if isinstance(v, Decimal) else Decimal(str(v)))
    if oid == UUID:
        return uuid.UUID(str(v)).bytes
    if oid == JSONB:
        return b"\x01" + scalar_text(v, TEXT).encode()
    t = TYPES.get(oid)
    if t is not None and t.elem:
        return array_binary(v, t.elem)
    return scalar_text(v, oid).encode("utf-8")


def array_binary(values: list[Any], elem: int) -> bytes:
    if not values:
        return struct.pack("!iiI", 0, 0, elem)
    has_null = any(v is None for v in values)
    parts = [struct.pack("!iiIii", 1, 1 if has_null else 0, elem, len(values), 1)]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            b = scalar_binary(v, elem)
            parts.append(struct.pack("!i", len(b)) + b)
    return b"".join(parts)


# --- bulk column encoding -----------------------------------------------------------------------

_U32 = pa.uint32()
_BSWAP_IDX: dict[int, Arr] = {}


def _bswap(arr: Arr, width: int) -> Arr:
    """Fixed-width little-endian values -> big-endian fixed_size_binary(width) (nulls kept)."""
    n = len(arr)
    bufs = arr.buffers()
    raw = pa.Array.from_buffers(pa.uint8(), n * width, [None, bufs[1]], offset=arr.offset * width)
    idx = _BSWAP_IDX.get(width)
    if idx is None or len(idx) < n * width:
        size = max(n, 65536)
        idx = pa.array([i * width + (width - 1 - j) for i in range(size) for j in range(width)],
                       pa.int32())
        _BSWAP_IDX[width] = idx
    swapped = pc.take(raw, idx.slice(0, n * width))
    return pa.Array.from_buffers(pa.binary(width), n, [None, swapped.buffers()[1]],
                                 offset=swapped.offset // width)


def _be_int32(arr: Arr) -> Arr:
    """int32 array (no nulls) -> big-endian 4-byte binary array."""
    return _bswap(pc.cast(arr, pa.int32(), safe=False), 4).cast(pa.binary())


def _with_validity(payload: Arr, src: Arr) -> Arr:
    if src.null_count == 0:
        return payload
    return pc.if_else(pc.is_valid(src), payload, pa.scalar(None, payload.type))


def _per_value(arr: Arr, fn: Callable[[Any], bytes]) -> Arr:
    return pa.array([None if v is None else fn(v) for v in arr.to_pylist()], pa.binary())


def _plain(arr: Arr) -> Arr:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_string_view(arr.type) or pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    if pa.types.is_binary_view(arr.type) or pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.binary())
    return arr


def encode_cells(arr: Arr, oid: int, fmt: int) -> Arr:
    """One column slice -> binary array of cell payloads (null where the value is null)."""
    arr = _plain(arr)
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.binary())
    if fmt == 0:
        if oid == BOOL:
            return pc.if_else(arr, pa.scalar(b"t"), pa.scalar(b"f"))
        if oid in (INT2, INT4, INT8, OID, NUMERIC, DATE, TIME) and not pa.types.is_floating(t):
            return pc.cast(arr, pa.string()).cast(pa.binary())
        if oid in (FLOAT4, FLOAT8):
            s = pc.cast(arr, pa.string())
            if pc.all(pc.is_finite(arr)).as_py() is False:  # some inf or nan
                s = pc.replace_substring_regex(s, "^inf$", "Infinity")
                s = pc.replace_substring_regex(s, "^-inf$", "-Infinity")
                s = pc.replace_substring_regex(s, "^nan$", "NaN")
            return s.cast(pa.binary())
        if oid in (TEXT, CHAR, NAME, VARCHAR, JSON) and pa.types.is_string(t):
            return arr.cast(pa.binary())
        if oid == BYTEA:
            return _per_value(arr, lambda v: b"\\x" + v.hex().encode())
        if oid in (TIMESTAMP, TIMESTAMPTZ):
            if t.unit != "us":
                arr = pc.cast(arr, pa.timestamp("us", t.tz), safe=False)
            if oid == TIMESTAMPTZ:
                arr = pc.cast(arr, pa.timestamp("us", "UTC"))
            s = pc.strftime(arr, "%Y-%m-%d %H:%M:%S")
            s = pc.replace_substring_regex(s, r"\.?0+$", "")  # 12:00:00.500000 -> 12:00:00.5
            if oid == TIMESTAMPTZ:
                s = pc.binary_join_element_wise(s, "+00", "")
            return s.cast(pa.binary())
        return _per_value(arr, lambda v: scalar_text(v, oid).encode("utf-8"))
    # binary
    if oid in (INT2, INT4, INT8, OID):
        target, w = {INT2: (pa.int16(), 2), INT4: (pa.int32(), 4), INT8: (pa.int64(), 8),
                     OID: (pa.uint32(), 4)}[oid]
        a = pc.cast(arr, target, safe=False)
        return _with_validity(_bswap(a, w).cast(pa.binary()), arr)
    if oid in (FLOAT4, FLOAT8):
        ftarget, w = (pa.float32(), 4) if oid == FLOAT4 else (pa.float64(), 8)
        a = pc.cast(arr, ftarget)
        return _with_validity(_bswap(a, w).cast(pa.binary()), arr)
    if oid == BOOL:
        a = pc.cast(arr, pa.uint8())
        return _with_validity(pa.Array.from_buffers(pa.binary(1), len(a), [None, a.buffers()[1]],
                                                    offset=a.offset).cast(pa.binary()), arr)
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        a = pc.cast(pc.cast(arr, pa.timestamp("us", t.tz), safe=False),
                    pa.int64())
        a = pc.subtract(a, PG_EPOCH_US)
        return _with_validity(_bswap(a, 8).cast(pa.binary()), arr)
    if oid == DATE and pa.types.is_date32(t):
        a = pc.subtract(pc.cast(arr, pa.int32()), PG_EPOCH_DAYS)
        return _with_validity(_bswap(a, 4).cast(pa.binary()), arr)
    if oid == CHAR and pa.types.is_string(t):  # "char" is one byte: '' is sent as \0
        b = arr.cast(pa.binary())
        return pc.if_else(pc.equal(pc.binary_length(b), 0), pa.scalar(b"\x00"), b)
    if oid in (TEXT, BYTEA, JSON, CHAR, NAME, VARCHAR) and (pa.types.is_string(t)
                                                           or pa.types.is_binary(t)):
        return arr.cast(pa.binary())
    if pa.types.is_fixed_size_binary(t):
        return arr.cast(pa.binary())
    return _per_value(arr, lambda v: scalar_binary(v, oid))


def encode_data_rows(columns: Sequence[Any], oids: Sequence[int],
                     formats: Sequence[int]) -> Any:
    """DataRow messages for one slice of rows, as one contiguous buffer."""
    n = len(columns[0]) if columns else 0
    if n == 0:
        return b""
    if not columns:
        return b"D\x00\x00\x00\x06\x00\x00" * n
    pieces: list[Arr] = []
    total: Arr | None = None
    for arr, oid, fmt in zip(columns, oids, formats, strict=True):
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        cells = encode_cells(arr, oid, fmt)
        ln = pc.binary_length(cells)
        pieces.append(_be_int32(pc.fill_null(ln, -1)))
        pieces.append(pc.fill_null(cells, b"") if cells.null_count else cells)
        size = pc.add(pc.fill_null(ln, 0), 4)
        total = size if total is None else pc.add(total, size)
    assert total is not None
    msglen = _be_int32(pc.add(total, 6))
    head = pa.scalar(b"D")
    ncols = pa.scalar(struct.pack("!h", len(columns)))
    joined = pc.binary_join_element_wise(head, msglen, ncols, *pieces, b"")
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = joined.buffers()[1]
    data = joined.buffers()[2]
    assert offsets is not None and data is not None
    start, end = struct.unpack_from("=i", offsets, joined.offset * 4)[0], \
        struct.unpack_from("=i", offsets, (joined.offset + n) * 4)[0]
    return data[start:end]


# --- parameter decoding (wire -> Python) --------------------------------------------------------


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("t", "true", "1", "on", "yes", "y"):
        return True
    if v in ("f", "false", "0", "off", "no", "n"):
        return False
    raise ValueError(f'invalid input syntax for type boolean: "{s}"')


def _parse_ts(s: str) -> dt.datetime:
    s = s.strip()
    if s.endswith(("+00", "-00")) or (len(s) > 3 and s[-3] in "+-" and s[-2:].isdigit()):
        s = s + ":00"
    return dt.datetime.fromisoformat(s)


def _parse_bytea(s: str) -> bytes:
    if s.startswith("\\x"):
        return bytes.fromhex(s[2:])
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if s[i + 1] == "\\":
                out.append(0x5C)
                i += 2
            else:
                out.append(int(s[i + 1:i + 4], 8))
                i += 4
        else:
            out += c.encode()
            i += 1
    return bytes(out)


def _parse_array_text(s: str, elem: int) -> list[Any]:
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError(f'malformed array literal: "{s}"')
    body = s[1:-1]
    items: list[Any] = []
    i = 0
    while i < len(body):
        if body[i] == '"':
            j = i + 1
            buf = []
            while body[j] != '"':
                if body[j] == "\\":
                    j += 1
                buf.append(body[j])
                j += 1
            items.append(decode_param("".join(buf).encode(), elem, 0))
            i = j + 2
        else:
            j = body.find(",", i)
            j = len(body) if j < 0 else j
            tok = body[i:j].strip()
            items.append(None if tok.upper() == "NULL" else decode_param(tok.encode(), elem, 0))
            i = j + 1
    return items


def parse_array_text(s: str) -> list[str | None]:
    """A one-dimensional Postgres array literal (`{a,"b c",NULL}`) as strings."""
    return [None if v is None else str(v) for v in _parse_array_text(s, TEXT)]


def decode_param(raw: bytes, oid: int, fmt: int) -> Any:
    """One Bind parameter -> the Python value passed to the engine."""
    t = TYPES.get(oid)
    if fmt == 0:
        s = raw.decode("utf-8")
        if oid in (INT2, INT4, INT8, OID):
            return int(s)
        if oid in (FLOAT4, FLOAT8):
            return float(s)
        if oid == NUMERIC:
            return Decimal(s)
        if oid == BOOL:
            return _parse_bool(s)
        if oid == BYTEA:
            return _parse_bytea(s)
        if oid in (TIMESTAMP, TIMESTAMPTZ):
            return _parse_ts(s)
        if oid == DATE:
            return dt.date.fromisoformat(s)
        if t is not None and t.elem:
            return _parse_array_text(s, t.elem)
        return s
    if oid == INT2:
        return struct.unpack("!h", raw)[0]
    if oid == INT4:
        return struct.unpack("!i", raw)[0]
    if oid == INT8:
        return struct.unpack("!q", raw)[0]
    if oid in (OID, 24, 2205, 2206):
        return struct.unpack("!I", raw)[0]
    if oid == FLOAT4:
        return struct.unpack("!f", raw)[0]
    if oid == FLOAT8:
        return struct.unpack("!d", raw)[0]
    if oid == BOOL:
        return raw != b"\x00"
    if oid == BYTEA:
        return raw
    if oid in (TIMESTAMP, TIMESTAMPTZ):
        us = struct.unpack("!q", raw)[0]
        v = dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=us)
        return v.replace(tzinfo=dt.UTC) if oid == TIMESTAMPTZ else v
    if oid == DATE:
        return dt.date(2000, 1, 1) + dt.timedelta(days=struct.unpack("!i", raw)[0])
    if oid == INTERVAL:
        us, days, months = struct.unpack("!qii", raw)
        return dt.timedelta(days=days + 30 * months, microseconds=us)
    if oid == NUMERIC:
        ndigits, weight, sign, dscale = struct.unpack_from("!hhHH", raw)
        if sign == 0xC000:
            return Decimal("NaN")
        digits = struct.unpack_from(f"!{ndigits}H", raw, 8)
        num = Decimal(0)
        for i, d in enumerate(digits):
            num += Decimal(d) * (Decimal(10000) ** (weight - i))
        num = num.quantize(Decimal(1).scaleb(-dscale)) if dscale else num
        return -num if sign == 0x4000 else num
    if oid == UUID:
        return str(uuid.UUID(bytes=raw))
    if oid == JSONB:
        return raw[1:].decode("utf-8")
    if t is not None and t.elem:
        ndim, _flags, elem = struct.unpack_from("!iiI", raw)
        if ndim == 0:
            return []
        dims = [struct.unpack_from("!ii", raw, 12 + 8 * i)[0] for i in range(ndim)]
        pos = 12 + 8 * ndim
        flat: list[Any] = []
        count = 1
        for d in dims:
            count *= d
        for _ in range(count):
            ln = struct.unpack_from("!i", raw, pos)[0]
            pos += 4
            if ln < 0:
                flat.append(None)
            else:
                flat.append(decode_param(raw[pos:pos + ln], elem, 1))
                pos += ln
        return flat
    return raw.decode("utf-8")
