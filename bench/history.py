"""History benchmark (issue #14): what a large retained history costs the server.

    .venv/bin/python bench/history.py [--total 1000000] [--marks 100000,500000,1000000]
                                      [--concurrency 32] [--target rstq|restate|both]
                                      [--rstq-args "--store-cache 33554432"] [--json out.json]
    .venv/bin/python bench/history.py --duration 3600 --rate 300      # sustained: RSS curve

Marks mode (the default). A real server subprocess (`rstq server --fsync batch`, or
restate-server 1.7.12 from tests/support/harness/restate_server.py) on a fresh data dir, the
bench services (bench/suite_services.py, restate-sdk under hypercorn, h2c) registered on it, and
--concurrency closed-loop aiohttp clients calling `BenchGreeter/<new key>/greet` (one
retained invocation and one state row per call) until --total successful calls. At each mark
the load stops and the script records:

  * server RSS and peak (VmRSS / VmHWM of /proc/PID/status), after the load and after the SQL;
  * greet throughput and p50/p99 over the last --window seconds of load (and over the phase),
    server CPU per invocation over the phase (utime+stime of /proc/PID/stat);
  * rstq: checkpoints in the phase from GET admin /metrics (rstq_checkpoint_duration_seconds:
    count, total, max bucket; a metric named like `*checkpoint*cpu*` is read too if the server
    has one);
  * disk bytes of the data dir (allocated blocks, hard links counted once), per invocation;
  * the four SQL queries of bench/query.py (QUERIES[0:4], the point lookup on a loaded key) via
    POST /query: the first (cold) run, then the median of --query-runs;
  * kill -9 of the server, start again on the same data dir and ports: seconds until the
    ingress answers a greet (200), then until POST /query answers, and the RSS right after;

then the load goes on. With --target both, rstq runs first, then restate-server (never both at
once: they share the cores), and the tables put them side by side.

Sustained mode (--duration SECONDS): load at a fixed --rate (requests started on schedule, at
most --concurrency in flight), RSS sampled every --sample-every (10 s), then the mark
measurements once at the end. Marks mode samples RSS every 5 s as well.

Everything goes to bench/results/history-<time>.json (gitignored), or --json. See
bench/README.md ("history.py").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from invoke import AiohttpClient, BenchRestate, post_query, print_table, proc_cpu_seconds  # noqa: E402
from suite import RESULTS_DIR, _nan_to_none, service_process, vm_kb  # noqa: E402

from tests.support.harness.restate_server import VERSION as RESTATE_VERSION  # noqa: E402
from tests.support.harness.restate_server import (  # noqa: E402
    RestateServerError,
    _http,
    ensure_installed,
    spawn,
    tail,
)
from tests.support.harness.rstq_server import RstqServer  # noqa: E402


def _bench_query_module() -> Any:
    """bench/query.py by path: `import query` would find the repo's query/ package first."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_query", BENCH_DIR / "query.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


QUERIES: list[tuple[str, str, int | None]] = _bench_query_module().QUERIES
GREET = "/BenchGreeter/{key}/greet"
BODY = b'"bench"'


def sql_queries(key: str) -> list[tuple[str, str]]:
    """bench/query.py's first four queries, the point lookup aimed at a key of this load."""
    out = []
    for label, sql, _target in QUERIES[:4]:
        if "service_key" in sql:
            new = sql.replace("'Greeter'", "'BenchGreeter'").replace("'u12345'", f"'{key}'")
            assert new != sql, "bench/query.py's point lookup changed: update sql_queries()"
            sql = new
        out.append((label, sql))
    return out


# --------------------------------------------------------------------------------------------
# Servers: start, kill -9, start again on the same data dir and ports
# --------------------------------------------------------------------------------------------


class HistRstq(RstqServer):
    """RstqServer, health polled every 10 ms (the restart time is measured through it)."""

    def _wait_ok(self, url: str, deadline: float) -> None:
        while True:
            if self.proc.poll() is not None:
                raise RestateServerError(f"rstq exited with {self.proc.returncode} during "
                                         f"startup:\n{tail(self.log_path)}")
            try:
                status, _ = _http("GET", url, timeout=1.0)
            except (OSError, urllib.error.URLError):
                status = 0
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise RestateServerError(f"rstq not healthy ({url} -> {status}):\n"
                                         f"{tail(self.log_path)}")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def restart(self) -> None:
        self.start()  # same data dir and ports after a first start


class HistRestate(BenchRestate):
    """restate-server (harness config, --partitions), with kill -9 and a restart on the same
    base dir, config and ports (its node address is part of its metadata)."""

    def __init__(self, partitions: int) -> None:
        super().__init__(partitions)
        self.startup_timeout = 300.0

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return int(self.proc.pid)

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        assert self.base_dir is not None and self.proc is None
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        self.proc = spawn([str(self.binary or ensure_installed()), "--config-file",
                           str(self.base_dir / "config.toml"), "--base-dir", str(self.data_dir)],
                          log_path=self.log_path, env=env, cwd=self.base_dir)
        self._wait_healthy(deadline=time.monotonic() + self.startup_timeout)


Server = HistRstq | HistRestate


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def disk_bytes(path: Path) -> tuple[int, int]:
    """(allocated bytes, apparent bytes) under path; a hard-linked file counts once (du)."""
    seen: set[tuple[int, int]] = set()
    alloc = apparent = 0
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                alloc += st.st_blocks * 512
                apparent += st.st_size
    return alloc, apparent


def rss_mb(pid: int) -> tuple[float, float]:
    try:
        return vm_kb(pid, "VmRSS") / 1024, vm_kb(pid, "VmHWM") / 1024
    except OSError:
        return math.nan, math.nan


def metrics(admin_url: str) -> dict[str, float]:
    """rstq's GET /metrics, the checkpoint series summed over partitions: name -> value
    (histogram buckets as name{le}); {} if the server has none."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{admin_url}/metrics", timeout=30) as resp:
            text = resp.read().decode()
    except (OSError, urllib.error.URLError):
        return {}
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if "checkpoint" not in fam.name:
            continue
        for s in fam.samples:
            key = s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else "")
            out[key] = out.get(key, 0.0) + float(s.value)
    return out


def checkpoint_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Checkpoints between two scrapes of one server life: count, seconds, max bucket, CPU."""
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    base = "rstq_checkpoint_duration_seconds"
    n, total = d.get(base + "_count", math.nan), d.get(base + "_sum", math.nan)
    out = {"count": n, "seconds": total, "mean_ms": total / n * 1e3 if n else math.nan,
           "max_le_s": math.nan, "cpu_seconds": math.nan,
           "failures": d.get("rstq_checkpoint_failures_total", math.nan)}
    buckets = sorted((float(k.split("le=")[1].rstrip("}")), v) for k, v in d.items()
                     if k.startswith(base + "_bucket{le="))
    # cumulative buckets: the smallest bound holding every checkpoint of the window bounds the
    # slowest one
    out["max_le_s"] = next((le for le, v in buckets if n and v >= n), math.nan)
    cpu = [k for k in d if "checkpoint" in k and "cpu" in k and k.endswith(("_sum", "_total"))]
    if cpu:
        out["cpu_seconds"] = sum(d[k] for k in cpu)
    return out


def pct_ms(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


@dataclass
class Phase:
    """One stretch of load between marks (or the whole sustained run)."""

    done: array[float] = field(default_factory=lambda: array("d"))  # completion times (mono)
    lat: array[float] = field(default_factory=lambda: array("d"))  # seconds, HTTP 200 only
    errors: int = 0
    first_error: str = ""
    late: int = 0  # sustained mode: requests started more than 1 s behind schedule
    started: float = 0.0
    ended: float = 0.0

    def window(self, seconds: float) -> dict[str, float]:
        """Throughput and latency over the last `seconds` of the phase (and over all of it)."""
        n = len(self.done)
        span = self.ended - self.started
        out = {"count": float(n), "seconds": span, "rate_phase": n / span if span else math.nan,
               "p50_phase_ms": pct_ms(list(self.lat), 0.5),
               "p99_phase_ms": pct_ms(list(self.lat), 0.99)}
        t_from = max(self.started, self.ended - seconds)
        idx = [i for i in range(n) if self.done[i] >= t_from]
        lat = [self.lat[i] for i in idx]
        w = self.ended - t_from
        out.update(window_s=w, rate=len(idx) / w if w else math.nan, p50_ms=pct_ms(lat, 0.5),
                   p99_ms=pct_ms(lat, 0.99), errors=float(self.errors), late=float(self.late))
        return out


class Loader:
    """Greets on distinct keys through the ingress; `url` follows the server across restarts."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.counter = itertools.count()
        self.url = ""
        self.total_ok = 0  # every 200 of the run, restart probes included

    def next_url(self) -> str:
        return self.url + GREET.replace("{key}", f"{self.run_id}-{next(self.counter)}")

    def key(self, i: int) -> str:
        return f"{self.run_id}-{i}"

    async def run(self, concurrency: int, count: int | None = None,
                  duration: float | None = None, rate: float | None = None) -> Phase:
        """Closed loop until `count` successes, or (with `rate`) on a fixed schedule for
        `duration` seconds."""
        ph = Phase()
        client = AiohttpClient(concurrency)
        stop = asyncio.Event()
        t0 = ph.started = time.monotonic()
        sched = itertools.count()
        consecutive_errors = 0

        async def worker() -> None:
            nonlocal consecutive_errors
            while not stop.is_set():
                if rate is not None:
                    at = t0 + next(sched) / rate
                    if duration is not None and at >= t0 + duration:
                        return
                    now = time.monotonic()
                    if at > now:
                        await asyncio.sleep(at - now)
                    elif now - at > 1.0:
                        ph.late += 1
                elif duration is not None and time.monotonic() >= t0 + duration:
                    return
                s = time.perf_counter()
                try:
                    status, data = await client.post(self.next_url(), BODY)
                except Exception as e:  # connection failures count as errors, the run goes on
                    status, data = 0, repr(e).encode()
                dt = time.perf_counter() - s
                if status == 200:
                    consecutive_errors = 0
                    self.total_ok += 1  # retained, even if in flight when the count was reached
                    if count is not None and len(ph.lat) >= count:
                        continue  # ... but not part of the phase's figures
                    ph.lat.append(dt)
                    ph.done.append(time.monotonic())
                    if count is not None and len(ph.lat) >= count:
                        stop.set()
                else:
                    ph.errors += 1
                    consecutive_errors += 1
                    ph.first_error = ph.first_error or f"{status} {data[:200]!r}"
                    if consecutive_errors > 1000:
                        stop.set()
                        raise RuntimeError(f"1000 errors in a row: {ph.first_error}")
                    await asyncio.sleep(0.01)

        try:
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            ph.ended = time.monotonic()
            await client.close()
        return ph


class Sampler:
    """RSS of whichever server process is current, every `every` seconds, on a thread."""

    def __init__(self, every: float, loader: Loader) -> None:
        self.every, self.loader = every, loader
        self.pid: int | None = None
        self.label = "load"
        self.series: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def sample(self) -> None:
        pid = self.pid
        if pid is None:
            return
        rss, hwm = rss_mb(pid)
        if not math.isnan(rss):
            self.series.append({"t": round(time.monotonic() - self._t0, 2),
                                "invocations": self.loader.total_ok, "rss_mb": round(rss, 1),
                                "hwm_mb": round(hwm, 1), "phase": self.label})

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def time_queries(admin_url: str, queries: list[tuple[str, str]], runs: int,
                 ) -> list[dict[str, Any]]:
    out = []
    for label, sql in queries:
        try:
            cold, rows = post_query(admin_url, sql)
            times = [post_query(admin_url, sql)[0] for _ in range(runs)]
            out.append({"label": label, "sql": sql, "cold_ms": cold,
                        "median_ms": statistics.median(times), "runs_ms": times,
                        "rows": rows[:5] if len(rows) <= 5 else f"{len(rows)} rows"})
        except (OSError, urllib.error.URLError) as e:
            out.append({"label": label, "sql": sql, "cold_ms": math.nan, "median_ms": math.nan,
                        "error": f"{type(e).__name__}: {e}"})
    return out


def measure_restart(server: Server, loader: Loader, timeout: float) -> dict[str, float]:
    """kill -9, start on the same data dir and ports; seconds until the ingress answers a greet
    and then until POST /query answers."""
    server.kill()
    t0 = time.monotonic()
    server.restart()
    healthy = time.monotonic() - t0
    loader.url = server.ingress_url
    deadline = t0 + timeout
    ingress = query = math.nan
    while time.monotonic() < deadline:
        try:
            status, _ = _http("POST", loader.next_url(), "bench", timeout=30.0)
        except (OSError, urllib.error.URLError):
            status = 0
        if status == 200:
            loader.total_ok += 1
            ingress = time.monotonic() - t0
            break
        time.sleep(0.01)
    while time.monotonic() < deadline:
        try:
            post_query(server.admin_url, "SELECT count(*) FROM state", timeout=60)
            query = time.monotonic() - t0
            break
        except (OSError, urllib.error.URLError):
            time.sleep(0.01)
    rss, _ = rss_mb(server.pid)
    return {"healthy_s": healthy, "ingress_s": ingress, "query_s": query,
            "rss_after_restart_mb": rss}


# --------------------------------------------------------------------------------------------
# One target
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def start_server(kind: str, args: argparse.Namespace, service_url: str,
                 ) -> Iterator[tuple[Server, str]]:
    server: Server
    if kind == "restate":
        server = HistRestate(args.partitions)
        config = (f"restate-server {RESTATE_VERSION}, {args.partitions} partitions, harness "
                  "defaults (local RocksDB + local loglet, fsync on)")
    else:
        extra = shlex.split(args.rstq_args)
        server = HistRstq(partitions=args.partitions, fsync="batch", extra_args=extra,
                          startup_timeout=300.0)
        config = (f"rstq server, {args.partitions} partitions, --fsync batch"
                  f"{' ' + ' '.join(extra) if extra else ''}")
    server.start()
    try:
        server.register(service_url)
        yield server, config
    finally:
        if isinstance(server, HistRstq):
            server.cleanup()
        else:
            server.stop()


def mark_measure(kind: str, server: Server, loader: Loader, ph: Phase, mark: int,
                 args: argparse.Namespace, cpu0: float, ckpt0: dict[str, float],
                 sampler: Sampler, restart: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {"mark": mark, "invocations": loader.total_ok,
                           "loadavg_1m": os.getloadavg()[0]}
    rec.update(ph.window(args.window))
    cpu = proc_cpu_seconds(server.pid) - cpu0
    rec["server_cpu_ms_per_inv"] = cpu / len(ph.lat) * 1e3 if len(ph.lat) else math.nan
    time.sleep(1.0)  # let in-flight work settle before sampling memory
    rec["rss_mb"], rec["hwm_mb"] = rss_mb(server.pid)
    # VmRSS counts the pages of memory-mapped files (segments) too: reclaimable page cache.
    with contextlib.suppress(OSError):
        rec["rss_anon_mb"] = vm_kb(server.pid, "RssAnon") / 1024
        rec["rss_file_mb"] = vm_kb(server.pid, "RssFile") / 1024
    if kind == "rstq":
        rec["checkpoints"] = checkpoint_delta(ckpt0, metrics(server.admin_url))
    alloc, apparent = disk_bytes(server.data_dir)
    rec.update(disk_bytes=alloc, disk_apparent_bytes=apparent,
               disk_bytes_per_inv=alloc / loader.total_ok if loader.total_ok else math.nan)
    sampler.label = "sql"
    rec["queries"] = time_queries(server.admin_url, sql_queries(loader.key(mark // 2)),
                                  args.query_runs)
    rec["rss_after_sql_mb"], rec["hwm_after_sql_mb"] = rss_mb(server.pid)
    if restart:
        sampler.label = "restart"
        rec["restart"] = measure_restart(server, loader, args.restart_timeout)
        sampler.pid = server.pid
        sampler.sample()
    sampler.label = "load"
    return rec


def run_target(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    loader = Loader(uuid.uuid4().hex[:8])
    sampler = Sampler(args.sample_every, loader)
    out: dict[str, Any] = {"kind": kind, "marks": [], "series": sampler.series}
    with service_process({"BENCH_SDK": "restate"}) as svc, \
            start_server(kind, args, svc.url) as (server, config):
        out["config"] = config
        out["startup_s"] = server.startup_seconds
        print(f"[{kind}] {config}; first start (empty data dir) {server.startup_seconds:.2f} s",
              flush=True)
        loader.url = server.ingress_url
        sampler.pid = server.pid
        sampler.start()
        try:
            if args.duration:
                print(f"[{kind}] sustained: {args.rate:g} req/s for {args.duration:g} s, "
                      f"at most {args.concurrency} in flight", flush=True)
                cpu0, ckpt0 = proc_cpu_seconds(server.pid), metrics(server.admin_url)
                ph = asyncio.run(loader.run(args.concurrency, duration=args.duration,
                                            rate=args.rate))
                rec = mark_measure(kind, server, loader, ph, loader.total_ok, args, cpu0, ckpt0,
                                   sampler, restart=not args.no_restart)
                out["marks"].append(rec)
                describe(kind, rec)
            else:
                prev = 0
                for mark in args.marks:
                    cpu0, ckpt0 = proc_cpu_seconds(server.pid), metrics(server.admin_url)
                    t = time.monotonic()
                    ph = asyncio.run(loader.run(args.concurrency, count=mark - prev))
                    print(f"[{kind}] loaded {mark - prev} in {time.monotonic() - t:.1f} s "
                          f"({loader.total_ok} in all)", flush=True)
                    rec = mark_measure(kind, server, loader, ph, mark, args, cpu0, ckpt0,
                                       sampler, restart=not args.no_restart)
                    out["marks"].append(rec)
                    describe(kind, rec)
                    prev = mark
        finally:
            sampler.stop()
            out["server_log_tail"] = tail(server.log_path, 3000)
    return out


def describe(kind: str, r: dict[str, Any]) -> None:
    rs = r.get("restart", {})
    ck = r.get("checkpoints", {})
    q = " / ".join(fmt(x["median_ms"]) for x in r["queries"])
    err = f"  ERRORS {r['errors']:.0f}" if r["errors"] else ""
    print(f"[{kind}] mark {r['mark']}: RSS {r['rss_mb']:.0f} MB (anon "
          f"{fmt(r.get('rss_anon_mb', math.nan))}, file {fmt(r.get('rss_file_mb', math.nan))}, "
          f"HWM {r['hwm_mb']:.0f}, after "
          f"SQL {r['rss_after_sql_mb']:.0f}), {r['rate']:.0f} req/s p50 {r['p50_ms']:.1f} p99 "
          f"{r['p99_ms']:.1f} ms (last {r['window_s']:.0f} s), server cpu "
          f"{r['server_cpu_ms_per_inv']:.2f} ms/inv, disk {r['disk_bytes_per_inv']:.0f} B/inv, "
          f"checkpoints {fmt(ck.get('count', math.nan))} ({fmt(ck.get('seconds', math.nan))} s),"
          f" SQL {q} ms, restart: ingress {fmt(rs.get('ingress_s', math.nan))} s, query "
          f"{fmt(rs.get('query_s', math.nan))} s, RSS after "
          f"{fmt(rs.get('rss_after_restart_mb', math.nan))} MB, load avg "
          f"{r['loadavg_1m']:.1f}{err}", flush=True)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    v = float(v)
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def report(results: dict[str, dict[str, Any]]) -> None:
    header = ("target", "mark", "RSS MB", "HWM MB", "RSS after SQL", "req/s", "p50 ms", "p99 ms",
              "cpu ms/inv", "ckpt n", "ckpt s", "ckpt mean ms", "ckpt max <= s", "disk B/inv",
              "restart ingress s", "restart query s", "RSS after restart")
    table = []
    for kind, res in results.items():
        for r in res["marks"]:
            ck, rs = r.get("checkpoints", {}), r.get("restart", {})
            table.append((kind, str(r["mark"]), fmt(r["rss_mb"]), fmt(r["hwm_mb"]),
                          fmt(r["rss_after_sql_mb"]), fmt(r["rate"]), fmt(r["p50_ms"]),
                          fmt(r["p99_ms"]), fmt(r["server_cpu_ms_per_inv"]),
                          fmt(ck.get("count")), fmt(ck.get("seconds")), fmt(ck.get("mean_ms")),
                          fmt(ck.get("max_le_s")),
                          fmt(r["disk_bytes_per_inv"]), fmt(rs.get("ingress_s")),
                          fmt(rs.get("query_s")), fmt(rs.get("rss_after_restart_mb"))))
    print_table(header, table)
    for kind, res in results.items():
        print(f"{kind}: first start on an empty data dir {fmt(res.get('startup_s'))} s (the "
              "fixed part of a restart)")

    # SQL side by side: median ms per query (first, cold run in parentheses)
    kinds = list(results)
    header = ("mark", "query", *(f"{k} ms (cold)" for k in kinds),
              *(("restate/rstq",) if len(kinds) == 2 else ()))
    table = []
    marks = [r["mark"] for r in results[kinds[0]]["marks"]]
    for i, mark in enumerate(marks):
        for qi in range(4):
            cells, meds = [], []
            for k in kinds:
                ms = results[k]["marks"]
                q = ms[i]["queries"][qi] if i < len(ms) else {}
                meds.append(q.get("median_ms", math.nan))
                cells.append(f"{fmt(q.get('median_ms'))} ({fmt(q.get('cold_ms'))})")
            label = results[kinds[0]]["marks"][i]["queries"][qi]["label"]
            ratio = ()
            if len(kinds) == 2:
                a, b = meds[kinds.index("rstq")], meds[kinds.index("restate")]
                ratio = (f"{b / a:.1f}x" if a and not math.isnan(a) and not math.isnan(b)
                         else "-",)
            table.append((str(mark), label, *cells, *ratio))
    print_table(header, table)

    for kind, res in results.items():
        series = res["series"]
        if not series:
            continue
        step = max(1, len(series) // 24)
        rows = [s for i, s in enumerate(series) if i % step == 0 or i == len(series) - 1]
        print(f"\n{kind}: RSS every {res.get('sample_every', 0):g} s ({len(series)} samples; "
              f"every {step}th shown)")
        print("  t s      invocations  RSS MB  HWM MB  phase")
        for s in rows:
            print(f"  {s['t']:7.0f}  {s['invocations']:11d}  {s['rss_mb']:6.0f}  "
                  f"{s['hwm_mb']:6.0f}  {s['phase']}")


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--total", type=int, default=1_000_000, help="invocations to load")
    p.add_argument("--marks", default=None,
                   help="comma-separated invocation counts to measure at (default 10%%, 50%%, "
                        "100%% of --total)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--target", choices=["rstq", "restate", "both"], default="rstq")
    p.add_argument("--rstq-args", default="", help='extra `rstq server` arguments, one string')
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--window", type=float, default=10.0,
                   help="seconds of load before a mark that throughput and p50/p99 cover")
    p.add_argument("--query-runs", type=int, default=3, help="timed runs per query (median)")
    p.add_argument("--no-restart", action="store_true", help="skip the kill -9 at the marks")
    p.add_argument("--restart-timeout", type=float, default=600.0)
    p.add_argument("--duration", type=float, default=None,
                   help="sustained mode: seconds of load at --rate (no marks)")
    p.add_argument("--rate", type=float, default=200.0, help="sustained mode: requests/s")
    p.add_argument("--sample-every", type=float, default=None,
                   help="RSS sampling interval (default 5 s, 10 s in sustained mode)")
    p.add_argument("--json", default=None, help="result file (default bench/results/)")
    args = p.parse_args(argv)
    if args.marks:
        args.marks = sorted(int(m) for m in args.marks.split(","))
    else:
        args.marks = sorted({max(1, args.total // 10), max(1, args.total // 2), args.total})
    if args.marks[-1] != args.total:
        args.marks = [m for m in args.marks if m < args.total] + [args.total]
    if args.sample_every is None:
        args.sample_every = 10.0 if args.duration else 5.0

    kinds = ["rstq", "restate"] if args.target == "both" else [args.target]
    what = (f"sustained {args.duration:g} s at {args.rate:g} req/s" if args.duration
            else "marks " + ",".join(map(str, args.marks)))
    print(f"history bench: {what}, c={args.concurrency}, targets {', '.join(kinds)}, "
          f"{os.cpu_count()} cores", flush=True)
    t_all = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        t = time.monotonic()
        results[kind] = run_target(kind, args)
        results[kind]["sample_every"] = args.sample_every
        results[kind]["elapsed_s"] = time.monotonic() - t
    report(results)
    out = (Path(args.json) if args.json
           else RESULTS_DIR / time.strftime("history-%Y%m%d-%H%M%S.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    out.write_text(json.dumps(_nan_to_none({
        "args": vars(args), "commit": commit,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "elapsed_s": time.monotonic() - t_all, "results": results,
    }), indent=1, default=str))
    print(f"\nresults: {out} ({time.monotonic() - t_all:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
