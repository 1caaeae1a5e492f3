"""Benchmark: the partition store's two engines (RocksDB via rocksdict, LMDB) on a
partition-shaped workload. Run by hand; not part of the test suite.

    .venv/bin/python bench/store_engines.py [--sizes 100000,1000000]
        [--engines rocksdb,lmdb] [--seconds 3] [--dir /tmp] [--cache-mb 64]

Per invocation (rstq.core.store.keys layout, invocation ids random like real ones): put a
status record (300 B) and its input journal entry; 3-5 more journal entries (100-400 B), 1-2
of them SetState with a state put (distinct object keys); on completion a status update and
a retention-index row; `--lag` invocations later (retention), a purge command deleting its
journal rows and retention row. Commands of 64 invocations are interleaved step by step, and
every batch also writes the applied-LSN row. Values are random bytes (incompressible: the
on-disk sizes are an upper bound).

Each engine runs in its own child process (RSS is per engine). Measured, at every size:
- group commit: commands per write batch 1, 16, 128, with sync (fsync per batch) off and on,
  `--seconds` each: µs per store operation (batch building + write), batches/s, p50/p99
  latency of a write;
- the bulk load up to the size (128 commands per batch, no sync);
- then (RocksDB) the wait for its compactions to finish, so that the reads below measure
  the engine rather than two cores shared with compaction;
- point gets: status rows of the 10k newest invocations (hot) and of any (uniform);
- a full scan of the status table (live, and through a snapshot), rows/s;
- checkpoint time (and bytes it copied rather than linked), reopen time, disk size, RSS;
- once, at the first size: how much another Python thread runs while the store works (does the
  library release the GIL?).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rstq.core.store import PartitionStore, open_store
from rstq.core.store import keys as K

WAVE = 64  # invocations whose commands are interleaved
Op = tuple[bytes, bytes | None]  # put (value) or delete (None)


class Workload:
    """A deterministic stream of commands (each a list of ops) for invocations 0, 1, ..."""

    def __init__(self, seed: int, lag: int) -> None:
        self.rng = random.Random(seed)
        self.pool = self.rng.randbytes(1 << 20)
        self.lag = lag
        self.next_inv = 0
        self.journal_len: dict[int, int] = {}  # invocations awaiting their purge

    def value(self, n: int) -> bytes:
        off = self.rng.randrange(0, len(self.pool) - n)
        return self.pool[off:off + n]

    @staticmethod
    def inv(i: int) -> bytes:
        pk = (i * 0x9E3779B97F4A7C15 + 0x1234567) & (2**64 - 1)  # spread like random keys
        return pk.to_bytes(8, "big") + i.to_bytes(16, "big")

    def wave(self) -> Iterator[list[Op]]:
        first = self.next_inv
        invs = list(range(first, first + WAVE))
        self.next_inv += WAVE
        plans = []
        for i in invs:
            n_journal = self.rng.randint(4, 6)
            n_state = self.rng.randint(1, 2)
            plans.append((i, n_journal, set(self.rng.sample(range(1, n_journal), n_state))))
        # step 0: invoke
        for i, _, _ in plans:
            yield [(K.status_key(self.inv(i)), self.value(300)),
                   (K.journal_key(self.inv(i), 0), self.value(200))]
        for step in range(1, 6):
            for i, n_journal, state_steps in plans:
                if step >= n_journal:
                    continue
                raw = self.inv(i)
                cmd: list[Op] = [(K.journal_key(raw, step),
                                  self.value(self.rng.randint(100, 400)))]
                if step in state_steps:
                    cmd.append((K.state_key("svc", f"user-{i}", b"s%d" % step),
                                self.value(self.rng.randint(50, 200))))
                yield cmd
        for i, n_journal, _ in plans:  # completion
            raw = self.inv(i)
            yield [(K.status_key(raw), self.value(300)),
                   (K.retention_key(i, raw), b"")]
            self.journal_len[i] = n_journal
        # purge the wave that is `lag` invocations old
        old = first - self.lag
        if old >= 0:
            for i in range(old, old + WAVE):
                raw = self.inv(i)
                n_journal = self.journal_len.pop(i)
                yield [(K.journal_key(raw, j), None) for j in range(n_journal)] + [
                    (K.retention_key(i, raw), None)]

    def commands(self) -> Iterator[list[Op]]:
        while True:
            yield from self.wave()


class Loader:
    def __init__(self, store: PartitionStore, work: Workload) -> None:
        self.store = store
        self.work = work
        self.stream = work.commands()
        self.lsn = 0

    def run(self, per_batch: int, sync: bool, *, seconds: float = 0.0,
            until_inv: int = 0) -> dict[str, float]:
        """Write batches of `per_batch` commands for `seconds`, or until `until_inv`
        invocations were started; times only the store (batch building + write)."""
        store, lat, ops, in_store = self.store, [], 0, 0.0
        first_inv = self.work.next_inv
        fsm = K.fsm_key(K.Fsm.APPLIED_LSN)
        wall = time.perf_counter()
        while True:
            if seconds and time.perf_counter() - wall >= seconds:
                break
            if until_inv and self.work.next_inv >= until_inv:
                break
            cmds = [next(self.stream) for _ in range(per_batch)]
            self.lsn += per_batch
            t0 = time.perf_counter()
            batch = store.batch()
            for cmd in cmds:
                for key, value in cmd:
                    if value is None:
                        batch.delete(key)
                    else:
                        batch.put(key, value)
            batch.put(fsm, K.u64(self.lsn))
            t1 = time.perf_counter()
            store.write(batch, sync=sync)
            t2 = time.perf_counter()
            lat.append(t2 - t1)
            in_store += t2 - t0
            ops += len(batch)
        lat.sort()
        n = len(lat)
        return {
            "batches": n,
            "ops": ops,
            "us_per_op": in_store / ops * 1e6 if ops else float("nan"),
            "batches_per_s": n / in_store if in_store else float("nan"),
            "cmds_per_s": n * per_batch / in_store if in_store else float("nan"),
            "invocations_per_s": (self.work.next_inv - first_inv) / in_store
            if in_store else float("nan"),
            "p50_ms": lat[n // 2] * 1e3 if n else float("nan"),
            "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else float("nan"),
        }


def disk_bytes(path: Path) -> tuple[int, int]:
    """(allocated bytes, allocated bytes of files not hard-linked elsewhere)."""
    total = own = 0
    for f in path.rglob("*"):
        if f.is_file():
            st = f.stat()
            total += st.st_blocks * 512
            if st.st_nlink == 1:
                own += st.st_blocks * 512
    return total, own


def rss() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[name] = int(rest.split()[0]) / 1024  # MB
    return out


def settle(store: PartitionStore, limit: float = 120.0) -> float:
    """Wait for RocksDB's flushes and compactions to finish (the reads below then measure
    the engine, not the 2 cores shared with compaction); seconds waited."""
    prop = getattr(store, "property_int", None)
    if prop is None:
        return 0.0
    t0 = time.perf_counter()
    names = ("rocksdb.compaction-pending", "rocksdb.num-running-compactions",
             "rocksdb.num-running-flushes")
    while time.perf_counter() - t0 < limit and any(prop(n) for n in names):
        time.sleep(0.1)
    return time.perf_counter() - t0


def timed_gets(store: PartitionStore, keys: list[bytes]) -> float:
    t0 = time.perf_counter()
    for k in keys:
        store.get(k)
    return (time.perf_counter() - t0) / len(keys) * 1e6


def timed_scan(view: Any) -> tuple[int, float]:
    lo, hi = K.table_range(K.Table.STATUS)
    t0 = time.perf_counter()
    n = 0
    for _ in view.iterate(lo, hi):
        n += 1
    return n, n / (time.perf_counter() - t0)


def gil_stall(fn: Callable[[], object]) -> tuple[float, float]:
    """(seconds `fn` took, longest stretch in it during which another Python thread could
    not run). A call holding the GIL stalls the other thread for its whole length; one
    releasing it (or Python code between short calls) for at most the switch interval
    (5 ms)."""
    stop = threading.Event()
    gaps: list[float] = []

    def spin() -> None:
        last = time.perf_counter()
        worst = 0.0
        while not stop.is_set():
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now
        gaps.append(worst)

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.02)
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    stop.set()
    t.join()
    return dt, gaps[0]


def child(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix=f"store-bench-{engine}-", dir=args.dir))
    path = base / "store"
    store = open_store(path, engine, cache_bytes=args.cache_mb << 20)
    work = Workload(seed=14, lag=args.lag)
    loader = Loader(store, work)
    result: dict[str, Any] = {"engine": engine, "sizes": {}}
    rng = random.Random(7)
    try:
        for size in args.sizes:
            at: dict[str, Any] = {}
            Path("/proc/self/clear_refs").write_text("5")  # peak RSS (VmHWM) from here
            t0 = time.perf_counter()
            at["load"] = loader.run(128, False, until_inv=size)
            at["load"]["wall_s"] = time.perf_counter() - t0
            at["invocations"] = work.next_inv
            at["matrix"] = {}
            for per_batch in args.batches:
                for sync in (False, True):
                    at["matrix"][f"{per_batch}/{'sync' if sync else 'nosync'}"] = loader.run(
                        per_batch, sync, seconds=args.seconds)
            at["rss"] = rss()  # before the probe key lists below add to the heap
            at["settle_s"] = settle(store)
            n = work.next_inv
            hot = [K.status_key(work.inv(rng.randrange(max(0, n - 10_000), n)))
                   for _ in range(100_000)]
            uniform = [K.status_key(work.inv(rng.randrange(0, n))) for _ in range(100_000)]
            at["get_hot_us"] = timed_gets(store, hot)
            at["get_uniform_us"] = timed_gets(store, uniform)
            del uniform
            at["scan_rows"], at["scan_rows_per_s"] = timed_scan(store)
            with store.snapshot() as snap:
                _, at["snap_scan_rows_per_s"] = timed_scan(snap)
            cp = base / f"cp-{size}"
            t0 = time.perf_counter()
            store.checkpoint(cp)
            at["checkpoint_ms"] = (time.perf_counter() - t0) * 1e3
            at["checkpoint_bytes"], at["checkpoint_copied_bytes"] = disk_bytes(cp)
            t0 = time.perf_counter()
            store.checkpoint(base / f"cp-{size}-again")  # right after: nothing new to flush
            at["checkpoint_again_ms"] = (time.perf_counter() - t0) * 1e3
            shutil.rmtree(cp)
            shutil.rmtree(base / f"cp-{size}-again")
            at["rss_end"] = rss()
            at["disk_bytes"] = disk_bytes(path)[0]
            t0 = time.perf_counter()
            store.close()
            at["close_ms"] = (time.perf_counter() - t0) * 1e3
            t0 = time.perf_counter()
            store = open_store(path, engine, cache_bytes=args.cache_mb << 20)
            store.get(hot[0])
            at["reopen_ms"] = (time.perf_counter() - t0) * 1e3
            loader.store = store
            result["sizes"][str(size)] = at
        result["gil"] = gil_probe(engine, base)
    finally:
        store.close()
        shutil.rmtree(base, ignore_errors=True)
    return result


def gil_probe(engine: str, base: Path) -> dict[str, list[float]]:
    """Single long library calls (so the measure is not blurred by per-call switching), on
    a scratch store: does another thread run meanwhile?"""
    out: dict[str, list[float]] = {}
    store = open_store(base / "gil", engine)
    big = os.urandom(64 << 20)
    rows = [(b"row%07d" % i, os.urandom(300)) for i in range(100_000)]

    def batch() -> Any:
        b = store.batch()
        for k, v in rows:
            b.put(k, v)
        return b

    b1, b2 = batch(), batch()
    out["write 100k rows (30 MB), no sync"] = list(gil_stall(lambda: store.write(b1)))
    out["write 100k rows, sync"] = list(gil_stall(lambda: store.write(b2, sync=True)))
    if engine == "rocksdb":  # what store.write(sync=True) avoids: fsync inside write()
        from rocksdict import WriteOptions

        wo = WriteOptions()
        wo.sync = True
        b3 = batch()
        db = store._db  # type: ignore[attr-defined]
        out["rdict.write(sync=True) 100k rows"] = list(gil_stall(lambda: db.write(b3._rd, wo)))
    store.put(b"big", big)
    out["get of a 64 MB value"] = list(gil_stall(lambda: store.get(b"big")))
    out["scan step onto a 64 MB value"] = list(gil_stall(
        lambda: next(iter(store.iterate(b"big")))))
    out["checkpoint"] = list(gil_stall(lambda: store.checkpoint(base / "gil-cp")))
    store.close()
    shutil.rmtree(base / "gil", ignore_errors=True)
    shutil.rmtree(base / "gil-cp", ignore_errors=True)
    return out


def fmt(x: float, digits: int = 1) -> str:
    if x != x:  # nan
        return "-"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f}M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.0f}k"
    return f"{x:.{digits}f}"


def report(results: list[dict[str, Any]]) -> None:
    engines = [r["engine"] for r in results]
    sizes = list(results[0]["sizes"])
    for size in sizes:
        rows = [r["sizes"][size] for r in results]
        print(f"\n== {int(rows[0]['invocations']):,} invocations "
              f"(requested {int(size):,}) ==")
        print(f"{'':34}" + "".join(f"{e:>22}" for e in engines))

        def line(name: str, values: list[str]) -> None:
            print(f"{name:34}" + "".join(f"{v:>22}" for v in values))

        line("bulk load (128/batch): us/op", [fmt(r["load"]["us_per_op"], 2) for r in rows])
        line("  invocations/s (store time)", [fmt(r["load"]["invocations_per_s"], 0)
                                               for r in rows])
        for cell in rows[0]["matrix"]:
            line(f"batch {cell}: us/op, p50/p99 ms",
                 [f"{fmt(r['matrix'][cell]['us_per_op'], 2)}  "
                  f"{fmt(r['matrix'][cell]['p50_ms'], 2)}/{fmt(r['matrix'][cell]['p99_ms'], 2)}"
                  for r in rows])
        line("compaction backlog after load: s", [fmt(r["settle_s"]) for r in rows])
        line("get hot / uniform: us", [f"{fmt(r['get_hot_us'], 2)} / "
                                       f"{fmt(r['get_uniform_us'], 2)}" for r in rows])
        line("status scan live/snapshot: rows/s",
             [f"{fmt(r['scan_rows_per_s'])} / {fmt(r['snap_scan_rows_per_s'])}"
              for r in rows])
        line("status rows", [fmt(r["scan_rows"], 0) for r in rows])
        line("checkpoint: ms (MB copied)",
             [f"{fmt(r['checkpoint_ms'])} ({r['checkpoint_copied_bytes'] / 2**20:.0f})"
              for r in rows])
        line("  a second one right after: ms", [fmt(r["checkpoint_again_ms"]) for r in rows])
        line("disk MB (B/invocation)", [f"{r['disk_bytes'] / 2**20:.0f} "
                                        f"({r['disk_bytes'] / r['invocations']:.0f})"
                                        for r in rows])
        line("RSS MB (anon + file)", [f"{r['rss']['VmRSS']:.0f} ({r['rss']['RssAnon']:.0f}"
                                      f" + {r['rss']['RssFile']:.0f})" for r in rows])
        line("  peak RSS MB in this step", [f"{r['rss_end']['VmHWM']:.0f}" for r in rows])
        line("close / reopen ms", [f"{fmt(r['close_ms'])} / {fmt(r['reopen_ms'])}"
                                   for r in rows])
    print("\n== GIL: one long call, and the longest another Python thread was stalled in it "
          "(stall ~ call: the GIL is held) ==")
    for r in results:
        for name, (dt, stall) in r["gil"].items():
            print(f"{r['engine']:8} {name:36} call {dt * 1e3:7.1f} ms   "
                  f"stall {stall * 1e3:7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engines", default="rocksdb,lmdb")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--batches", default="1,16,128")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--lag", type=int, default=6400, help="retention lag in invocations")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--cache-mb", type=int, default=64)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print the raw figures too")
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.batches = [int(x) for x in args.batches.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    results = []
    for engine in args.engines.split(","):
        cmd = [sys.executable, __file__, "--child", engine] + [
            a for a in sys.argv[1:] if a != "--json"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env=dict(os.environ))
        results.append(json.loads(out.stdout))
        print(f"{engine}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    report(results)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
