"""Partition-store keys: one key range per table, fields encoded so byte order = field order.

In the spirit of Restate's `crates/partition-store/src/keys.rs` (a key-kind prefix per table,
then the fields, big-endian integers), with one byte per table and escaped strings.

Key = table byte | field | field | ...  Field encodings:

- `u8`, `u32`, `u64`: fixed width, big-endian (unsigned order = byte order).
- `text` (UTF-8 of a str) and `blob` (bytes): the bytes with every 0x00 written as 0x00 0xFF,
  then the terminator 0x00 0x01. Order-preserving (a string sorts before its extensions,
  0x00 0x01 is below every escaped continuation) and prefix-free, so the next field starts
  unambiguously and a tuple of fields sorts like the tuple. Restate length-prefixes strings
  instead (a varint), which groups but does not sort them.
- `inv`: an invocation id in its 24-byte raw form (u64 partition key, u128 uuid, both
  big-endian): rows of one partition key are contiguous, as in Restate.

Tables (value in brackets; records are encoded by the caller):

  0x01 fsm          | u8 field                           [u64 BE or bytes]  applied LSN, ...
  0x02 dedup        | u32 source partition               [u64 BE] highest seq applied
  0x10 status       | inv                                [invocation status record]
  0x11 journal      | inv | u32 entry index              [journal entry]
  0x12 retention    | u64 expires at (ms) | inv          [b""] (reserved, unused)
  0x13 history      | inv                                [segment id] completed, in a segment
  0x20 state        | text service | text key | blob name [value]
  0x21 lock         | text service | text key            [inv holding the exclusive lock]
  0x22 inbox        | text service | text key | u64 seq  [inv] arrival order per object
  0x23 promise      | text service | text key | text name [promise record]
  0x24 idempotency  | text service | text key | text handler | text idempotency key  [inv]
  0x30 timer        | u64 fire at (ms) | text timer id   [timer record]
  0x40 outbox       | u64 seq                            [message]
  0x50 segment      | text segment id                    [segment record] history manifest
  0x51 tombstone    | text segment id | inv              [b""] a segment row no longer valid

So the scans the partition needs are ranges: an object's state or inbox (prefix service, key),
one invocation's journal (prefix inv), timers due by t (timer table up to fire time t + 1),
invocations whose retention expired by t (retention table up to t + 1), the outbox in order,
and every row of one table (SQL full scans). Unlike Restate, the (service, key) tables do not
start with the partition key: a store holds one partition, and (service, key) fixes it.

Keys must stay within `MAX_KEY_SIZE` (511 bytes, LMDB's limit): long service names, object keys
and state names together can exceed it; `state_key` etc. raise ValueError then.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence

from rstq.core.store.api import MAX_KEY_SIZE, prefix_end
from rstq.protocol.ids import INVOCATION_ID_RAW_LEN, InvocationId

Field = int | str | bytes


class Table(enum.IntEnum):
    FSM = 0x01
    DEDUP = 0x02
    STATUS = 0x10
    JOURNAL = 0x11
    RETENTION = 0x12
    HISTORY = 0x13
    STATE = 0x20
    LOCK = 0x21
    INBOX = 0x22
    PROMISE = 0x23
    IDEMPOTENCY = 0x24
    TIMER = 0x30
    OUTBOX = 0x40
    SEGMENT = 0x50
    TOMBSTONE = 0x51


class Fsm(enum.IntEnum):
    """Rows of the fsm table: the partition's scalars."""

    APPLIED_LSN = 1  # the log position the store reflects, written in every batch
    INBOX_SEQ = 2
    OUTBOX_NEXT_SEQ = 3
    NOW = 4  # the latest command time applied (expiry of completed invocations is relative)


class Kind(enum.Enum):
    U8 = "u8"
    U32 = "u32"
    U64 = "u64"
    TEXT = "text"
    BLOB = "blob"
    INV = "inv"


K = Kind
SCHEMA: dict[Table, tuple[Kind, ...]] = {
    Table.FSM: (K.U8,),
    Table.DEDUP: (K.U32,),
    Table.STATUS: (K.INV,),
    Table.JOURNAL: (K.INV, K.U32),
    Table.RETENTION: (K.U64, K.INV),
    Table.STATE: (K.TEXT, K.TEXT, K.BLOB),
    Table.LOCK: (K.TEXT, K.TEXT),
    Table.INBOX: (K.TEXT, K.TEXT, K.U64),
    Table.PROMISE: (K.TEXT, K.TEXT, K.TEXT),
    Table.IDEMPOTENCY: (K.TEXT, K.TEXT, K.TEXT, K.TEXT),
    Table.TIMER: (K.U64, K.TEXT),
    Table.OUTBOX: (K.U64,),
    Table.SEGMENT: (K.TEXT,),
    Table.TOMBSTONE: (K.TEXT, K.INV),
    Table.HISTORY: (K.INV,),
}
_WIDTH = {K.U8: 1, K.U32: 4, K.U64: 8}
_TERM = b"\x00\x01"


class KeyDecodeError(ValueError):
    """A key that does not decode under the layout."""


# field codecs


def escape(raw: bytes) -> bytes:
    """Order-preserving, prefix-free encoding of a byte string (see the module docstring)."""
    return raw.replace(b"\x00", b"\x00\xff") + _TERM


def unescape(key: bytes, pos: int) -> tuple[bytes, int]:
    """The escaped string at `pos` and the position after its terminator."""
    out = []
    start = pos
    while True:
        z = key.find(b"\x00", pos)
        if z < 0 or z + 1 >= len(key):
            raise KeyDecodeError(f"unterminated string in key {key!r}")
        nxt = key[z + 1]
        if nxt == 0x01:
            out.append(key[start:z])
            return b"\x00".join(out), z + 2
        if nxt != 0xFF:
            raise KeyDecodeError(f"bad escape in key {key!r}")
        out.append(key[start:z])
        pos = start = z + 2


@functools.lru_cache(maxsize=1 << 13)  # small: it keeps ids alive (memory grows with it)
def inv_raw(invocation_id: str) -> bytes:
    """The 24-byte raw form of an `inv_1…` id (cached: parsing costs ~14 µs)."""
    return InvocationId.parse(invocation_id).to_bytes()


def inv_str(raw: bytes) -> str:
    return str(InvocationId.from_bytes(raw))


def _inv(invocation_id: str | bytes) -> bytes:
    if isinstance(invocation_id, str):
        return inv_raw(invocation_id)
    if len(invocation_id) != INVOCATION_ID_RAW_LEN:
        raise ValueError(f"raw invocation id is {INVOCATION_ID_RAW_LEN} bytes")
    return invocation_id


def _field(kind: Kind, value: Field) -> bytes:
    if kind is K.TEXT:
        if not isinstance(value, str):
            raise TypeError(f"text field, got {type(value).__name__}")
        return escape(value.encode())
    if kind is K.BLOB:
        if not isinstance(value, bytes):
            raise TypeError(f"blob field, got {type(value).__name__}")
        return escape(value)
    if kind is K.INV:
        if not isinstance(value, str | bytes):
            raise TypeError(f"invocation id field, got {type(value).__name__}")
        return _inv(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{kind.value} field, got {type(value).__name__}")
    return value.to_bytes(_WIDTH[kind], "big")  # OverflowError if out of range


# generic keys


def prefix(table: Table, *fields: Field) -> bytes:
    """The key prefix of `table` with its first `len(fields)` fields (all of them: a key)."""
    schema = SCHEMA[table]
    if len(fields) > len(schema):
        raise ValueError(f"{table.name} has {len(schema)} key fields")
    out = bytes((table,)) + b"".join(_field(k, v) for k, v in zip(schema, fields, strict=False))
    if len(out) > MAX_KEY_SIZE:
        raise ValueError(f"{table.name} key of {len(out)} bytes exceeds {MAX_KEY_SIZE}")
    return out


def key(table: Table, *fields: Field) -> bytes:
    """A full key of `table`."""
    if len(fields) != len(SCHEMA[table]):
        raise ValueError(f"{table.name} keys have {len(SCHEMA[table])} fields")
    return prefix(table, *fields)


def prefix_range(p: bytes) -> tuple[bytes, bytes | None]:
    """[start, end) of every key starting with `p`."""
    return p, prefix_end(p)


def table_range(table: Table) -> tuple[bytes, bytes]:
    return bytes((table,)), bytes((table + 1,))


def decode(k: bytes) -> tuple[Table, tuple[Field, ...]]:
    """The table and fields of a key (invocation ids as `inv_1…` strings)."""
    if not k:
        raise KeyDecodeError("empty key")
    try:
        table = Table(k[0])
    except ValueError:
        raise KeyDecodeError(f"unknown table byte {k[0]:#04x}") from None
    pos = 1
    out: list[Field] = []
    for kind in SCHEMA[table]:
        if kind is K.TEXT or kind is K.BLOB:
            raw, pos = unescape(k, pos)
            out.append(raw.decode() if kind is K.TEXT else raw)
        elif kind is K.INV:
            raw = k[pos:pos + INVOCATION_ID_RAW_LEN]
            if len(raw) != INVOCATION_ID_RAW_LEN:
                raise KeyDecodeError(f"short invocation id in key {k!r}")
            out.append(inv_str(raw))
            pos += INVOCATION_ID_RAW_LEN
        else:
            w = _WIDTH[kind]
            if pos + w > len(k):
                raise KeyDecodeError(f"short integer in key {k!r}")
            out.append(int.from_bytes(k[pos:pos + w], "big"))
            pos += w
    if pos != len(k):
        raise KeyDecodeError(f"trailing bytes in {table.name} key {k!r}")
    return table, tuple(out)


# the tables, typed (these are what apply uses)

_STATUS = bytes((Table.STATUS,))
_JOURNAL = bytes((Table.JOURNAL,))
_HISTORY = bytes((Table.HISTORY,))


def fsm_key(field: Fsm) -> bytes:
    return bytes((Table.FSM, field))


def dedup_key(source_partition: int) -> bytes:
    return key(Table.DEDUP, source_partition)


def status_key(invocation_id: str | bytes) -> bytes:
    return _STATUS + _inv(invocation_id)


def journal_key(invocation_id: str | bytes, index: int) -> bytes:
    return _JOURNAL + _inv(invocation_id) + index.to_bytes(4, "big")


def journal_prefix(invocation_id: str | bytes) -> bytes:
    """Prefix of one invocation's journal entries (they scan in index order)."""
    return _JOURNAL + _inv(invocation_id)


def history_key(invocation_id: str | bytes) -> bytes:
    return _HISTORY + _inv(invocation_id)


def segment_key(segment_id: str) -> bytes:
    return key(Table.SEGMENT, segment_id)


def tombstone_key(segment_id: str, invocation_id: str | bytes) -> bytes:
    return key(Table.TOMBSTONE, segment_id, _inv(invocation_id))


def tombstone_prefix(segment_id: str) -> bytes:
    return prefix(Table.TOMBSTONE, segment_id)


def retention_key(expires_at_ms: int, invocation_id: str | bytes) -> bytes:
    return key(Table.RETENTION, expires_at_ms, _inv(invocation_id))


def retention_due(now_ms: int) -> tuple[bytes, bytes]:
    """[start, end) of the retention rows expired at `now_ms` (expiry <= now)."""
    return table_range(Table.RETENTION)[0], prefix(Table.RETENTION, now_ms + 1)


def state_key(service: str, object_key: str, name: bytes) -> bytes:
    return key(Table.STATE, service, object_key, name)


def state_prefix(service: str, object_key: str | None = None) -> bytes:
    """Prefix of one object's state (or, without a key, of a whole service's)."""
    if object_key is None:
        return prefix(Table.STATE, service)
    return prefix(Table.STATE, service, object_key)


def lock_key(service: str, object_key: str) -> bytes:
    return key(Table.LOCK, service, object_key)


def inbox_key(service: str, object_key: str, seq: int) -> bytes:
    return key(Table.INBOX, service, object_key, seq)


def inbox_prefix(service: str, object_key: str) -> bytes:
    return prefix(Table.INBOX, service, object_key)


def promise_key(workflow: str, object_key: str, name: str) -> bytes:
    return key(Table.PROMISE, workflow, object_key, name)


def idempotency_key(service: str, object_key: str, handler: str, idempotency: str) -> bytes:
    return key(Table.IDEMPOTENCY, service, object_key, handler, idempotency)


def timer_key(fire_at_ms: int, timer_id: str) -> bytes:
    return key(Table.TIMER, fire_at_ms, timer_id)


def timers_due(now_ms: int) -> tuple[bytes, bytes]:
    """[start, end) of the timers due at `now_ms` (fire time <= now), in fire-time order."""
    return table_range(Table.TIMER)[0], prefix(Table.TIMER, now_ms + 1)


def outbox_key(seq: int) -> bytes:
    return key(Table.OUTBOX, seq)


def u64(n: int) -> bytes:
    """A u64 value (fsm, dedup rows)."""
    return n.to_bytes(8, "big")


def read_u64(value: bytes) -> int:
    if len(value) != 8:
        raise ValueError("u64 values are 8 bytes")
    return int.from_bytes(value, "big")


def fields_of(k: bytes, table: Table) -> Sequence[Field]:
    """The fields of a key known to be of `table`."""
    t, fields = decode(k)
    if t is not table:
        raise KeyDecodeError(f"{t.name} key where {table.name} was expected")
    return fields
