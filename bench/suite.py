"""`make bench`: rstq side by side with the real restate-server (and DBOS for the workflow row).

    .venv/bin/python bench/suite.py                         # everything (~15 min, 2 cores)
    .venv/bin/python bench/suite.py --scenarios greet hot   # a subset
    .venv/bin/python bench/suite.py --only rstq --seconds 2 --warmup 0.5 --keys 2000   # quick

Every scenario runs on each of its targets in turn (alternating the order between --runs), each
time on a freshly started server (loopback, fresh data dir, fsync on) with a fresh service
process registered on it. Load: closed-loop aiohttp clients (keep-alive, one connection each),
bounded by --seconds (after --warmup) and --max-requests. Recorded per run: req/s, p50/p90/p99
latency of HTTP 200 answers, CPU seconds per request of the server and of the service process
(utime+stime from /proc/PID/stat over the measured window) and peak memory (VmHWM from
/proc/PID/status). The table puts the baseline (restate-server, unless the scenario says
otherwise) next to rstq with the ratio rstq / baseline and the issue's targets; the JSON goes
to bench/results/ (gitignored). See bench/README.md.
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(BENCH_DIR)]

from invoke import (  # noqa: E402
    AiohttpClient,
    BenchRestate,
    post_query,
    print_table,
    proc_cpu_seconds,
    self_cpu_seconds,
)

from tests.support.harness.restate_server import VERSION as RESTATE_VERSION  # noqa: E402
from tests.support.harness.restate_server import free_port, spawn, stop_process_group  # noqa: E402
from tests.support.harness.rstq_server import RstqServer  # noqa: E402
from tests.support.harness.service_proc import ServiceProcess  # noqa: E402

DBOS_VERSION = "3.4.0"
RESULTS_DIR = BENCH_DIR / "results"


def bench_cache() -> Path:
    env = os.environ.get("RSTQ_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rstq-bench"


def vm_kb(pid: int, field_name: str) -> float:
    """A VmXXX line of /proc/PID/status in kB (VmHWM: peak resident set)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return float(line.split()[1])
    return math.nan


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Measure:
    """One measured window of one target."""

    count: int = 0
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    p50: float = math.nan  # ms
    p90: float = math.nan
    p99: float = math.nan
    server_cpu_ms: float = math.nan  # per request
    service_cpu_ms: float = math.nan
    client_cpu_ms: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else math.nan


def pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pids:
    def __init__(self, server: int | None, service: int | None) -> None:
        self.server, self.service = server, service

    def cpu(self) -> tuple[float, float, float]:
        return (proc_cpu_seconds(self.server) if self.server else math.nan,
                proc_cpu_seconds(self.service) if self.service else math.nan,
                self_cpu_seconds())


async def drive(client: AiohttpClient, make_url: Callable[[], str], body: Callable[[], bytes],
                concurrency: int, warmup: float, seconds: float, max_requests: int,
                pids: Pids, ok: tuple[int, ...] = (200,)) -> Measure:
    """`concurrency` closed-loop clients: warm up, then measure until `seconds` have passed or
    `max_requests` answers were counted."""
    lat: list[float] = []
    m = Measure()
    measuring = False
    done = asyncio.Event()
    stop_at = time.monotonic() + warmup + seconds

    async def worker() -> None:
        while not done.is_set() and time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                status, data = await client.post(make_url(), body())
            except Exception as e:  # connection failures count as errors, the run goes on
                status, data = 0, repr(e).encode()
            dt = time.perf_counter() - t0
            if not measuring:
                continue
            if status in ok:
                lat.append(dt)
                if len(lat) >= max_requests:
                    done.set()
            else:
                m.errors += 1
                m.first_error = m.first_error or f"{status} {data[:200]!r}"

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    cpu0 = pids.cpu()
    t0 = time.monotonic()
    measuring = True
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), max(0.0, stop_at - time.monotonic()))
    measuring = False
    m.seconds = time.monotonic() - t0
    cpu1 = pids.cpu()
    done.set()
    await asyncio.gather(*tasks)
    m.count = len(lat)
    m.p50, m.p90, m.p99 = (pct(lat, q) * 1e3 for q in (0.5, 0.9, 0.99))
    if m.count:
        m.server_cpu_ms, m.service_cpu_ms, m.client_cpu_ms = (
            (b - a) / m.count * 1e3 for a, b in zip(cpu0, cpu1, strict=True))
    return m


# --------------------------------------------------------------------------------------------
# Targets: a server (or DBOS app) with its service process
# --------------------------------------------------------------------------------------------


class Target:
    """A running system under test: ingress URL, the pids to measure, admin helpers."""

    ingress_url: str = ""
    admin_url: str = ""
    server_pid: int | None = None
    service_pid: int | None = None
    pgwire_port: int | None = None
    config: str = ""


@contextlib.contextmanager
def service_process(env: dict[str, str]) -> Iterator[ServiceProcess]:
    svc = ServiceProcess("bench.suite_services:app", http2=True, env=env)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """A local OTLP/HTTP receiver that accepts and drops spans (the tracing-on rows)."""
    port = free_port()
    code = ("import sys\nfrom aiohttp import web\n"
            "async def ok(r):\n    await r.read()\n"
            "    return web.Response(body=b'', content_type='application/x-protobuf')\n"
            "app = web.Application(client_max_size=64 << 20)\n"
            "app.router.add_post('/{tail:.*}', ok)\n"
            "web.run_app(app, host='127.0.0.1', port=int(sys.argv[1]), print=None)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)])
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(5)


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listening on {port} after {timeout}s")
        time.sleep(0.05)


def dbos_python() -> Path:
    """DBOS in its own venv under the bench cache (not an rstq dependency); installed once."""
    venv = bench_cache() / f"dbos-{DBOS_VERSION}"
    py = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file():
        return py
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"dbos=={DBOS_VERSION}"], check=True,
                   timeout=900)
    marker.write_text(DBOS_VERSION + "\n")
    return py


@contextlib.contextmanager
def start_target(kind: str, args: argparse.Namespace, env: dict[str, str]) -> Iterator[Target]:
    """kind: restate | rstq | rstq-otlp | rstq-sdk | dbos."""
    t = Target()
    if kind == "dbos":
        py = dbos_python()
        work = Path(tempfile.mkdtemp(prefix="rstq-bench-dbos-"))
        port = free_port()
        proc = spawn([str(py), str(BENCH_DIR / "dbos_app.py"), str(port),
                      str(work / "dbos.sqlite")], log_path=work / "dbos.log")
        try:
            wait_port(port, proc)
            t.ingress_url = f"http://127.0.0.1:{port}"
            t.server_pid = proc.pid
            t.config = f"DBOS {DBOS_VERSION}, SQLite system db (DBOS defaults: rollback journal," \
                       " synchronous=FULL), workflow code in the same process"
            yield t
        finally:
            stop_process_group(proc)
            subprocess.run(["rm", "-rf", str(work)], check=False)
        return
    env = {**env, "BENCH_SDK": "rstq" if kind == "rstq-sdk" else "restate"}
    with service_process(env) as svc, contextlib.ExitStack() as stack:
        server: BenchRestate | RstqServer
        if kind == "restate":
            server = BenchRestate(args.partitions)
            t.config = (f"restate-server {RESTATE_VERSION}, {args.partitions} partitions, "
                        "defaults (local RocksDB + local loglet, fsync on)")
        else:
            extra = list(args.rstq_arg)
            if kind == "rstq-otlp":
                extra += ["--otlp", stack.enter_context(otlp_sink()), "--otlp-protocol", "http"]
            server = RstqServer(partitions=args.partitions, fsync="batch", extra_args=extra)
            t.config = (f"rstq server, {args.partitions} partitions, --fsync batch (acknowledged "
                        f"after fdatasync){' ' + ' '.join(extra) if extra else ''}")
        server.start()
        try:
            server.register(svc.url)
            assert server.proc is not None and svc.proc is not None
            t.ingress_url, t.admin_url = server.ingress_url, server.admin_url
            t.server_pid, t.service_pid = server.proc.pid, svc.proc.pid
            if isinstance(server, RstqServer):
                t.pgwire_port = server.pgwire_port
            yield t
        finally:
            if isinstance(server, RstqServer):
                server.cleanup()
            else:
                server.stop()


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------

Result = dict[str, Measure]  # "c1", "c32", "timers", "sql", ... -> measure


def run_load(t: Target, args: argparse.Namespace, path: str, concurrencies: list[int],
             body: bytes = b'"bench"') -> Result:
    run_id = uuid.uuid4().hex[:8]
    counter = itertools.count()
    base = t.ingress_url + path

    def make_url() -> str:
        return base.replace("{key}", f"{run_id}-{next(counter)}").replace("{hot}", run_id)

    async def go() -> Result:
        out: Result = {}
        client = AiohttpClient(max(concurrencies))
        try:
            for conc in concurrencies:
                out[f"c{conc}"] = await drive(client, make_url, lambda: body, conc, args.warmup,
                                              args.seconds, args.max_requests,
                                              Pids(t.server_pid, t.service_pid))
        finally:
            await client.close()
        return out

    return asyncio.run(go())


def run_timers(t: Target, args: argparse.Namespace, fire_log: Path) -> Result:
    """`--timers` one-way sends with a delay, due evenly over `--timer-window` seconds, each
    sent `lead` seconds (5 s at the default window) before it is due, by 32 senders; lateness =
    fire time (seen by the handler) - due time."""
    n, window = args.timers, args.timer_window
    lead = min(5.0, max(1.0, window / 2))
    tag = uuid.uuid4().hex[:8]
    url = t.ingress_url + "/BenchTimer/fire/send"

    async def go() -> Measure:
        m = Measure()
        client = AiohttpClient(32)
        t0 = time.time() + lead
        idx = itertools.count()
        clamped = 0
        pids = Pids(t.server_pid, t.service_pid)
        cpu0 = pids.cpu()

        async def sender() -> None:
            nonlocal clamped
            for i in idx:
                if i >= n:
                    return
                due = t0 + i * window / n
                await asyncio.sleep(max(0.0, due - lead - time.time()))
                delay_ms = int((due - time.time()) * 1000)
                if delay_ms < 1:
                    clamped += 1
                    delay_ms = 1
                body = json.dumps({"due": due * 1000, "tag": tag}).encode()
                status, data = await client.post(f"{url}?delay={delay_ms}ms", body)
                if status not in (200, 202):
                    m.errors += 1
                    m.first_error = m.first_error or f"{status} {data[:200]!r}"

        try:
            await asyncio.gather(*(sender() for _ in range(32)))
        finally:
            await client.close()
        deadline = t0 + window + 60
        fired: list[float] = []
        while time.time() < deadline:
            fired = [float(line.split()[1]) for line in fire_log.read_text().splitlines()
                     if line.startswith(tag + " ")] if fire_log.exists() else []
            if len(fired) >= n - m.errors:
                break
            await asyncio.sleep(0.2)
        cpu1 = pids.cpu()
        m.count = len(fired)
        m.seconds = time.time() - (t0 - lead)
        m.p50, m.p90, m.p99 = (pct(fired, q) for q in (0.5, 0.9, 0.99))
        if m.count:
            m.server_cpu_ms, m.service_cpu_ms, m.client_cpu_ms = (
                (b - a) / m.count * 1e3 for a, b in zip(cpu0, cpu1, strict=True))
        m.extra = {"max_late_ms": max(fired, default=math.nan), "sent": float(n),
                   "clamped": float(clamped),
                   "fired_on_time_pct": 100.0 * sum(1 for x in fired if x < 100) / n}
        return m

    return {"timers": asyncio.run(go())}


SQL_QUERIES = [
    ("count(*) state", "SELECT count(*) FROM state"),
    ("point lookup service+key",
     "SELECT * FROM state WHERE service_name = 'BenchGreeter' AND service_key = '{key}'"),
    ("GROUP BY status sys_invocation",
     "SELECT status, count(*) FROM sys_invocation GROUP BY status"),
    ("count(*) sys_journal", "SELECT count(*) FROM sys_journal"),
]


def run_sql(t: Target, args: argparse.Namespace) -> Result:
    """Load --keys greet keys (one state row each) and 0.42 * --keys two-step invocations, then
    record memory and time the SQL queries (median of --query-runs)."""
    run_id = uuid.uuid4().hex[:6]
    keys, steps = args.keys, int(args.keys * 0.42)
    out: Result = {}
    pids = Pids(t.server_pid, t.service_pid)

    async def load(path: str, n: int) -> Measure:
        counter = itertools.count()
        base = t.ingress_url + path
        client = AiohttpClient(32)
        try:
            return await drive(client, lambda: base.replace("{key}", f"{run_id}-{next(counter)}"),
                               lambda: b'"bench"', 32, 0.0, args.load_timeout, n, pids)
        finally:
            await client.close()

    out["load-greet"] = asyncio.run(load("/BenchGreeter/{key}/greet", keys))
    out["load-steps"] = asyncio.run(load("/BenchSteps/two", steps))
    time.sleep(1.0)
    assert t.server_pid is not None
    mem = Measure(extra={"rss_mb": vm_kb(t.server_pid, "VmRSS") / 1024,
                         "hwm_mb": vm_kb(t.server_pid, "VmHWM") / 1024})
    out["memory"] = mem
    _, rows = post_query(t.admin_url, "SELECT count(*) AS n FROM state")
    mem.extra["state_rows"] = float(rows[0]["n"]) if rows else math.nan
    for label, sql in (("invocations", "SELECT count(*) AS n FROM sys_invocation"),
                       ("journal_rows", "SELECT count(*) AS n FROM sys_journal")):
        _, rows = post_query(t.admin_url, sql)
        mem.extra[label] = float(rows[0]["n"]) if rows else math.nan
    for i, (_, sql) in enumerate(SQL_QUERIES):
        sql = sql.replace("{key}", f"{run_id}-{keys // 2}")
        post_query(t.admin_url, sql)  # warm: plans, derived views
        times = [post_query(t.admin_url, sql)[0] for _ in range(args.query_runs)]
        out[f"query{i}"] = Measure(count=len(times), p50=statistics.median(times))
        if t.pgwire_port is not None:
            out[f"pgwire{i}"] = Measure(p50=pgwire_median(t.pgwire_port, sql, args.query_runs))
    return out


def pgwire_median(port: int, sql: str, runs: int) -> float:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=port, user="rstq", dbname="rstq",
                         autocommit=True) as conn:
        conn.execute(sql).fetchall()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            conn.execute(sql).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kinds: tuple[str, ...]  # the first is the baseline, the second the one measured against it
    run: Callable[[Target, argparse.Namespace, Path], Result]


def _load(path: str, concurrencies: list[int]) -> Callable[[Target, argparse.Namespace, Path],
                                                          Result]:
    return lambda t, args, _log: run_load(t, args, path, concurrencies)


SCENARIOS = [
    Scenario("greet", "greet, distinct keys", ("restate", "rstq"),
             _load("/BenchGreeter/{key}/greet", [1, 32])),
    Scenario("hot", "greet, one hot key", ("restate", "rstq"),
             _load("/BenchGreeter/{hot}/greet", [32])),
    Scenario("steps", "3 x ctx.run", ("restate", "rstq"), _load("/BenchSteps/three", [1, 32])),
    Scenario("dbos", "3-step workflow: DBOS vs rstq", ("dbos", "rstq"),
             _load("/BenchSteps/three", [1, 32])),
    Scenario("chain", "call chain object>object>service", ("restate", "rstq"),
             _load("/BenchChainA/{key}/go", [1, 32])),
    Scenario("timers", "delayed sends (lateness)", ("restate", "rstq"),
             lambda t, args, log: run_timers(t, args, log)),
    Scenario("sql", "SQL + memory (loaded)", ("restate", "rstq"),
             lambda t, args, _log: run_sql(t, args)),
    Scenario("tracing", "greet: tracing on (OTLP) vs off, rstq", ("rstq", "rstq-otlp"),
             _load("/BenchGreeter/{key}/greet", [32])),
    Scenario("sdk", "rstq.sdk vs restate-sdk, on rstq", ("rstq", "rstq-sdk"),
             lambda t, args, _log: {
                 **{f"greet-{k}": v for k, v in run_load(
                     t, args, "/BenchGreeter/{key}/greet", [32]).items()},
                 **{f"steps-{k}": v for k, v in run_load(
                     t, args, "/BenchSteps/three", [32]).items()}}),
]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

Getter = Callable[[Result], float]


@dataclass(frozen=True)
class Row:
    scenario: str
    metric: str
    unit: str
    get: Getter
    target: str = ""
    check: Callable[[float, float], bool] | None = None  # (ratio, value) -> met
    base_get: Getter | None = None  # the baseline's value, when it is another measure


def _at_least(k: float) -> Callable[[float, float], bool]:
    return lambda ratio, _v: ratio >= k


def _at_most(k: float) -> Callable[[float, float], bool]:
    return lambda ratio, _v: ratio <= k


def _value_at_most(k: float) -> Callable[[float, float], bool]:
    return lambda _ratio, v: v <= k


def _g(key: str, attr: str) -> Getter:
    def get(r: Result) -> float:
        m = r.get(key)
        if m is None:
            return math.nan
        v = getattr(m, attr) if attr in ("rate", "p50", "p90", "p99", "server_cpu_ms",
                                         "service_cpu_ms") else m.extra.get(attr, math.nan)
        return float(v)
    return get


def rows_for(sc: Scenario) -> list[Row]:
    n = sc.title
    out: list[Row] = []

    def load_rows(key: str, label: str, tput: tuple[str, Callable[[float, float], bool]] | None,
                  p50: tuple[str, Callable[[float, float], bool]] | None = None,
                  cpu: tuple[str, Callable[[float, float], bool]] | None = None) -> None:
        out.append(Row(n, f"{label} throughput", "req/s", _g(key, "rate"), *(tput or ("",))))
        for q in ("p50", "p90", "p99"):
            t = p50 if q == "p50" and p50 else None
            out.append(Row(n, f"{label} {q}", "ms", _g(key, q), *(t or ("",))))
        out.append(Row(n, f"{label} server cpu/req", "ms", _g(key, "server_cpu_ms"),
                       *(cpu or ("",))))
        out.append(Row(n, f"{label} service cpu/req", "ms", _g(key, "service_cpu_ms")))

    if sc.name == "greet":
        load_rows("c1", "c=1", None, ("<= 0.5x", _at_most(0.5)))
        load_rows("c32", "c=32", (">= 2.0x", _at_least(2.0)), None,
                  ("rstq <= 0.6 ms", _value_at_most(0.6)))
    elif sc.name == "hot":
        load_rows("c32", "c=32", (">= 2.0x", _at_least(2.0)))
    elif sc.name in ("steps", "dbos"):
        load_rows("c1", "c=1", None)
        load_rows("c32", "c=32", (">= 2.0x", _at_least(2.0)) if sc.name == "steps" else None)
    elif sc.name == "chain":
        load_rows("c1", "c=1", None)
        load_rows("c32", "c=32", None)
    elif sc.name == "tracing":
        load_rows("c32", "c=32", None)
    elif sc.name == "sdk":
        load_rows("greet-c32", "greet c=32", None)
        load_rows("steps-c32", "steps c=32", None)
    elif sc.name == "timers":
        out += [Row(n, "fired", "count", lambda r: float(r["timers"].count) if "timers" in r
                    else math.nan),
                Row(n, "lateness p50", "ms", _g("timers", "p50")),
                Row(n, "lateness p90", "ms", _g("timers", "p90")),
                Row(n, "lateness p99", "ms", _g("timers", "p99")),
                Row(n, "lateness max", "ms", _g("timers", "max_late_ms")),
                Row(n, "server cpu/timer (send+fire)", "ms", _g("timers", "server_cpu_ms"))]
    elif sc.name == "sql":
        out += [Row(n, "load c=32 greet", "req/s", _g("load-greet", "rate")),
                Row(n, "load c=32 2-step", "req/s", _g("load-steps", "rate")),
                Row(n, "state rows", "rows", _g("memory", "state_rows")),
                Row(n, "invocations", "rows", _g("memory", "invocations")),
                Row(n, "journal rows", "rows", _g("memory", "journal_rows")),
                Row(n, "server RSS after load", "MB", _g("memory", "rss_mb")),
                Row(n, "server peak memory (VmHWM)", "MB", _g("memory", "hwm_mb"),
                    "rstq <= 300 MB", _value_at_most(300))]
        for i, (label, _) in enumerate(SQL_QUERIES):
            out.append(Row(n, f"/query {label}", "ms", _g(f"query{i}", "p50"),
                           "<= 0.1x", _at_most(0.1)))
        for i, (label, _) in enumerate(SQL_QUERIES):
            out.append(Row(n, f"pgwire {label} (vs /query)", "ms", _g(f"pgwire{i}", "p50"),
                           "<= 0.1x", _at_most(0.1), base_get=_g(f"query{i}", "p50")))
    return out


def fmt(v: float) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def median_result(results: list[Result]) -> Result:
    """Per key, the run with the median throughput/p50 (one run: itself)."""
    out: Result = {}
    for key in results[0]:
        ms = sorted((r[key] for r in results if key in r),
                    key=lambda m: m.rate if m.count and m.seconds else m.p50)
        out[key] = ms[len(ms) // 2]
    return out


def report(done: dict[str, dict[str, list[Result]]], scenarios: list[Scenario],
           ) -> tuple[list[dict[str, Any]], bool]:
    header = ("scenario", "metric", "baseline", "rstq", "rstq/base", "target", "met?")
    table: list[tuple[str, ...]] = []
    records: list[dict[str, Any]] = []
    all_met = True
    for sc in scenarios:
        if sc.name not in done:
            continue
        base_kind, ours_kind = sc.kinds
        per_kind = {k: median_result(v) for k, v in done[sc.name].items() if v}
        for row in rows_for(sc):
            bget = row.base_get or row.get
            bv = bget(per_kind[base_kind]) if base_kind in per_kind else math.nan
            ov = row.get(per_kind[ours_kind]) if ours_kind in per_kind else math.nan
            ratio = ov / bv if bv and not math.isnan(bv) and not math.isnan(ov) else math.nan
            met = ""
            if row.check is not None:
                value_only = "rstq <=" in row.target
                if math.isnan(ov) or (math.isnan(ratio) and not value_only):
                    met = "n/a"
                else:
                    ok = row.check(ratio, ov)
                    met = "yes" if ok else "NO"
                    all_met = all_met and ok
            table.append((f"{sc.title} [{base_kind} vs {ours_kind}]", f"{row.metric} ({row.unit})",
                          fmt(bv), fmt(ov), "-" if math.isnan(ratio) else f"{ratio:.2f}x",
                          row.target, met))
            records.append({"scenario": sc.name, "baseline": base_kind, "measured": ours_kind,
                            "metric": row.metric, "unit": row.unit, "baseline_value": bv,
                            "value": ov, "ratio": ratio, "target": row.target, "met": met})
    print_table(header, table)
    return records, all_met


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _nan_to_none(o: Any) -> Any:
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_nan_to_none(v) for v in o]
    return o


def describe(name: str, kind: str, res: Result) -> None:
    for key, m in res.items():
        if m.count and m.seconds:
            err = f"  ERRORS {m.errors}: {m.first_error}" if m.errors else ""
            print(f"  [{name}/{kind}] {key:10s} {m.rate:8.1f} req/s  p50 {m.p50:7.2f}  p90 "
                  f"{m.p90:7.2f}  p99 {m.p99:7.2f} ms  cpu/req server {m.server_cpu_ms:.3f}"
                  f" service {m.service_cpu_ms:.3f} ms{err}"
                  f"{'  ' + json.dumps(m.extra) if m.extra else ''}", flush=True)
        else:
            print(f"  [{name}/{kind}] {key:10s} p50 {m.p50:.2f} ms "
                  f"{json.dumps(m.extra) if m.extra else ''}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenarios", nargs="*", choices=[s.name for s in SCENARIOS], default=None)
    p.add_argument("--only", choices=["rstq", "restate"], default=None,
                   help="rstq: skip every non-rstq target; restate: only restate-server")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per load run")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per load run")
    p.add_argument("--max-requests", type=int, default=100_000, help="cap per load run")
    p.add_argument("--runs", type=int, default=1, help="runs per target, order alternating")
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--keys", type=int, default=100_000, help="sql: greet keys to load")
    p.add_argument("--load-timeout", type=float, default=900.0, help="sql: max load seconds")
    p.add_argument("--query-runs", type=int, default=7)
    p.add_argument("--timers", type=int, default=10_000, help="timers: delayed sends")
    p.add_argument("--timer-window", type=float, default=10.0, help="timers: seconds they span")
    p.add_argument("--rstq-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `rstq server` (repeatable)")
    p.add_argument("--json", default=None, help="result file (default bench/results/<time>.json)")
    args = p.parse_args(argv)

    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    print(f"bench suite: {args.seconds:g}s + {args.warmup:g}s warm-up per load run, "
          f"{args.runs} run(s), {os.cpu_count()} cores shared by client, services and servers",
          flush=True)
    done: dict[str, dict[str, list[Result]]] = {}
    configs: dict[str, str] = {}
    skipped: dict[str, str] = {}
    fire_dir = Path(tempfile.mkdtemp(prefix="rstq-bench-fire-"))
    for sc in chosen:
        kinds = [k for k in sc.kinds if not args.only or (
            k.startswith("rstq") if args.only == "rstq" else k == "restate")]
        done[sc.name] = {k: [] for k in kinds}
        for run in range(args.runs):
            for kind in kinds if run % 2 == 0 else list(reversed(kinds)):
                fire_log = fire_dir / f"{sc.name}-{kind}-{run}.log"
                try:
                    with start_target(kind, args, {"BENCH_FIRE_LOG": str(fire_log)}) as t:
                        configs[kind] = t.config
                        res = sc.run(t, args, fire_log)
                        if t.server_pid:
                            res.setdefault("proc", Measure()).extra.update(
                                server_hwm_mb=vm_kb(t.server_pid, "VmHWM") / 1024)
                        if t.service_pid:
                            res.setdefault("proc", Measure()).extra.update(
                                service_hwm_mb=vm_kb(t.service_pid, "VmHWM") / 1024)
                except (OSError, subprocess.SubprocessError, RuntimeError) as e:
                    if kind != "dbos":
                        raise
                    skipped[kind] = f"{type(e).__name__}: {e}"
                    print(f"  [{sc.name}/{kind}] SKIPPED: {skipped[kind]}", flush=True)
                    continue
                describe(sc.name, kind, res)
                done[sc.name][kind].append(res)
    records, all_met = report(done, chosen)
    out = Path(args.json) if args.json else RESULTS_DIR / time.strftime("suite-%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_nan_to_none({
        "args": vars(args), "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                                        "python": platform.python_version()},
        "configs": configs, "skipped": skipped, "rows": records,
        "runs": {sc: {k: [{key: asdict(m) | {"rate": m.rate} for key, m in r.items()}
                          for r in rs] for k, rs in kinds.items()}
                 for sc, kinds in done.items()},
    }), indent=1, default=str))
    print(f"\nresults: {out}\nall targets met: {'yes' if all_met else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
