"""Benchmark: LocalLog group commit against the disk's raw write+fsync limit.

    python bench/log_append.py [--seconds 3] [--dir /tmp] [--size 200]

(a) raw write + fdatasync of SIZE-byte records, 1 and 64 per fsync (what the disk allows);
(b) LocalLog.append throughput and append-to-durable latency at 1, 32 and 256 appenders;
(c) latency at a paced 1,000 appends/s, next to raw write+fdatasync at the same pace.
Runs in a temporary directory under --dir, which should be on the data's filesystem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rstq.core.log.api import FsyncPolicy
from rstq.core.log.local import LocalLog

TARGET_RATIO = 0.5
TARGET_P99_MS = 2.0


@dataclass
class Result:
    name: str
    rate: float  # records per second
    latencies: list[float]  # seconds, per record (or per fsync for raw)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def raw(directory: Path, size: int, per_sync: int, seconds: float, rate: int = 0) -> Result:
    """Write+fdatasync back to back, or paced at `rate` writes/s when rate > 0."""
    sync = getattr(os, "fdatasync", os.fsync)
    path = directory / f"raw-{per_sync}.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    chunk = os.urandom(size) * per_sync
    lat: list[float] = []
    records = 0
    start = time.perf_counter()
    try:
        while (now := time.perf_counter()) - start < seconds:
            if rate and (ahead := start + len(lat) / rate - now) > 0:
                time.sleep(ahead)
                now = time.perf_counter()
            os.write(fd, chunk)
            sync(fd)
            lat.append(time.perf_counter() - now)
            records += per_sync
    finally:
        os.close(fd)
        path.unlink()
    name = f"raw {per_sync}/fsync" + (f" paced {rate}/s" if rate else "")
    return Result(name, records / (time.perf_counter() - start), lat)


async def rstq_concurrent(
    directory: Path, size: int, appenders: int, seconds: float, policy: FsyncPolicy
) -> Result:
    log = await LocalLog.open(directory / f"log-{appenders}-{policy.value}", policy)
    payload = os.urandom(size)
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def appender() -> None:
        clock = time.perf_counter
        while (t0 := clock()) < deadline:
            await log.append(payload)
            lat.append(clock() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(appender() for _ in range(appenders)))
    elapsed = time.perf_counter() - start
    await log.close()
    suffix = "" if policy is FsyncPolicy.BATCH else ", no fsync"
    return Result(f"rstq {appenders} appenders{suffix}", len(lat) / elapsed, lat)


async def rstq_paced(directory: Path, size: int, rate: int, seconds: float) -> Result:
    log = await LocalLog.open(directory / f"log-paced-{rate}", FsyncPolicy.BATCH)
    payload = os.urandom(size)
    lat: list[float] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        t0 = time.perf_counter()
        await log.append(payload)
        lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())  # open loop: do not wait for the previous append
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await log.close()
    return Result(f"rstq paced {rate}/s", len(lat) / elapsed, lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="parent of the temp dir")
    parser.add_argument("--size", type=int, default=200, help="record payload bytes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="rstq-bench-") as tmp:
        directory = Path(tmp)
        results = [raw(directory, args.size, n, args.seconds) for n in (1, 64)]
        for n in (1, 32, 256):
            run = rstq_concurrent(directory, args.size, n, args.seconds, FsyncPolicy.BATCH)
            results.append(asyncio.run(run))
        # The disk's own latency at that rate is the floor for the p99 target.
        raw_paced = raw(directory, args.size, 1, args.seconds, rate=1000)
        paced = asyncio.run(rstq_paced(directory, args.size, 1000, args.seconds))
        results += [raw_paced, paced]
        # CPU ceiling of the Python side: same load without fsync (FsyncPolicy.NONE).
        run = rstq_concurrent(directory, args.size, 256, args.seconds, FsyncPolicy.NONE)
        results.append(asyncio.run(run))

    limit = results[1].rate
    print(f"\n{args.size}-byte records, {args.seconds:g} s each, in {args.dir}")
    print(f"{'case':<32}{'records/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'vs raw 64':>11}")
    for r in results:
        ratio = "" if "paced" in r.name else f"{r.rate / limit:>10.0%}"
        print(f"{r.name:<32}{r.rate:>12,.0f}{r.pct(0.5):>9.3f}{r.pct(0.99):>9.3f}{ratio}")
    print("(raw latencies are per write+fdatasync; rstq latencies are append-to-durable)")
    best = max(r.rate for r in results[2:5])
    print(f"\nbest rstq / batched raw limit: {best / limit:.0%} (target >= {TARGET_RATIO:.0%})")
    print(
        f"p99 at 1,000 appends/s: {paced.pct(0.99):.3f} ms (target <= {TARGET_P99_MS} ms);"
        f" mean {statistics.fmean(paced.latencies) * 1e3:.3f} ms;"
        f" raw write+fdatasync p99 at the same pace: {raw_paced.pct(0.99):.3f} ms"
    )


if __name__ == "__main__":
    main()
