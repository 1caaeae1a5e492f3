"""The chaos harness (tests/chaos): scale, figures, a mixed load and its invariants.

Scale: `RSTQ_CHAOS=long` (set by `make chaos`) runs the long variant; otherwise the short one
that `make test` runs. Each test records its figures with `record(...)`; tests/chaos/conftest.py
prints them at the end of the session (and writes them to `$RSTQ_CHAOS_FIGURES` if set).

`MixedLoad` drives the services of tests/support/apps/chaos_services.py. Every logical request has
an idempotency key and is retried with it until acknowledged, and each one's effect is exactly
one increment of a known counter, so after the run every counter must equal the number of
requests aimed at it; in between (after each recovery) it must lie between the increments
already acknowledged as done and the increments issued.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rstq.core.log.local import LocalLog

LONG = os.environ.get("RSTQ_CHAOS", "") == "long"
FIGURES: dict[str, dict[str, Any]] = {}
APP = "tests.support.apps.chaos_services:app"  # the services every chaos test drives


def scale(short: int, long: int) -> int:
    return long if LONG else short


def record(name: str, **figures: Any) -> None:
    FIGURES.setdefault(name, {}).update(figures)


def add(name: str, key: str, n: int = 1) -> None:
    fig = FIGURES.setdefault(name, {})
    fig[key] = int(fig.get(key, 0)) + n


async def wait_for(what: str, cond: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    """Poll `cond` with backoff until truthy; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        v = await cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def verify_logs(data_dir: Path) -> int:
    """Open every log of a stopped server's data dir (recovery included) and read it fully:
    every record must pass its checks. Returns the number of records read."""
    dirs = [data_dir / "meta" / "log"]
    dirs += sorted((data_dir / "partitions").glob("*/log"))
    n = 0
    for d in dirs:
        if not d.is_dir():
            continue
        lg = LocalLog.open_sync(d)
        try:
            lsn = lg.first_lsn - 1
            for got, _payload in lg.read(0):
                assert got == lsn + 1, f"{d}: LSN {got} after {lsn}"
                lsn = got
                n += 1
            assert lsn == lg.next_lsn - 1, f"{d}: read up to {lsn}, next is {lg.next_lsn}"
        finally:
            lg.close_sync()
    return n


KINDS = ("add", "chain", "later", "delayed", "sleep", "awake", "steps")
SYNC_KINDS = ("add", "chain")  # acknowledged only once their effect is done


@dataclass
class Req:
    i: int
    kind: str
    key: str
    idem: str
    acked: bool = False
    inv_id: str | None = None
    resolved: bool = False  # awake: the awakeable was resolved


@dataclass
class MixedLoad:
    ingress: Callable[[], str]  # current ingress URL (ports survive restarts)
    workdir: Path
    n: int
    seed: int
    keys_per_kind: int = 3
    concurrency: int = 12
    paused: asyncio.Event = field(default_factory=asyncio.Event)  # set: server down, hold off
    reqs: list[Req] = field(default_factory=list)
    sent_http: int = 0

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        self.run_id = f"{self.seed:x}{rnd.getrandbits(32):08x}"
        for i in range(self.n):
            kind = rnd.choice(KINDS)
            key = f"{kind}-{rnd.randrange(self.keys_per_kind)}"
            self.reqs.append(Req(i, kind, key, f"{self.run_id}-{i}"))
        self.steps_file = self.workdir / "steps.log"
        (self.workdir / "awk").mkdir(parents=True, exist_ok=True)

    # --- issuing -----------------------------------------------------------------------------

    def _request(self, r: Req) -> tuple[str, Any]:
        if r.kind == "add":
            return f"/Counter/{r.key}/add", 1
        if r.kind == "chain":
            return "/Chain/start", r.key
        if r.kind == "later":
            return "/Chain/later/send", {"key": r.key, "ms": 150}
        if r.kind == "delayed":
            return f"/Counter/{r.key}/add/send?delay=200ms", 1
        if r.kind == "sleep":
            return "/Sleeper/nap/send", {"key": r.key, "ms": 100}
        if r.kind == "awake":
            return "/Waiter/wait/send", {"key": r.key, "file": str(self.awk_file(r))}
        return "/Steps/run/send", {"key": r.key, "req": r.idem, "file": str(self.steps_file)}

    def awk_file(self, r: Req) -> Path:
        return self.workdir / "awk" / r.idem

    async def _send_until_acked(self, client: httpx.AsyncClient, r: Req) -> None:
        path, body = self._request(r)
        while not r.acked:
            if self.paused.is_set():
                await asyncio.sleep(0.02)
                continue
            try:
                self.sent_http += 1
                resp = await client.post(self.ingress() + path, json=body,
                                         headers={"idempotency-key": r.idem}, timeout=20)
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
                continue
            if resp.status_code == 200 and r.kind in SYNC_KINDS:
                r.acked = True
            elif resp.status_code == 202 and r.kind not in SYNC_KINDS:
                r.inv_id = resp.json()["invocationId"]
                r.acked = True
            else:
                await asyncio.sleep(0.05)

    async def _resolve_awakeables(self, client: httpx.AsyncClient, done: asyncio.Event) -> None:
        while True:
            pending = [r for r in self.reqs if r.kind == "awake" and not r.resolved]
            if not pending and done.is_set():
                return
            for r in pending:
                if self.paused.is_set() or not self.awk_file(r).exists():
                    continue
                awk = self.awk_file(r).read_text().strip()
                try:
                    resp = await client.post(f"{self.ingress()}/restate/awakeables/{awk}/resolve",
                                             json=1, timeout=10)
                except httpx.HTTPError:
                    continue
                if resp.status_code in (200, 202):
                    r.resolved = True
            await asyncio.sleep(0.05)

    async def run(self, client: httpx.AsyncClient) -> None:
        """Issue every request until acknowledged, resolve every awakeable."""
        sem = asyncio.Semaphore(self.concurrency)
        done = asyncio.Event()

        async def one(r: Req) -> None:
            async with sem:
                await self._send_until_acked(client, r)

        resolver = asyncio.create_task(self._resolve_awakeables(client, done))
        try:
            await asyncio.gather(*(one(r) for r in self.reqs))
        finally:
            done.set()
        await resolver

    @property
    def acked(self) -> int:
        return sum(r.acked for r in self.reqs)

    # --- invariants --------------------------------------------------------------------------

    def issued_per_key(self) -> dict[str, int]:
        return dict(Tally(r.key for r in self.reqs))

    def done_per_key(self) -> dict[str, int]:
        return dict(Tally(r.key for r in self.reqs if r.acked and r.kind in SYNC_KINDS))

    async def counters(self, client: httpx.AsyncClient) -> dict[str, int]:
        out = {}
        for key in sorted(self.issued_per_key()):
            resp = await client.post(f"{self.ingress()}/Counter/{key}/get", timeout=30)
            assert resp.status_code == 200, (key, resp.status_code, resp.text)
            out[key] = int(resp.json())
        return out

    async def check_bounds(self, client: httpx.AsyncClient) -> None:
        """After a recovery: acknowledged-and-done <= counter <= issued, for every key."""
        issued, done = self.issued_per_key(), self.done_per_key()  # done: before reading
        got = await self.counters(client)
        for key, v in got.items():
            assert done.get(key, 0) <= v <= issued[key], \
                f"counter {key} = {v}: done {done.get(key, 0)}, issued {issued[key]}"

    async def check_final(self, client: httpx.AsyncClient, timeout: float) -> int:
        """Everything completes; counters are exact; no journaled ctx.run ran again.
        Returns the number of requests checked."""
        issued = self.issued_per_key()
        got: dict[str, int] = {}

        async def settled() -> bool:
            got.update(await self.counters(client))
            return got == issued

        try:
            await wait_for("counters to reach their totals", settled, timeout)
        except AssertionError:
            diff = {k: (got.get(k), v) for k, v in issued.items() if got.get(k) != v}
            raise AssertionError(f"counters (got, expected) differ: {diff}") from None
        outputs: dict[str, list[str]] = {}
        deadline = time.monotonic() + timeout
        for r in self.reqs:  # the effect may be there before the invocation ended (backoff)
            if r.inv_id is None:
                continue
            left = max(1.0, deadline - time.monotonic())
            try:
                resp = await client.get(
                    f"{self.ingress()}/restate/invocation/{r.inv_id}/attach", timeout=left)
            except httpx.TimeoutException:
                raise AssertionError(f"{r.kind} {r.inv_id} never completed") from None
            assert resp.status_code == 200, (r.kind, r.inv_id, resp.status_code, resp.text)
            if r.kind == "steps":
                outputs[r.idem] = resp.json()
        self._check_steps(outputs)
        return len(self.reqs)

    def _check_steps(self, outputs: dict[str, list[str]]) -> None:
        lines = self.steps_file.read_text().split("\n") if self.steps_file.exists() else []
        last: dict[tuple[str, str], str] = {}
        runs: dict[tuple[str, str], int] = defaultdict(int)
        for line in lines:
            if line.strip():
                req, step, token = line.split()
                last[(req, step)] = token
                runs[(req, step)] += 1
        for req, tokens in outputs.items():
            for step, token in zip(("s1", "s2", "s3"), tokens, strict=True):
                assert last.get((req, step)) == token, \
                    f"{req} {step}: ran again after its result {token} was journaled"
        self.step_reruns = sum(n - 1 for n in runs.values())


def dump_figures(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(FIGURES, indent=2, sort_keys=True))
