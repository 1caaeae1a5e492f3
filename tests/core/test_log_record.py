"""Record framing and the pure torn-vs-corrupt rule, on bytes only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rstq.core.log import record
from rstq.core.log.api import LogCorruption
from rstq.core.log.recovery import check_active, check_sealed
from rstq.core.log.segment import SEG_HEADER_SIZE, encode_header

PATH = "seg"


def build(writes: list[list[bytes]], first_lsn: int = 1) -> tuple[bytes, list[int], list[int]]:
    """A segment image; returns (data, record start offsets, write start offsets)."""
    buf = bytearray(encode_header(first_lsn))
    rec_starts: list[int] = []
    write_starts: list[int] = []
    lsn = first_lsn
    for write in writes:
        write_starts.append(len(buf))
        for i, payload in enumerate(write):
            flags = record.FLAG_START if i == 0 else 0
            flags |= record.FLAG_END if i == len(write) - 1 else 0
            rec_starts.append(len(buf))
            record.encode_into(buf, lsn, payload, flags)
            lsn += 1
    return bytes(buf), rec_starts, write_starts


def test_roundtrip() -> None:
    for payload in (b"", b"x", bytes(range(256)) * 40):
        data = record.encode(42, payload)
        rec = record.decode_at(data, 0)
        assert (rec.lsn, rec.payload, rec.end) == (42, payload, len(data))
        assert rec.flags == record.FLAG_START | record.FLAG_END


def test_set_flags_recomputes_crc() -> None:
    buf = bytearray()
    record.encode_into(buf, 7, b"abc", record.FLAG_START)
    record.set_flags(buf, 0, record.FLAG_END)
    rec = record.decode_at(buf, 0)
    assert rec.flags == record.FLAG_START | record.FLAG_END and rec.payload == b"abc"


@pytest.mark.parametrize("pos", range(record.HEADER_SIZE + 3))
def test_any_flipped_bit_is_detected(pos: int) -> None:
    data = bytearray(record.encode(5, b"abc"))
    for bit in range(8):
        bad = bytearray(data)
        bad[pos] ^= 1 << bit
        with pytest.raises(record.Invalid):
            record.decode_at(bytes(bad), 0)


def test_scan_reports_writes_and_lsn_gaps() -> None:
    data, _, _ = build([[b"a"], [b"b", b"c"], [b"d"]])
    result = record.scan(data, SEG_HEADER_SIZE, 1)
    assert (result.end, result.next_lsn, result.bad_reason) == (len(data), 5, None)
    assert result.committed_end == len(data)
    gap = record.scan(data, SEG_HEADER_SIZE, 2)
    assert gap.lsn_mismatch and gap.end == SEG_HEADER_SIZE


def test_sealed_segment_must_end_on_a_finished_write() -> None:
    data, starts, _ = build([[b"a"], [b"b", b"c"]])
    check_sealed(data, PATH, 1)
    with pytest.raises(LogCorruption) as err:
        check_sealed(data[: starts[-1]], PATH, 1)  # the write of b, c lost its END record
    assert err.value.offset == starts[1]


def test_valid_record_with_wrong_lsn_at_tail_is_corruption() -> None:
    data, _, _ = build([[b"a"]])
    with pytest.raises(LogCorruption, match="lsn 9"):
        check_active(data + record.encode(9, b"z"), PATH, 1)


def test_torn_segment_creation_is_reset() -> None:
    for data in (b"", encode_header(3)[:10], bytes(SEG_HEADER_SIZE)):
        assert check_active(data, PATH, 3) is None
    data, _, _ = build([[b"a"]], first_lsn=3)
    with pytest.raises(LogCorruption, match="magic"):
        check_active(bytes(8) + data[8:], PATH, 3)  # header damaged but a record survives


writes_strategy = st.lists(
    st.lists(st.binary(max_size=40), min_size=1, max_size=4), min_size=1, max_size=6
)


@settings(max_examples=300, deadline=None)
@given(writes=writes_strategy, data=st.data())
def test_any_cut_recovers_the_finished_writes(
    writes: list[list[bytes]], data: st.DataObject
) -> None:
    image, _, write_starts = build(writes)
    cut = data.draw(st.integers(SEG_HEADER_SIZE, len(image)))
    result = check_active(image[:cut], PATH, 1)
    assert result is not None
    finished = [i for i, start in enumerate([*write_starts[1:], len(image)]) if start <= cut]
    expected_end = [*write_starts[1:], len(image)][finished[-1]] if finished else SEG_HEADER_SIZE
    assert result.committed_end == expected_end
    assert result.committed_next_lsn == 1 + sum(len(w) for w in writes[: len(finished)])


@settings(max_examples=300, deadline=None)
@given(writes=writes_strategy, data=st.data())
def test_any_damaged_byte_is_cut_only_in_the_last_write(
    writes: list[list[bytes]], data: st.DataObject
) -> None:
    image, rec_starts, write_starts = build(writes)
    pos = data.draw(st.integers(SEG_HEADER_SIZE, len(image) - 1))
    damaged = bytearray(image)
    damaged[pos] ^= data.draw(st.integers(1, 255))
    if pos >= write_starts[-1]:
        result = check_active(bytes(damaged), PATH, 1)
        assert result is not None and result.committed_end == write_starts[-1]
    else:
        with pytest.raises(LogCorruption) as err:
            check_active(bytes(damaged), PATH, 1)
        assert err.value.offset == max(s for s in rec_starts if s <= pos)
        assert err.value.path == PATH
