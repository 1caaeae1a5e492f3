"""Golden wire transcripts: what rstq SENDS an official restate-sdk service endpoint must equal
what the real restate-server 1.7.12 sends, frame for frame.

The lab scenarios of /work/shared/reference/restate-wire-transcripts.txt (Greeter/greet with
run + sleep + call + delayed one-way send, Counter add/get/keys, fail_terminal, an awakeable,
a workflow promise, a flaky handler, lazy state) run against both servers, with the services of
tests/support/apps/transcript_services.py behind the ASGI tap (tests/support/net/tap.py). Per
protocol version (v6, v7) one server hosts a BIDI (h2c) deployment, then a REQUEST_RESPONSE
(HTTP/1.1) one. For every invocation and every attempt we compare, after normalization:

* the request headers that matter (content-type, accept, x-restate-service-key, and the format
  of x-restate-invocation-id, which must equal StartMessage.debug_id and StartMessage.id);
* every frame runtime -> SDK: StartMessage fields (known_entries, partial_state, state_map, key,
  retry_count_since_last_stored_entry, ...), the replayed journal and the pushed notifications,
  with their payloads;
* the frame types the SDK answered with (AwaitingOn hints dropped: their count is timing).

Volatile values are normalized: invocation ids become ``<inv Service/handler[key](input)>``,
awakeable ids ``<awk>``, random_seed / duration_since_last_stored_entry / wake_up_time /
invoke_time ``<t>``. The checked-in v6 BIDI Greeter/greet + Counter exchanges of the lab
transcript (tests/compat/data/v6_bidi_greet.txt) are checked too.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import dataclasses
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rstq.protocol import messages as pm
from rstq.protocol.ids import InvocationId

from tests.support.harness.fixtures import _ensure_installed_or_skip
from tests.support.harness.restate_server import RestateServer
from tests.support.harness.rstq_server import RstqServer
from tests.support.harness.service_proc import ServiceProcess
from tests.support.net.tap import TAP_ENV, Exchange, Frame, read_exchanges

pytestmark = [pytest.mark.compat, pytest.mark.timeout(120)]

APP = "tests.support.apps.transcript_services:app"
DATA = Path(__file__).with_name("data")
INV_ID_RE = re.compile(r"inv_1[0-9a-zA-Z]{33}")
AWK_ID_RE = re.compile(r"sign_1[0-9A-Za-z_-]{38}")
# Timing / randomness: StartMessage fields dropped, command timestamps reduced to "<t>".
DROPPED = {"id", "random_seed", "duration_since_last_stored_entry"}
VOLATILE = {"wake_up_time", "invoke_time"}
# What curl sent in the lab, so the Input headers match the checked-in transcript byte for byte.
CURL = {"user-agent": "curl/7.88.1", "accept": "application/json"}
TIMEOUT = 20.0

# mode id -> (protocol v7?, use_http_11?, names used by the scenarios: as in the lab transcript)
MODES: dict[str, tuple[bool, bool, dict[str, str]]] = {
    "v6-bidi": (False, False, {"name": "bob", "obj": "alice", "awk": "k9", "wf": "w1"}),
    "v6-rr": (False, True, {"name": "dan", "obj": "carol", "awk": "k10", "wf": "w2"}),
    "v7-bidi": (True, False, {"name": "eve", "obj": "gus", "awk": "k11", "wf": "w3"}),
    "v7-rr": (True, True, {"name": "fay", "obj": "hal", "awk": "k12", "wf": "w4"}),
}


# ---------------------------------------------------------------------------------------------
# Driving the scenarios (identical client traffic against either server)
# ---------------------------------------------------------------------------------------------


class Driver:
    def __init__(self, client: httpx.AsyncClient, ingress: str, tap_path: Path) -> None:
        self.client = client
        self.ingress = ingress
        self.tap_path = tap_path

    async def call(self, path: str, body: Any = ..., expect: int = 200) -> Any:
        headers: dict[str, str] = {"user-agent": CURL["user-agent"]}
        content = None
        if body is not ...:
            content = json.dumps(body).encode()
            headers.update({"content-type": "application/json", "accept": "application/json"})
        else:
            headers["accept"] = "*/*"
        req = self.client.build_request("POST", self.ingress + path, content=content,
                                        headers=headers, timeout=TIMEOUT)
        if content is None:
            del req.headers["content-length"]  # curl sends none for a bodiless POST
        r = await self.client.send(req)
        assert r.status_code == expect, f"{path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    async def until(self, what: str, pred: Callable[[list[Exchange]], bool]) -> list[Exchange]:
        deadline = time.monotonic() + TIMEOUT
        delay = 0.01
        while True:
            exs = read_exchanges(self.tap_path)
            if pred(exs):
                return exs
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; tap has "
                                     f"{[(e.path, e.ended()) for e in exs]}")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    async def ended(self, service: str, handler: str, key: str | None = None,
                    input_: bytes | None = None) -> list[Exchange]:
        def ok(exs: list[Exchange]) -> bool:
            return any(e.service_handler == (service, handler) and e.ended()
                       and any(isinstance(f.msg, pm.EndMessage) for f in e.from_sdk)
                       and (key is None or e.headers.get("x-restate-service-key") == key)
                       and (input_ is None or e.input_value() == input_) for e in exs)

        return await self.until(f"{service}/{handler} key={key} input={input_!r} to end", ok)

    async def run(self, n: dict[str, str]) -> None:
        name, obj, awk, wfk = n["name"], n["obj"], n["awk"], n["wf"]
        # Greeter/greet: run, sleep, call Counter/add(1), one-way Counter/add(10) after 500 ms.
        assert await self.call("/Greeter/greet", name) == f"hello {name} side-{name} 1"
        await self.ended("Counter", "add", name, b"10")
        assert await self.call(f"/Counter/{name}/get") == 11
        assert await self.call("/Greeter/fail_terminal", expect=409) is not None
        # Delayed one-way send from the ingress.
        await self.call(f"/Counter/{obj}/add/send?delay=200ms", 5, expect=202)
        await self.ended("Counter", "add", obj)
        assert await self.call(f"/Counter/{obj}/get") == 5
        # Awakeable: the handler hands its id to Holder/<awk>, the test resolves it.
        await self.call("/Greeter/wait_awk/send", awk, expect=202)
        await self.ended("Holder", "put", awk)
        awk_id = await self.call(f"/Holder/{awk}/read")
        assert AWK_ID_RE.fullmatch(awk_id), awk_id
        await self.call(f"/restate/awakeables/{awk_id}/resolve", "yes", expect=202)
        await self.ended("Greeter", "wait_awk")
        # Workflow: run waits on promise p (await the GetPromise command), signal resolves it.
        await self.call(f"/Wf/{wfk}/run/send", "x", expect=202)
        await self.until("Wf/run to await its promise", lambda exs: any(
            e.service_handler == ("Wf", "run")
            and any(isinstance(f.msg, pm.GetPromiseCommandMessage) for f in e.from_sdk)
            for e in exs))
        assert await self.call(f"/Wf/{wfk}/signal", "sig") is None
        await self.ended("Wf", "run")
        # Retries: fails twice (10 ms retry interval), then succeeds.
        assert await self.call("/Greeter/flaky", name) == "ok after retries"
        # Eager state keys after set/clear; lazy state (GetLazyState / GetLazyStateKeys).
        assert await self.call(f"/Counter/{name}/keys") == ["a", "n"]  # SDK: eager keys
        assert await self.call(f"/Lazy/{name}/bump") == [0, ["n"]]
        assert await self.call(f"/Lazy/{name}/bump") == [1, ["n"]]
        # Everything the tap saw has finished (the runtime side may close a bit later).
        await self.until("all attempts to end", lambda exs: all(e.ended() for e in exs))


def capture(server: Any, modes: list[str], workdir: Path) -> dict[str, list[Exchange]]:
    """Run the scenarios of ``modes`` on a started ``server``; the tapped exchanges per mode."""
    out: dict[str, list[Exchange]] = {}
    for mode in modes:
        _, http11, names = MODES[mode]
        tap_path = workdir / f"tap-{mode}.jsonl"
        with ServiceProcess(APP, http2=not http11, env={TAP_ENV: str(tap_path)}) as svc:
            server.register(svc.url, use_http_11=http11)

            async def go(tap_path: Path = tap_path, names: dict[str, str] = names) -> None:
                limits = httpx.Limits(max_keepalive_connections=0)
                async with httpx.AsyncClient(limits=limits) as client:
                    for h in ("accept-encoding", "connection"):  # curl sends neither
                        del client.headers[h]
                    await Driver(client, server.ingress_url, tap_path).run(names)

            try:
                asyncio.run(go())
            except AssertionError as e:
                raise AssertionError(f"{type(server).__name__} {mode}: {e}\n"
                                     f"service log:\n{svc.logs()[-3000:]}") from e
            out[mode] = read_exchanges(tap_path)
    return out


# ---------------------------------------------------------------------------------------------
# Normalization
# ---------------------------------------------------------------------------------------------


def _bytes(b: bytes) -> str:
    try:
        return b.decode()
    except UnicodeDecodeError:
        return "0x" + b.hex()


class Normalizer:
    def __init__(self, exchanges: list[Exchange]) -> None:
        self.names: dict[str, str] = {}
        seen: dict[str, int] = {}
        for e in exchanges:  # the first exchange of an invocation names it
            iid = e.invocation_id
            if iid in self.names:
                continue
            svc, handler = e.service_handler
            key = e.headers.get("x-restate-service-key")
            inp = e.input_value()
            label = f"{svc}/{handler}" + (f"[{key}]" if key is not None else "") + \
                f"({_bytes(inp) if inp is not None else ''})"
            label = AWK_ID_RE.sub("<awk>", label)
            seen[label] = seen.get(label, 0) + 1
            self.names[iid] = label if seen[label] == 1 else f"{label}#{seen[label]}"

    def text(self, s: str) -> str:
        s = INV_ID_RE.sub(lambda m: f"<inv {self.names.get(m.group(0), '?')}>", s)
        return AWK_ID_RE.sub("<awk>", s)

    def value(self, v: Any, field_name: str = "") -> Any:
        if field_name in VOLATILE:
            return "<t>" if v else v
        if isinstance(v, bytes):
            return self.text(_bytes(v))
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, (list, tuple)):
            return [self.value(x) for x in v]
        if isinstance(v, dict):
            return {k: self.value(x, k) for k, x in v.items()}
        if hasattr(v, "value") and isinstance(v, int):  # enums
            return int(v)
        return v

    def frame(self, f: Frame) -> Any:
        if f.msg is None:
            return [f.name, f"undecodable: {f.error}"]
        fields = {k: v for k, v in dataclasses.asdict(f.msg).items()
                  if v not in (None, b"", "", (), [], 0, False)}
        if isinstance(f.msg, pm.StartMessage):
            fields = {k: v for k, v in fields.items() if k not in DROPPED}
        return [f.name, f.flags, self.value(fields)]

    def exchange(self, e: Exchange) -> dict[str, Any]:
        return {
            "http": e.http_version,
            "headers": {k: self.text(e.headers[k]) for k in
                        ("content-type", "accept", "x-restate-service-key") if k in e.headers},
            "status": e.status,
            "to_sdk": [self.frame(f) for f in e.to_sdk],
            "from_sdk": [f.name for f in e.from_sdk if not isinstance(f.msg, pm.AwaitingOnMessage)],
        }

    def invocations(self, exchanges: list[Exchange]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for e in exchanges:
            out.setdefault(self.names[e.invocation_id], []).append(self.exchange(e))
        return dict(sorted(out.items()))


def check_ids(exchanges: list[Exchange]) -> list[str]:
    """Invariants of the ids the runtime sends (per server): header == debug_id == id bytes, and
    random_seed stable across the attempts of one invocation."""
    problems: list[str] = []
    seeds: dict[str, int] = {}
    for e in exchanges:
        iid, start = e.invocation_id, e.start
        if not INV_ID_RE.fullmatch(iid):
            problems.append(f"{e.path}: x-restate-invocation-id {iid!r} is not an inv_1 id")
            continue
        if start is None:
            problems.append(f"{e.path}: first frame is not a StartMessage")
            continue
        if start.debug_id != iid:
            problems.append(f"{e.path}: Start.debug_id {start.debug_id!r} != header {iid!r}")
        if start.id != InvocationId.parse(iid).to_bytes():
            problems.append(f"{e.path}: Start.id does not encode {iid}")
        if seeds.setdefault(iid, start.random_seed) != start.random_seed:
            problems.append(f"{e.path}: random_seed changed between attempts of {iid}")
    return problems


def diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in b:
                out.append(f"{path}/{k}: only restate: {json.dumps(a[k])[:300]}")
            elif k not in a:
                out.append(f"{path}/{k}: only rstq: {json.dumps(b[k])[:300]}")
            else:
                out += diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in diff(x, y, f"{path}[{i}]")]
    if a != b:
        return [f"{path}:\n    restate: {json.dumps(a)[:600]}\n    rstq:    {json.dumps(b)[:600]}"]
    return []


# ---------------------------------------------------------------------------------------------
# Fixture: capture everything once (real servers and rstq start in parallel)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def captures() -> Iterator[dict[tuple[str, str], list[Exchange]]]:
    _ensure_installed_or_skip()
    workdir = Path(tempfile.mkdtemp(prefix="rstq-transcripts-"))
    jobs: list[tuple[str, bool]] = [(s, v7) for s in ("restate", "rstq") for v7 in (False, True)]

    def job(server_name: str, v7: bool) -> dict[str, list[Exchange]]:
        server: Any = (RestateServer(protocol_v7=v7) if server_name == "restate" else
                       RstqServer(extra_args=["--enable-protocol-v7"] if v7 else []))
        modes = [m for m, (mv7, _, _) in MODES.items() if mv7 == v7]
        sub = workdir / f"{server_name}-{'v7' if v7 else 'v6'}"
        sub.mkdir()
        server.start()
        try:
            return capture(server, modes, sub)
        finally:
            if isinstance(server, RstqServer):
                server.cleanup()
            else:
                server.stop()

    result: dict[tuple[str, str], list[Exchange]] = {}
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futs = {pool.submit(job, s, v7): s for s, v7 in jobs}
        for fut, s in futs.items():
            for mode, exs in fut.result().items():
                result[(s, mode)] = exs
    yield result


@pytest.mark.parametrize("mode", list(MODES))
def test_rstq_sends_what_restate_sends(captures: dict[tuple[str, str], list[Exchange]],
                                       mode: str) -> None:
    real, ours = captures[("restate", mode)], captures[("rstq", mode)]
    assert not check_ids(real), check_ids(real)
    assert not check_ids(ours), check_ids(ours)
    expected = Normalizer(real).invocations(real)
    observed = Normalizer(ours).invocations(ours)
    problems = diff(expected, observed)
    assert not problems, f"{mode}: rstq differs from restate-server:\n" + "\n".join(problems)


@pytest.mark.parametrize("server", ["restate", "rstq"])
def test_request_headers(captures: dict[tuple[str, str], list[Exchange]], server: str) -> None:
    for mode, (v7, http11, _) in MODES.items():
        ctype = f"application/vnd.restate.invocation.v{7 if v7 else 6}"
        for e in captures[(server, mode)]:
            assert e.headers.get("content-type") == ctype, (mode, e.path, e.headers)
            assert e.headers.get("accept") == ctype, (mode, e.path, e.headers)
            assert e.http_version == ("1.1" if http11 else "2"), (mode, e.path)
            start = e.start
            assert start is not None
            keyed = e.service_handler[0] in ("Counter", "Holder", "Wf", "Lazy")
            assert ("x-restate-service-key" in e.headers) == keyed, (mode, e.path, e.headers)
            if keyed:
                assert e.headers["x-restate-service-key"] == start.key


# ---------------------------------------------------------------------------------------------
# The checked-in lab transcript (v6 BIDI: Greeter/greet "bob" and the Counter exchanges)
# ---------------------------------------------------------------------------------------------

_FRAME_RE = re.compile(r"^\s+0x([0-9a-f]{4}) flags=0x([0-9a-f]{4}) len=(\d+) (\w+): ?(.*)$")


@dataclasses.dataclass
class GoldenExchange:
    path: str
    headers: dict[str, str]
    to_sdk: list[tuple[int, int, int, str, str]]
    from_sdk: list[tuple[int, int, int, str, str]]


def parse_golden(text: str) -> list[GoldenExchange]:
    out: list[GoldenExchange] = []
    cur: GoldenExchange | None = None
    direction: list[tuple[int, int, int, str, str]] = []
    for line in text.splitlines():
        if line.startswith("=== POST "):
            cur = GoldenExchange(line.split()[2], {}, [], [])
            out.append(cur)
        elif cur is None:
            continue
        elif line.startswith("  req headers: "):
            cur.headers = ast.literal_eval(line.removeprefix("  req headers: "))
        elif line.startswith(" runtime -> sdk:"):
            direction = cur.to_sdk
        elif line.startswith(" sdk -> runtime:"):
            direction = cur.from_sdk
        elif m := _FRAME_RE.match(line):
            direction.append((int(m[1], 16), int(m[2], 16), int(m[3]), m[4], m[5]))
    return out


def _start_fields(text: str) -> dict[str, Any]:
    f: dict[str, Any] = {
        "known_entries": int(m[1]) if (m := re.search(r"known_entries: (\d+)", text)) else 0,
        "partial_state": "partial_state: true" in text,
        "key": m[1] if (m := re.search(r'\} key: "([^"]*)"| key: "([^"]*)" dur', text))
        else None,
        "retry_count": int(m[1]) if (m := re.search(r"retry_count_since_last_stored_entry: (\d+)",
                                                    text)) else 0,
        "state_keys": re.findall(r'state_map \{ key: "([^"]*)" value: "[^"]*" \}', text),
    }
    if f["key"] is None and (m := re.search(r' key: "([^"]*)"(?! value)', text)):
        f["key"] = m[1]
    return f


def _our_start_fields(s: pm.StartMessage) -> dict[str, Any]:
    return {"known_entries": s.known_entries, "partial_state": bool(s.partial_state),
            "key": s.key or None, "retry_count": s.retry_count_since_last_stored_entry or 0,
            "state_keys": [e.key.decode() if isinstance(e.key, bytes) else e.key
                           for e in s.state_map]}


def check_against_golden(golden: list[GoldenExchange], exchanges: list[Exchange]) -> list[str]:
    """Each golden exchange must have a captured exchange on the same path whose frames have the
    same types and, except for Start (ids, seed, timing) and timestamps, the same payload length;
    Start must agree on known_entries, partial_state, key, state keys and retry count (state
    values differ by design: the lab read Counter/bob/get before the delayed add(10) ran, the
    test reads it after; the live comparison checks the values)."""
    problems: list[str] = []
    used: set[str] = set()
    for g in golden:
        g_start = _start_fields(g.to_sdk[0][4])
        cands = [e for e in exchanges if e.path == g.path and e.rid not in used
                 and e.start is not None and _our_start_fields(e.start) == g_start
                 and [f.type for f in e.to_sdk] == [t for t, *_ in g.to_sdk]]
        if not cands:
            problems.append(f"{g.path}: no captured exchange matches Start {g_start} and frame "
                            f"types {[n for *_, n, _ in g.to_sdk]}; captured: " + "; ".join(
                                f"{_our_start_fields(e.start)} {[f.name for f in e.to_sdk]}"
                                for e in exchanges if e.path == g.path and e.start is not None))
            continue
        e = cands[0]
        used.add(e.rid)
        for k in ("content-type", "accept"):
            if e.headers.get(k) != g.headers.get(k):
                problems.append(f"{g.path}: header {k} {e.headers.get(k)!r} != {g.headers[k]!r}")
        if ("x-restate-service-key" in g.headers) != ("x-restate-service-key" in e.headers):
            problems.append(f"{g.path}: x-restate-service-key presence differs")
        for (_t, flags, length, name, text), f in zip(g.to_sdk[1:], e.to_sdk[1:], strict=True):
            assert f.msg is not None
            ours = len(f.msg.encode())
            if f.flags != flags or ours != length:
                problems.append(f"{g.path}: {name} flags/len {f.flags:#06x}/{ours} != "
                                f"{flags:#06x}/{length} ({text})")
        g_types = [t for t, *_ in g.from_sdk]
        if [f.type for f in e.from_sdk] != g_types:
            problems.append(f"{g.path}: SDK answered {[f.name for f in e.from_sdk]}, golden "
                            f"{[n for *_, n, _ in g.from_sdk]}")
    return problems


@pytest.mark.parametrize("server", ["restate", "rstq"])
def test_matches_checked_in_transcript(captures: dict[tuple[str, str], list[Exchange]],
                                       server: str) -> None:
    golden = parse_golden((DATA / "v6_bidi_greet.txt").read_text())
    assert [g.path for g in golden] == ["/invoke/Greeter/greet", "/invoke/Counter/add",
                                        "/invoke/Counter/get", "/invoke/Greeter/fail_terminal",
                                        "/invoke/Counter/add"]
    problems = check_against_golden(golden, captures[(server, "v6-bidi")])
    assert not problems, f"{server} vs the lab transcript:\n" + "\n".join(problems)
