"""The partition-store key layout: byte order of keys = order of their fields, prefixes are
ranges, keys decode back (rstq.core.store.keys)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rstq.core.store import keys as K
from rstq.core.store.api import MAX_KEY_SIZE, prefix_end
from rstq.protocol.ids import InvocationId

texts = st.text(max_size=12)  # hypothesis text: no surrogates, so UTF-8 order = str order
blobs = st.binary(max_size=12) | st.sampled_from([b"", b"\x00", b"\x00\x00", b"\xff", b"\x00\xff",
                                                   b"\x00\x01", b"\x01"])
inv_ids = st.builds(
    lambda pk, uuid: str(InvocationId(pk, uuid)),
    st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**64 - 1]),
    st.integers(0, 2**128 - 1) | st.sampled_from([0, 1, 2**128 - 1]),
)
FIELD = {
    K.Kind.U8: st.integers(0, 255),
    K.Kind.U32: st.integers(0, 2**32 - 1),
    K.Kind.U64: st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 255, 256, 2**64 - 1]),
    K.Kind.TEXT: texts,
    K.Kind.BLOB: blobs,
    K.Kind.INV: inv_ids,
}


def fields_of(table: K.Table) -> st.SearchStrategy[tuple[K.Field, ...]]:
    return st.tuples(*(FIELD[k] for k in K.SCHEMA[table]))


def sort_key(table: K.Table, fields: tuple[K.Field, ...]) -> tuple[object, ...]:
    """The order keys must have: ints numerically, strings by UTF-8 bytes (= code points),
    invocation ids by (partition key, uuid)."""
    out: list[object] = []
    for kind, v in zip(K.SCHEMA[table], fields, strict=True):
        if kind is K.Kind.INV:
            assert isinstance(v, str)
            parsed = InvocationId.parse(v)
            out.append((parsed.partition_key, parsed.uuid))
        elif kind is K.Kind.TEXT:
            assert isinstance(v, str)
            out.append(v.encode())
        else:
            out.append(v)
    return tuple(out)


def table_and_two_rows() -> st.SearchStrategy[tuple[K.Table, tuple[K.Field, ...],
                                                    tuple[K.Field, ...]]]:
    return st.sampled_from(list(K.Table)).flatmap(
        lambda t: st.tuples(st.just(t), fields_of(t), fields_of(t))
    )


@settings(max_examples=600, deadline=None)
@given(table_and_two_rows())
def test_key_order_is_field_order(case: tuple[K.Table, tuple[K.Field, ...],
                                               tuple[K.Field, ...]]) -> None:
    table, a, b = case
    ka, kb = K.key(table, *a), K.key(table, *b)
    sa, sb = sort_key(table, a), sort_key(table, b)
    assert (ka < kb) == (sa < sb)
    assert (ka == kb) == (sa == sb)
    assert K.decode(ka) == (table, a)  # and keys decode back


@settings(max_examples=400, deadline=None)
@given(table_and_two_rows(), st.data())
def test_prefix_of_fields_is_a_key_range(
    case: tuple[K.Table, tuple[K.Field, ...], tuple[K.Field, ...]], data: st.DataObject
) -> None:
    """Every key whose first n fields equal the prefix's lies in its range; no other does."""
    table, a, b = case
    n = data.draw(st.integers(0, len(a)))
    p = K.prefix(table, *a[:n])
    start, end = K.prefix_range(p)
    kb = K.key(table, *b)
    inside = start <= kb and (end is None or kb < end)
    assert inside == (sort_key(table, b)[:n] == sort_key(table, a)[:n])
    lo, hi = K.table_range(table)
    assert lo <= kb < hi  # and the table's range holds all its keys


@settings(max_examples=300, deadline=None)
@given(blobs, blobs)
def test_escape_is_order_preserving_and_prefix_free(a: bytes, b: bytes) -> None:
    ea, eb = K.escape(a), K.escape(b)
    assert (ea < eb) == (a < b)
    assert a == b or not eb.startswith(ea)
    assert K.unescape(ea + b"tail", 0) == (a, len(ea))


def test_typed_helpers_match_the_schema() -> None:
    inv = str(InvocationId(7, 9))
    assert K.decode(K.status_key(inv)) == (K.Table.STATUS, (inv,))
    assert K.decode(K.journal_key(inv, 3)) == (K.Table.JOURNAL, (inv, 3))
    assert K.journal_key(inv, 3).startswith(K.journal_prefix(inv))
    assert K.status_key(inv) == K.status_key(K.inv_raw(inv))
    assert K.decode(K.state_key("svc", "k", b"n")) == (K.Table.STATE, ("svc", "k", b"n"))
    assert K.state_key("svc", "k", b"n").startswith(K.state_prefix("svc", "k"))
    assert K.state_key("svc", "k", b"n").startswith(K.state_prefix("svc"))
    assert not K.state_key("svc2", "k", b"n").startswith(K.state_prefix("svc"))
    assert K.decode(K.inbox_key("s", "k", 5)) == (K.Table.INBOX, ("s", "k", 5))
    assert K.decode(K.timer_key(10, "t")) == (K.Table.TIMER, (10, "t"))
    assert K.decode(K.retention_key(10, inv)) == (K.Table.RETENTION, (10, inv))
    assert K.decode(K.fsm_key(K.Fsm.APPLIED_LSN)) == (K.Table.FSM, (1,))
    assert K.decode(K.idempotency_key("s", "", "h", "i")) == (K.Table.IDEMPOTENCY,
                                                               ("s", "", "h", "i"))
    assert K.read_u64(K.u64(2**64 - 1)) == 2**64 - 1


def test_due_ranges_are_inclusive_of_now() -> None:
    start, end = K.timers_due(100)
    assert start <= K.timer_key(0, "a") < end
    assert start <= K.timer_key(100, "\U0010ffff" * 10) < end
    assert not K.timer_key(101, "") < end
    inv = str(InvocationId(2**64 - 1, 2**128 - 1))
    start, end = K.retention_due(50)
    assert start <= K.retention_key(50, inv) < end
    assert not K.retention_key(51, str(InvocationId(0, 0))) < end


def test_limits_and_bad_keys() -> None:
    with pytest.raises(ValueError):
        K.state_key("s" * MAX_KEY_SIZE, "k", b"n")  # over MAX_KEY_SIZE
    assert len(K.state_key("s", "k", b"n" * (MAX_KEY_SIZE - 10))) <= MAX_KEY_SIZE
    with pytest.raises(OverflowError):
        K.timer_key(2**64, "t")
    with pytest.raises(TypeError):
        K.key(K.Table.STATE, "s", "k", "not bytes")
    with pytest.raises(ValueError):
        K.key(K.Table.STATE, "s", "k")  # a prefix is not a key
    for bad in (b"", b"\xee", b"\x20svc", b"\x20svc\x00\x02", b"\x10short",
                K.timer_key(1, "t") + b"x"):
        with pytest.raises(K.KeyDecodeError):
            K.decode(bad)
    with pytest.raises(K.KeyDecodeError):
        K.fields_of(K.timer_key(1, "t"), K.Table.STATE)


def test_prefix_end() -> None:
    assert prefix_end(b"ab") == b"ac"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") is None
    assert prefix_end(b"") is None
