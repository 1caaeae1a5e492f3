"""Disk faults at server level: a torn or cut log tail, a full filesystem, a corrupt snapshot.

The full disk is a real one when this process may mount (a 8 MiB tmpfs holds the data dir);
the log-level test injects ENOSPC into the writer's write() and runs everywhere.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from rstq.core.log import writer as log_writer
from rstq.core.log.api import LogFull
from rstq.core.log.local import LocalLog
from rstq.core.partitioning import partition_key_for
from rstq.core.server import Server
from rstq.core.snapshot import SnapshotError, load_snapshot

from tests.support.harness import chaos
from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_http import ingress_url, running_server
from tests.support.harness.rstq_server import RstqServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _adds(client: httpx.AsyncClient, base: str, key: str, n: int, tag: str) -> None:
    for i in range(n):
        r = await client.post(f"{base}/Counter/{key}/add", json=1,
                              headers={"idempotency-key": f"{tag}-{i}"})
        assert r.status_code == 200, r.text


async def _counter(client: httpx.AsyncClient, base: str, key: str) -> int:
    r = await client.post(f"{base}/Counter/{key}/get")
    assert r.status_code == 200, r.text
    return int(r.json())


def _last_segment(data_dir: Path) -> Path:
    """The active segment of the partition log that holds the most bytes."""
    logs = sorted((data_dir / "partitions").glob("*/log"),
                  key=lambda d: sum(p.stat().st_size for p in d.iterdir()))
    return sorted(logs[-1].glob("*.seg"))[-1]


# --- log tail --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [
    pytest.param("torn_append", marks=pytest.mark.skipif(not chaos.LONG, reason="long run")),
    "cut_mid_record"])
async def test_damaged_log_tail_recovers(service: HypercornProcess, tmp_path: Path,
                                         damage: str) -> None:
    srv = RstqServer(data_dir=tmp_path / "data", extra_args=["--loop", "asyncio"]).start()
    try:
        srv.register(service.url)
        async with httpx.AsyncClient(timeout=30) as client:
            for k in range(4):
                await _adds(client, srv.ingress_url, f"tail-{k}", 5, f"{damage}-{k}")
            srv.kill()
            seg = _last_segment(srv.data_dir)
            data = seg.read_bytes()
            if damage == "torn_append":  # an unfinished write: half of a copy of the tail
                with open(seg, "ab") as f:
                    f.write(data[-64:][:32])
            else:  # the disk lost the end of the last (acknowledged) record
                os.truncate(seg, len(data) - 7)
            probe = tmp_path / "probe"  # what recovery will do, on a copy
            shutil.copytree(seg.parent, probe)
            lg = LocalLog.open_sync(probe)
            assert lg.truncated_bytes > 0
            lg.close_sync()
            srv.start()

            async def exact() -> bool:
                return all([await _counter(client, srv.ingress_url, f"tail-{k}") == 5
                            for k in range(4)])

            await chaos.wait_for("counters to be exact again", exact, 30)
            await _adds(client, srv.ingress_url, "tail-0", 1, f"{damage}-after")
            assert await _counter(client, srv.ingress_url, "tail-0") == 6
        srv.kill()
        chaos.verify_logs(srv.data_dir)
    finally:
        srv.cleanup()
    chaos.add("disk", f"log_tail_{damage}")


# --- full disk ---------------------------------------------------------------------------------


async def test_enospc_in_the_log_writer_refuses_then_resumes(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             ) -> None:
    """Injected: write() hands half the batch to the file, then fails with ENOSPC."""
    full = {"on": False}
    real_write_all = log_writer.write_all

    def write_all(fd: int, data: Any) -> None:
        if full["on"]:
            real_write_all(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write_all(fd, data)

    monkeypatch.setattr(log_writer, "write_all", write_all)
    lg = await LocalLog.open(tmp_path / "log")
    assert await lg.append(b"a") == 1
    full["on"] = True
    results = await asyncio.gather(lg.append(b"b"), lg.append_batch([b"c", b"d"]),
                                   return_exceptions=True)
    assert all(isinstance(r, LogFull) for r in results), results
    full["on"] = False
    assert await lg.append(b"e") == 2  # the failed LSNs are handed out again
    await lg.close()
    lg = LocalLog.open_sync(tmp_path / "log")
    assert lg.truncated_bytes == 0  # the partial write was cut back at once
    assert list(lg.read(1)) == [(1, b"a"), (2, b"e")]
    lg.close_sync()
    chaos.add("disk", "enospc_injected_log_level", 2)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)],
                       capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the full disk "
                    "is covered by the injected-ENOSPC log-level test")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(fs: Path) -> Path:
    filler = fs / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * (256 * 1024)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
        else:  # pragma: no cover
            raise AssertionError("unreachable")
    while True:  # the last partial chunk too
        try:
            with open(filler, "ab") as f:
                f.write(b"\0" * 512)
        except OSError:
            return filler


async def test_full_filesystem_refuses_writes_and_resumes(service: HypercornProcess,
                                                          small_fs: Path) -> None:
    srv = RstqServer(data_dir=small_fs / "data", partitions=2,
                     extra_args=["--loop", "asyncio"]).start()
    refused = 0
    try:
        srv.register(service.url)
        async with httpx.AsyncClient(timeout=30) as client:
            await _adds(client, srv.ingress_url, "full", 10, "before")
            filler = _fill(small_fs)
            errors: set[str] = set()
            sent = 0
            while refused < 5:  # the segment's last page may still take a few small records
                assert sent < 200, "the full disk never refused a write"
                try:
                    r = await client.post(f"{srv.ingress_url}/Counter/full/add", json=1,
                                          headers={"idempotency-key": f"during-{sent}"},
                                          timeout=5)
                except httpx.TimeoutException:  # stored, its attempt waits for space
                    sent += 1
                    continue
                sent += 1
                assert r.status_code in (200, 503), (r.status_code, r.text)
                if r.status_code == 503:
                    errors.add(r.json()["message"])
                    refused += 1
            assert all("No space left on device" in m for m in errors), errors
            assert srv.proc is not None and srv.proc.poll() is None  # still up
            filler.unlink()

            async def resumed() -> bool:
                r = await client.post(f"{srv.ingress_url}/Counter/full/add", json=1,
                                      headers={"idempotency-key": "after-0"})
                return r.status_code == 200

            await chaos.wait_for("writes to be accepted again", resumed, 30)
            await _adds(client, srv.ingress_url, "full", sent, "during")  # each one, again
            assert await _counter(client, srv.ingress_url, "full") == 11 + sent
        srv.kill()
        chaos.verify_logs(srv.data_dir)
        srv.start()  # and after a restart, everything acknowledged is there
        async with httpx.AsyncClient(timeout=30) as client:
            assert await _counter(client, srv.ingress_url, "full") == 11 + sent
    finally:
        srv.cleanup()
    chaos.add("disk", "enospc_real_tmpfs_refusals", refused)


# --- corrupt snapshot ----------------------------------------------------------------------------


@asynccontextmanager
async def _small_segment_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                store: str = "rocksdb") -> AsyncIterator[Server]:
    real_open = LocalLog.open.__func__  # type: ignore[attr-defined]

    async def open_small(cls: type[LocalLog], path: Any, *a: Any, **kw: Any) -> LocalLog:
        kw["segment_bytes"] = 4096  # many segments, so snapshots really trim the log
        return await real_open(cls, path, *a, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(LocalLog, "open", classmethod(open_small))
    async with running_server(tmp_path, fake_invoker=False, snapshot_every=30,
                              store=store) as (server, _):
        yield server


async def test_corrupt_snapshot_falls_back_to_the_previous_one(
        service: HypercornProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "snap"
    async with _small_segment_server(tmp_path, monkeypatch, "snapshot") as server:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(f"http://127.0.0.1:{server.admin_port}/deployments",
                                  json={"uri": service.url})
            assert r.status_code == 201, r.text
            await _adds(client, ingress_url(server), key, 40, "snap")
        part = server.partition_for_key(partition_key_for("Counter", key)).partition_id
    pdir = tmp_path / "data" / "partitions" / str(part)
    snaps = sorted(p for p in (pdir / "snapshots").iterdir() if not p.name.startswith("."))
    assert len(snaps) == 2, snaps
    first_seg = sorted((pdir / "log").glob("*.seg"))[0]
    assert int(first_seg.stem) > 1, "the log was never trimmed: the test proves nothing"
    victim = snaps[-1] / "kv.arrow"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(SnapshotError):
        load_snapshot(snaps[-1])
    t0 = time.monotonic()
    async with _small_segment_server(tmp_path, monkeypatch, "snapshot") as server:
        assert server.processors[part].stats.snapshot_lsn == int(snaps[0].name)
        async with httpx.AsyncClient(timeout=30) as client:
            assert await _counter(client, ingress_url(server), key) == 40
            await _adds(client, ingress_url(server), key, 1, "snap-after")
            assert await _counter(client, ingress_url(server), key) == 41
    chaos.add("disk", "corrupt_snapshots_fallen_back")
    chaos.record("disk", corrupt_snapshot_restart_s=round(time.monotonic() - t0, 1))


async def test_a_damaged_store_falls_back_to_a_checkpoint(
        service: HypercornProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The partition store's own files torn (CURRENT, MANIFEST, WAL) after a run that trimmed
    the log: the newest checkpoint and the log after it give back every acknowledged add."""
    key = "store"
    async with _small_segment_server(tmp_path, monkeypatch) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(f"http://127.0.0.1:{server.admin_port}/deployments",
                                  json={"uri": service.url})
            assert r.status_code == 201, r.text
            await _adds(client, ingress_url(server), key, 40, "store")
        part = server.partition_for_key(partition_key_for("Counter", key)).partition_id
    pdir = tmp_path / "data" / "partitions" / str(part)
    cps = sorted(p for p in (pdir / "checkpoints").iterdir() if p.name.isdigit())
    assert len(cps) == 2, cps
    first_seg = sorted((pdir / "log").glob("*.seg"))[0]
    assert int(first_seg.stem) > 1, "the log was never trimmed: the test proves nothing"
    for f in (pdir / "store").iterdir():  # SST files are immutable and shared with checkpoints
        if f.is_file() and not f.name.endswith(".sst"):
            f.unlink()
            f.write_bytes(b"torn")
    t0 = time.monotonic()
    async with _small_segment_server(tmp_path, monkeypatch) as server:
        async with httpx.AsyncClient(timeout=30) as client:
            assert await _counter(client, ingress_url(server), key) == 40
            await _adds(client, ingress_url(server), key, 1, "store-after")
            assert await _counter(client, ingress_url(server), key) == 41
    assert list(pdir.glob("store.damaged-*"))
    chaos.add("disk", "damaged_stores_fallen_back")
    chaos.record("disk", damaged_store_restart_s=round(time.monotonic() - t0, 1))
