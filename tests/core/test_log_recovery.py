"""Recovery on real files: torn tails are cut, damage before the tail is refused."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from rstq.core.log import record
from rstq.core.log.api import LogCorruption
from rstq.core.log.local import LocalLog
from rstq.core.log.segment import SEG_HEADER_SIZE, encode_header, segment_name


def payload(i: int) -> bytes:
    return b"payload-%03d-" % i + bytes(i % 7)


def record_offsets(seg: Path) -> list[int]:
    """Start offset of every record of a (valid) segment, plus the end of file."""
    data = seg.read_bytes()
    offsets, pos = [], SEG_HEADER_SIZE
    while pos < len(data):
        offsets.append(pos)
        pos = record.decode_at(data, pos).end
    return [*offsets, pos]


def make_log(path: Path, count: int, segment_bytes: int = 1 << 20) -> list[Path]:
    """`count` records, each its own write; returns the segment files."""
    log = LocalLog.open_sync(path, segment_bytes=segment_bytes)

    async def fill() -> None:
        for i in range(1, count + 1):
            await log.append(payload(i))
        await log.close()

    asyncio.run(fill())
    return sorted(path.glob("*.seg"))


def flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def assert_recovers(path: Path, count: int) -> None:
    """Exactly records 1..count survive and appending continues densely."""
    log = LocalLog.open_sync(path)
    assert log.next_lsn == count + 1
    assert list(log.read(1)) == [(i, payload(i)) for i in range(1, count + 1)]

    async def more() -> None:
        assert await log.append(b"new") == count + 1
        await log.close()

    asyncio.run(more())
    log = LocalLog.open_sync(path)
    assert list(log.read(count + 1)) == [(count + 1, b"new")]


def test_cut_at_every_byte_of_the_last_record(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    (seg,) = make_log(pristine, 5)
    offsets = record_offsets(seg)
    for cut in range(offsets[-2], offsets[-1]):  # inside record 5, header included
        work = tmp_path / f"cut{cut}"
        shutil.copytree(pristine, work)
        with open(work / seg.name, "r+b") as f:
            f.truncate(cut)
        assert_recovers(work, 4)
        assert (work / seg.name).stat().st_size == offsets[-2] + len(record.encode(5, b"new"))


def test_cut_inside_a_batch_drops_the_whole_batch(tmp_path: Path) -> None:
    async def fill() -> None:
        log = await LocalLog.open(tmp_path)
        for i in range(1, 3):
            await log.append(payload(i))
        await log.append_batch([payload(3), payload(4), payload(5)])
        await log.close()

    asyncio.run(fill())
    (seg,) = sorted(tmp_path.glob("*.seg"))
    pristine = seg.read_bytes()
    offsets = record_offsets(seg)
    for cut in (offsets[2] + 1, offsets[3], offsets[4], offsets[5] - 1):
        seg.write_bytes(pristine[:cut])
        log = LocalLog.open_sync(tmp_path)
        assert (log.next_lsn, log.truncated_bytes) == (3, cut - offsets[2])
        assert [lsn for lsn, _ in log.read(1)] == [1, 2]


@pytest.mark.parametrize("field", ["crc", "length", "lsn", "payload"])
def test_flipped_bit_in_last_record_is_cut(tmp_path: Path, field: str) -> None:
    (seg,) = make_log(tmp_path, 5)
    start = record_offsets(seg)[-2]
    flip(seg, start + {"crc": 1, "length": 4, "lsn": 9, "payload": 20}[field])
    assert_recovers(tmp_path, 4)


@pytest.mark.parametrize("victim", [1, 3, 4])
def test_flipped_bit_mid_log_raises_with_file_and_offset(tmp_path: Path, victim: int) -> None:
    (seg,) = make_log(tmp_path, 5)
    start = record_offsets(seg)[victim - 1]
    for pos in range(start, start + record.HEADER_SIZE + 4):  # header and some payload
        copy = tmp_path / f"pos{pos}"
        shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("pos*"))
        flip(copy / seg.name, pos)
        with pytest.raises(LogCorruption) as err:
            LocalLog.open_sync(copy)
        assert err.value.path == str(copy / seg.name)
        assert err.value.offset == start
        assert f"offset {start}" in str(err.value)
    # Refusing to open left the evidence alone.
    assert (copy / seg.name).stat().st_size == seg.stat().st_size


def test_zeroed_record_followed_by_valid_writes_is_corruption(tmp_path: Path) -> None:
    (seg,) = make_log(tmp_path, 5)
    offsets = record_offsets(seg)
    data = bytearray(seg.read_bytes())
    data[offsets[1] : offsets[2]] = bytes(offsets[2] - offsets[1])
    seg.write_bytes(bytes(data))
    with pytest.raises(LogCorruption) as err:
        LocalLog.open_sync(tmp_path)
    assert err.value.offset == offsets[1]


def test_flipped_bit_in_non_last_segment_raises(tmp_path: Path) -> None:
    segs = make_log(tmp_path, 30, segment_bytes=150)
    assert len(segs) >= 3
    for seg in segs[:-1]:
        offsets = record_offsets(seg)
        for start in (offsets[0], offsets[-2]):  # first and last record of a sealed segment
            copy = tmp_path.parent / f"{tmp_path.name}-copy"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(tmp_path, copy)
            flip(copy / seg.name, start + record.HEADER_SIZE)
            with pytest.raises(LogCorruption) as err:
                LocalLog.open_sync(copy)
            assert (err.value.path, err.value.offset) == (str(copy / seg.name), start)


def test_cut_non_last_segment_raises(tmp_path: Path) -> None:
    segs = make_log(tmp_path, 30, segment_bytes=150)
    offsets = record_offsets(segs[0])
    with open(segs[0], "r+b") as f:
        f.truncate(offsets[-1] - 3)
    with pytest.raises(LogCorruption) as err:
        LocalLog.open_sync(tmp_path)
    assert (err.value.path, err.value.offset) == (str(segs[0]), offsets[-2])


def test_missing_middle_segment_raises(tmp_path: Path) -> None:
    segs = make_log(tmp_path, 30, segment_bytes=150)
    segs[1].unlink()
    with pytest.raises(LogCorruption, match="expected"):
        LocalLog.open_sync(tmp_path)


def test_torn_creation_of_a_new_segment_is_reset(tmp_path: Path) -> None:
    make_log(tmp_path, 3)
    torn = tmp_path / segment_name(4)
    torn.write_bytes(encode_header(4)[:5])
    log = LocalLog.open_sync(tmp_path)
    assert (log.first_lsn, log.next_lsn) == (1, 4)
    assert torn.read_bytes() == encode_header(4)
    assert [lsn for lsn, _ in log.read(1)] == [1, 2, 3]


def test_clean_reopen_truncates_nothing(tmp_path: Path) -> None:
    (seg,) = make_log(tmp_path, 5)
    size = seg.stat().st_size
    log = LocalLog.open_sync(tmp_path)
    assert log.truncated_bytes == 0 and seg.stat().st_size == size
