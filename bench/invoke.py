"""Benchmark: invocation throughput, latency and server CPU, rstq against the real restate-server.

    .venv/bin/python bench/invoke.py [--seconds 10] [--warmup 2] [--only rstq|restate]
                                     [--fsync batch|none] [--partitions 2] [--concurrency 32]
                                     [--client aiohttp|httpx]

Both servers run in the same invocation of this script, one after the other, against the same
services (official restate-sdk under hypercorn, one process per deployment, see
bench/invoke_services.py). Scenarios, each with a warm-up and then a fixed duration:

  greet     virtual object handler, ctx.get + ctx.set, distinct key per call, BIDI (h2c)
  greet-rr  the same handler on a deployment registered with use_http_11 (REQUEST_RESPONSE)
  plain     a service handler without state
  steps     a service handler with three ctx.run steps

Each scenario is measured at --concurrency clients (throughput, latency percentiles, CPU per
invocation of the server, the service and this client process) and at 1 sequential client
(latency percentiles). Server CPU comes from /proc/<pid>/stat (utime + stime, all threads).
Everything (client, services, server) shares the machine's cores, see bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.harness.restate_server import RestateServer, ensure_installed  # noqa: E402
from tests.support.harness.rstq_server import RstqServer  # noqa: E402
from tests.support.harness.service_proc import ServiceProcess  # noqa: E402

# Targets (issue): rstq greet throughput at 32 clients >= 2x restate-server's, greet p50 at one
# client <= 0.5x restate-server's, rstq server CPU per greet invocation <= 0.6 ms.
TARGET_TPUT_RATIO = 2.0
TARGET_P50_RATIO = 0.5
TARGET_CPU_MS = 0.6

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_cpu_seconds(path: str) -> float:
    """utime + stime from a stat(5) file: /proc/<pid>/stat, or /proc/<pid>/task/<tid>/stat
    for one thread."""
    with open(path, "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    return stat_cpu_seconds(f"/proc/{pid}/stat")


def post_query(admin_url: str, sql: str, timeout: float = 300) -> tuple[float, list[Any]]:
    """`POST /query` as JSON: (wall ms incl. HTTP and JSON, rows)."""
    req = urllib.request.Request(f"{admin_url}/query", method="POST",
                                 data=json.dumps({"query": sql}).encode(),
                                 headers={"content-type": "application/json",
                                          "accept": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        doc = json.loads(resp.read())
    return (time.perf_counter() - t0) * 1000, list(doc["rows"])


def print_table(header: tuple[str, ...], table: list[tuple[str, ...]]) -> None:
    """Aligned columns; a first column equal to the row above's is left blank."""
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print()
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    prev = ""
    for r in table:
        print(line.format(r[0] if r[0] != prev else "", *r[1:]))
        prev = r[0]


def self_cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------
# HTTP clients
# --------------------------------------------------------------------------------------------


class Client(Protocol):
    async def post(self, url: str, body: bytes) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class AiohttpClient:
    def __init__(self, connections: int) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=60),
            headers={"content-type": "application/json"},
        )

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        async with self._session.post(url, data=body) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        await self._session.close()


class HttpxClient:
    def __init__(self, connections: int) -> None:
        import httpx

        self._client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
            timeout=60.0, headers={"content-type": "application/json"})

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        resp = await self._client.post(url, content=body)
        return resp.status_code, resp.content

    async def close(self) -> None:
        await self._client.aclose()


CLIENTS: dict[str, Callable[[int], Client]] = {"aiohttp": AiohttpClient, "httpx": HttpxClient}


# --------------------------------------------------------------------------------------------
# Load generation
# --------------------------------------------------------------------------------------------


@dataclass
class Run:
    concurrency: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, successful calls only
    errors: int = 0
    first_error: str = ""
    server_cpu: float = math.nan  # seconds during the measured window
    service_cpu: float = math.nan
    client_cpu: float = math.nan

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else math.nan

    def pct_ms(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    def per_inv_ms(self, cpu: float) -> float:
        return cpu / self.count * 1e3 if self.count else math.nan


async def drive(client: Client, make_url: Callable[[], str], body: bytes, concurrency: int,
                warmup: float, seconds: float, cpu_pids: tuple[int | None, int | None],
                ) -> Run:
    """`concurrency` closed-loop clients; warm up, then measure for `seconds`."""
    run = Run(concurrency)
    measuring = False
    stop_at = time.monotonic() + warmup + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                status, data = await client.post(make_url(), body)
            except Exception as e:  # connection failures count as errors, the run goes on
                status, data = 0, repr(e).encode()
            dt = time.perf_counter() - t0
            if not measuring:
                continue
            if status == 200:
                run.latencies.append(dt)
            else:
                run.errors += 1
                run.first_error = run.first_error or f"{status} {data[:200]!r}"

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    server_pid, service_pid = cpu_pids
    cpu0 = (proc_cpu_seconds(server_pid) if server_pid else 0.0,
            proc_cpu_seconds(service_pid) if service_pid else 0.0, self_cpu_seconds())
    t0 = time.monotonic()
    measuring = True
    await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
    measuring = False
    # Stop counting at the deadline; calls still in flight finish but are not measured.
    run.seconds = time.monotonic() - t0
    if server_pid:
        run.server_cpu = proc_cpu_seconds(server_pid) - cpu0[0]
    if service_pid:
        run.service_cpu = proc_cpu_seconds(service_pid) - cpu0[1]
    run.client_cpu = self_cpu_seconds() - cpu0[2]
    await asyncio.gather(*tasks)
    return run


# --------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    path: str  # "{key}" is replaced by a distinct key per call
    deployment: str  # "bidi" or "rr"


SCENARIOS = [
    Scenario("greet", "greet (object get+set, BIDI)", "/BenchGreeter/{key}/greet", "bidi"),
    Scenario("greet-rr", "greet (REQUEST_RESPONSE)", "/BenchGreeterRR/{key}/greet", "rr"),
    Scenario("plain", "plain service call", "/BenchPlain/hello", "bidi"),
    Scenario("steps", "3 x ctx.run", "/BenchSteps/three", "bidi"),
]


class Target(Protocol):
    @property
    def ingress_url(self) -> str: ...

    def register(self, uri: str, use_http_11: bool = False) -> dict[str, Any]: ...


@dataclass
class Measured:
    tput: dict[str, Run] = field(default_factory=dict)  # scenario -> run at --concurrency
    seq: dict[str, Run] = field(default_factory=dict)  # scenario -> run at 1 client


class BenchRestate(RestateServer):
    """The real server with the partition count of the run (the test helper pins 2)."""

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions

    def config_toml(self) -> str:
        return super().config_toml().replace(
            "default-num-partitions = 2", f"default-num-partitions = {self.partitions}")


@contextlib.contextmanager
def services() -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    bidi = ServiceProcess("bench.invoke_services:app", http2=True)
    rr = ServiceProcess("bench.invoke_services:app_rr", http2=False)
    try:
        bidi.start()
        rr.start()
        yield bidi, rr
    finally:
        rr.stop()
        bidi.stop()


async def measure(label: str, server: Target, server_pid: int, svc: dict[str, ServiceProcess],
                  args: argparse.Namespace) -> Measured:
    out = Measured()
    client = CLIENTS[args.client](args.concurrency)
    run_id = uuid.uuid4().hex[:8]
    counter = itertools.count()
    try:
        for sc in SCENARIOS:
            if args.scenarios and sc.name not in args.scenarios:
                continue
            base = server.ingress_url + sc.path

            def make_url(base: str = base) -> str:
                return base.replace("{key}", f"{run_id}-{next(counter)}")

            service_pid = svc[sc.deployment].proc.pid  # type: ignore[union-attr]
            for conc, dest in ((args.concurrency, out.tput), (1, out.seq)):
                r = await drive(client, make_url, b'"bench"', conc, args.warmup, args.seconds,
                                (server_pid, service_pid))
                dest[sc.name] = r
                err = f"  ERRORS {r.errors}: {r.first_error}" if r.errors else ""
                print(f"  [{label}] {sc.name:9s} c={conc:<3d} {r.rate:8.1f} inv/s  "
                      f"p50 {r.pct_ms(0.5):6.2f}  p90 {r.pct_ms(0.9):6.2f}  "
                      f"p99 {r.pct_ms(0.99):6.2f} ms  cpu/inv server "
                      f"{r.per_inv_ms(r.server_cpu):.3f} service {r.per_inv_ms(r.service_cpu):.3f}"
                      f" client {r.per_inv_ms(r.client_cpu):.3f} ms{err}", flush=True)
    finally:
        await client.close()
    return out


def bench_server(kind: str, args: argparse.Namespace) -> Measured:
    with services() as (bidi, rr):
        server: RestateServer | RstqServer
        if kind == "restate":
            server = BenchRestate(args.partitions)
        else:
            server = RstqServer(partitions=args.partitions, fsync=args.fsync,
                                extra_args=args.rstq_arg)
        env_before = os.environ.get("RSTQ_PROFILE")
        if kind == "rstq" and args.profile:  # the server inherits our environment
            os.environ["RSTQ_PROFILE"] = str(Path(args.profile).resolve())
        try:
            server.start()
        finally:
            os.environ.pop("RSTQ_PROFILE", None)
            if env_before is not None:
                os.environ["RSTQ_PROFILE"] = env_before
        try:
            server.register(bidi.url)
            server.register(rr.url, use_http_11=True)
            assert server.proc is not None
            pid = server.proc.pid
            print(f"{kind}: pid {pid}, started in {server.startup_seconds:.2f}s", flush=True)
            return asyncio.run(measure(kind, server, pid, {"bidi": bidi, "rr": rr}, args))
        finally:
            if isinstance(server, RstqServer):
                server.cleanup()
            else:
                server.stop()


# --------------------------------------------------------------------------------------------
# Client calibration: the same client against a null HTTP server (what it can drive at most)
# --------------------------------------------------------------------------------------------

NULL_SERVER = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(body=b'"ok"', content_type="application/json")
app = web.Application()
app.router.add_post("/{tail:.*}", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def calibrate(args: argparse.Namespace) -> Run:
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-c", NULL_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("null server did not start")
            time.sleep(0.05)

        async def go() -> Run:
            client = CLIENTS[args.client](args.concurrency)
            try:
                return await drive(client, lambda: f"http://127.0.0.1:{port}/x", b'"bench"',
                                   args.concurrency, min(args.warmup, 1.0),
                                   min(args.seconds, 3.0), (proc.pid, None))
            finally:
                await client.close()

        return asyncio.run(go())
    finally:
        proc.terminate()
        proc.wait(5)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def fmt(v: float, unit: str) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.1f}" if unit == "inv/s" else f"{v:.3f}" if unit == "ms cpu" else f"{v:.2f}"


def report(results: dict[str, Measured], args: argparse.Namespace) -> bool:
    restate, rstq = results.get("restate"), results.get("rstq")
    Getter = Callable[[Measured], float]
    rows: list[tuple[str, str, str, Getter, str, Callable[[float, float], bool | None]]] = []

    def none(_r: float, _q: float) -> bool | None:
        return None

    def ratio_at_least(k: float) -> Callable[[float, float], bool | None]:
        return lambda ratio, _v: ratio >= k

    def ratio_at_most(k: float) -> Callable[[float, float], bool | None]:
        return lambda ratio, _v: ratio <= k

    def cpu_at_most(ms: float) -> Callable[[float, float], bool | None]:
        return lambda _ratio, v: v <= ms

    c = args.concurrency
    for sc in SCENARIOS:
        if args.scenarios and sc.name not in args.scenarios:
            continue
        n = sc.name
        is_greet = n == "greet"
        rows += [
            (sc.title, f"throughput c={c}", "inv/s",
             lambda m, n=n: m.tput[n].rate,
             f">= {TARGET_TPUT_RATIO}x" if is_greet else "",
             ratio_at_least(TARGET_TPUT_RATIO) if is_greet else none),
            (sc.title, f"p50 c={c}", "ms", lambda m, n=n: m.tput[n].pct_ms(0.5), "", none),
            (sc.title, f"p99 c={c}", "ms", lambda m, n=n: m.tput[n].pct_ms(0.99), "", none),
            (sc.title, "p50 c=1", "ms", lambda m, n=n: m.seq[n].pct_ms(0.5),
             f"<= {TARGET_P50_RATIO}x" if is_greet else "",
             ratio_at_most(TARGET_P50_RATIO) if is_greet else none),
            (sc.title, "p90 c=1", "ms", lambda m, n=n: m.seq[n].pct_ms(0.9), "", none),
            (sc.title, "p99 c=1", "ms", lambda m, n=n: m.seq[n].pct_ms(0.99), "", none),
            (sc.title, f"server cpu/inv c={c}", "ms cpu",
             lambda m, n=n: m.tput[n].per_inv_ms(m.tput[n].server_cpu),
             f"rstq <= {TARGET_CPU_MS} ms" if is_greet else "",
             cpu_at_most(TARGET_CPU_MS) if is_greet else none),
            (sc.title, f"service cpu/inv c={c}", "ms cpu",
             lambda m, n=n: m.tput[n].per_inv_ms(m.tput[n].service_cpu), "", none),
            (sc.title, f"client cpu/inv c={c}", "ms cpu",
             lambda m, n=n: m.tput[n].per_inv_ms(m.tput[n].client_cpu), "", none),
        ]

    header = ("scenario", "metric", "restate", "rstq", "rstq/restate", "target", "met?")
    table: list[tuple[str, ...]] = []
    all_met = True
    for title, metric, unit, get, target, check in rows:
        rv = get(restate) if restate else math.nan
        qv = get(rstq) if rstq else math.nan
        ratio = qv / rv if rv and not math.isnan(rv) and not math.isnan(qv) else math.nan
        met = ""
        if target:
            ok = check(ratio, qv) if not math.isnan(qv) else None
            if ok is not None and (not math.isnan(ratio) or "cpu" in unit):
                met = "yes" if ok else "NO"
                all_met = all_met and ok
            else:
                met = "n/a"
        table.append((title, f"{metric} ({unit})", fmt(rv, unit), fmt(qv, unit),
                      "-" if math.isnan(ratio) else f"{ratio:.2f}x", target, met))
    print_table(header, table)
    return all_met


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run")
    p.add_argument("--only", choices=["rstq", "restate"], default=None)
    p.add_argument("--fsync", choices=["batch", "none"], default="batch",
                   help="rstq log fsync policy (none is UNSAFE: no durability)")
    p.add_argument("--partitions", type=int, default=2, help="partitions, both servers")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--client", choices=sorted(CLIENTS), default="aiohttp")
    p.add_argument("--scenarios", nargs="*", choices=[s.name for s in SCENARIOS], default=None,
                   help="subset of scenarios (default: all)")
    p.add_argument("--profile", metavar="PATH", default=None,
                   help="cProfile the rstq server (RSTQ_PROFILE); stats written at its stop")
    p.add_argument("--rstq-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `rstq server` (repeatable), e.g. --rstq-arg=--loop"
                        " --rstq-arg=asyncio")
    p.add_argument("--no-calibrate", action="store_true", help="skip the null-server client run")
    args = p.parse_args(argv)

    durability = "batch (durable)" if args.fsync == "batch" else "none (UNSAFE: not durable)"
    print(f"invoke bench: {args.seconds:g}s measured + {args.warmup:g}s warm-up per run, "
          f"concurrency {args.concurrency}, partitions {args.partitions}, rstq fsync "
          f"{durability}, client {args.client}, {os.cpu_count()} cores shared by client, "
          "services and server", flush=True)
    if not args.no_calibrate:
        cal = calibrate(args)
        print(f"client ceiling (null aiohttp server, c={args.concurrency}): {cal.rate:.0f} req/s,"
              f" client cpu {cal.per_inv_ms(cal.client_cpu):.3f} ms/req", flush=True)

    kinds = [args.only] if args.only else ["restate", "rstq"]
    if "restate" in kinds:
        ensure_installed()
    results: dict[str, Measured] = {}
    for kind in kinds:
        results[kind] = bench_server(kind, args)
    all_met = report(results, args)
    if args.fsync == "none":
        print("\nNOTE: rstq ran with --fsync none (UNSAFE): numbers are not durable-equivalent.")
    print(f"\nall targets met: {'yes' if all_met else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
