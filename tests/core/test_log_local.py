"""LocalLog behaviour: append/read/reopen, segment rolls, trim, group commit, close."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from rstq.core.log import record
from rstq.core.log.api import FsyncPolicy, Log, LogClosed, LogError
from rstq.core.log.local import LocalLog


def payload(i: int) -> bytes:
    return f"record-{i}-".encode() * (1 + i % 5)


def segment_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("*.seg"))


async def test_append_read_reopen(tmp_path: Path) -> None:
    log = await LocalLog.open(tmp_path)
    assert (log.first_lsn, log.next_lsn, log.durable_lsn) == (1, 1, 0)
    assert [await log.append(payload(i)) for i in range(1, 11)] == list(range(1, 11))
    assert await log.append_batch([payload(11), payload(12)]) == 12
    assert log.durable_lsn == 12
    assert list(log.read(1)) == [(i, payload(i)) for i in range(1, 13)]
    assert list(log.read(11)) == [(11, payload(11)), (12, payload(12))]
    await log.close()

    log = await LocalLog.open(tmp_path)
    assert (log.first_lsn, log.next_lsn, log.durable_lsn) == (1, 13, 12)
    assert next(iter(log.read(5))) == (5, payload(5))
    assert await log.append(b"after") == 13
    await log.close()
    assert segment_files(tmp_path) == ["00000000000000000001.seg"]


async def test_satisfies_the_log_protocol(tmp_path: Path) -> None:
    log: Log = await LocalLog.open(tmp_path)
    assert await log.append(b"x") == 1
    await log.close()


async def test_lsns_stay_dense_across_segment_rolls(tmp_path: Path) -> None:
    log = await LocalLog.open(tmp_path, segment_bytes=256)
    for i in range(1, 61):
        assert await log.append(payload(i)) == i
    assert await log.append_batch([payload(i) for i in range(61, 71)]) == 70
    await log.close()
    names = segment_files(tmp_path)
    assert len(names) > 5 and names[0] == "00000000000000000001.seg"

    log = LocalLog.open_sync(tmp_path, segment_bytes=256)
    assert list(log.read(1)) == [(i, payload(i)) for i in range(1, 71)]
    for start in (1, 2, 17, 33, 69, 70):  # every position, whichever segment holds it
        assert next(iter(log.read(start))) == (start, payload(start))
    assert list(log.read(71)) == []
    log.close_sync()


async def test_read_seeks_through_the_sparse_index(tmp_path: Path) -> None:
    log = await LocalLog.open(tmp_path, fsync=FsyncPolicy.NONE)
    big = [bytes([i % 256]) * 3000 for i in range(200)]  # ~600 KB: several index entries
    for p in big:
        await log.append(p)
    await log.close()
    log = LocalLog.open_sync(tmp_path)
    for start in (1, 100, 157, 200):
        assert [lsn for lsn, _ in log.read(start)] == list(range(start, 201))
        assert next(iter(log.read(start)))[1] == big[start - 1]


async def test_trim_deletes_only_whole_segments_below(tmp_path: Path) -> None:
    log = await LocalLog.open(tmp_path, segment_bytes=200)
    for i in range(1, 41):
        await log.append(payload(i))
    firsts = [int(name[:20]) for name in segment_files(tmp_path)]
    assert len(firsts) >= 4
    below = firsts[2] + 1  # inside the third segment: it must survive, the first two go
    await log.trim(below)
    assert [int(n[:20]) for n in segment_files(tmp_path)] == firsts[2:]
    assert log.first_lsn == firsts[2]
    assert next(iter(log.read(1))) == (firsts[2], payload(firsts[2]))
    await log.trim(10_000)  # never the active segment
    assert [int(n[:20]) for n in segment_files(tmp_path)] == firsts[-1:]
    await log.close()

    log = await LocalLog.open(tmp_path, segment_bytes=200)
    assert log.first_lsn == firsts[-1] and log.next_lsn == 41
    assert await log.append(b"next") == 41
    assert [lsn for lsn, _ in log.read(0)] == list(range(firsts[-1], 42))
    await log.close()


async def test_trim_everything_leaves_an_empty_log_that_remembers_its_position(
    tmp_path: Path,
) -> None:
    log = await LocalLog.open(tmp_path, segment_bytes=1)  # every write rolls the next one
    for i in range(1, 6):
        await log.append(payload(i))
    await log.trim(6)
    assert (log.first_lsn, log.next_lsn) == (5, 6)  # the active segment holds 5
    await log.close()
    log = LocalLog.open_sync(tmp_path)
    assert (log.first_lsn, log.next_lsn, log.durable_lsn) == (5, 6, 5)


class GatedSync:
    """fsync stand-in: counts calls; the first one blocks until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        if not self.release.wait(timeout=10):
            raise TimeoutError("gate never released")


async def test_group_commit_batches_concurrent_appends(tmp_path: Path) -> None:
    gate = GatedSync()
    log = await LocalLog.open(tmp_path, sync_file=gate)
    first = asyncio.ensure_future(log.append(payload(0)))
    await asyncio.to_thread(gate.entered.wait, 10)  # the first write's fsync is in flight
    tasks = [asyncio.ensure_future(log.append(payload(i))) for i in range(1, 1000)]
    await asyncio.sleep(0)  # each task enqueues synchronously on its first step
    assert log.next_lsn == 1001 and log.durable_lsn == 0
    gate.release.set()
    lsns = await asyncio.gather(first, *tasks)
    assert lsns == list(range(1, 1001))  # each caller gets its own LSN, in submission order
    assert gate.calls == 2  # one fsync for the first append, one for the other 999
    assert list(log.read(1)) == [(i + 1, payload(i)) for i in range(1000)]
    await log.close()


async def test_group_commit_under_free_running_load(tmp_path: Path) -> None:
    calls = 0

    def counting_sync(fd: int) -> None:
        nonlocal calls
        calls += 1

    log = await LocalLog.open(tmp_path, sync_file=counting_sync)

    async def appender(k: int) -> list[int]:
        return [await log.append(b"%d:%d" % (k, i)) for i in range(50)]

    results = await asyncio.gather(*(appender(k) for k in range(32)))
    everything = sorted(lsn for lsns in results for lsn in lsns)
    assert everything == list(range(1, 1601))
    for lsns in results:
        assert lsns == sorted(lsns)  # each appender's records stay in its order
    # Each round of 32 appends shares a write at most once per appender: far fewer fsyncs.
    assert calls <= 1600 // 4
    records = dict(log.read(1))
    for k, lsns in enumerate(results):
        assert [records[lsn] for lsn in lsns] == [b"%d:%d" % (k, i) for i in range(50)]
    await log.close()


async def test_close_finishes_pending_appends_and_rejects_new_ones(tmp_path: Path) -> None:
    log = await LocalLog.open(tmp_path, fsync=FsyncPolicy.NONE)
    pending = [asyncio.ensure_future(log.append(payload(i))) for i in range(100)]
    await asyncio.sleep(0)
    await log.close()
    assert await asyncio.gather(*pending) == list(range(1, 101))
    with pytest.raises(LogClosed):
        await log.append(b"late")
    log = LocalLog.open_sync(tmp_path)
    assert log.next_lsn == 101


async def test_failed_fsync_fails_the_batch_and_poisons_the_log(tmp_path: Path) -> None:
    def broken_sync(fd: int) -> None:
        raise OSError(5, "EIO")

    log = await LocalLog.open(tmp_path, sync_file=broken_sync)
    with pytest.raises(LogError, match="EIO"):
        await log.append(b"x")
    with pytest.raises(LogError, match="writer failed"):
        await log.append(b"y")
    assert log.durable_lsn == 0 and list(log.read(1)) == []
    await log.close()


async def test_rejects_empty_batch_and_oversized_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record, "MAX_PAYLOAD", 10)
    log = await LocalLog.open(tmp_path)
    with pytest.raises(ValueError):
        await log.append_batch([])
    with pytest.raises(ValueError, match="limit"):
        await log.append_batch([b"fine", b"x" * 11])  # all or nothing: no LSN consumed
    assert log.next_lsn == 1
    assert await log.append(b"y" * 10) == 1
    assert list(log.read(1)) == [(1, b"y" * 10)]
    await log.close()
