"""Sans-IO replay of the recorded wire transcripts (restate-server 1.7.12 <-> restate-sdk
1.2.0): for each recorded attempt, feed the runtime->sdk frames into rstq.sdk's VM driving
the same handler (written against rstq.sdk) and compare what it sends with what the official
SDK sent, frame by frame. No sockets.

BIDI attempts are fed one runtime frame each time the handler blocks (as the stream would);
REQUEST_RESPONSE attempts get the whole request; its end is seen at the first wait (as
restate-sdk reads the final empty chunk only when it blocks). Compared modulo
wall-clock fields (Sleep.wake_up_time, OneWayCall.invoke_time) and ErrorMessage stack traces.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

import pytest
import rstq.sdk as restate
from rstq.protocol import (
    EndMessage,
    ErrorMessage,
    FrameDecoder,
    Message,
    OneWayCallCommandMessage,
    SleepCommandMessage,
    encode_frame,
)
from rstq.sdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from rstq.sdk.invocation import Invocation
from rstq.sdk.vm import VM

from tests.sdk.transcripts import Exchange, load

# ---------------------------------------------------------------- the lab services (svc.py)
greeter = Service("Greeter")
counter = VirtualObject("Counter")
holder = VirtualObject("Holder")
wf = Workflow("Wf")
lazy = VirtualObject("Lazy", enable_lazy_state=True)
FLAKY = {"n": 0}


@counter.handler()
async def add(ctx: ObjectContext, v: int) -> int:
    n = await ctx.get("n", type_hint=int) or 0
    n += v
    ctx.set("n", n)
    return n


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("n", type_hint=int) or 0


@counter.handler()
async def keys(ctx: ObjectContext) -> list[str]:
    ctx.set("a", 1)
    ctx.clear("n")
    return await ctx.state_keys()


@holder.handler()
async def put(ctx: ObjectContext, v: str) -> None:
    ctx.set("v", v)


@holder.handler(kind="shared")
async def read(ctx: ObjectSharedContext) -> str:
    return await ctx.get("v", type_hint=str) or ""


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    r = await ctx.run_typed("side", lambda: f"side-{name}")
    await ctx.sleep(timedelta(milliseconds=300))
    n = await ctx.object_call(add, key=name, arg=1)
    ctx.object_send(add, key=name, arg=10, send_delay=timedelta(milliseconds=500))
    return f"hello {name} {r} {n}"


@greeter.handler()
async def wait_awk(ctx: Context, key: str) -> str:
    awk_id, fut = ctx.awakeable(type_hint=str)
    ctx.object_send(put, key=key, arg=awk_id)
    v = await fut
    return f"awakeable got {v}"


@greeter.handler()
async def fail_terminal(ctx: Context) -> str:
    raise restate.TerminalError("nope", status_code=409)


@greeter.handler()
async def flaky(ctx: Context) -> str:
    FLAKY["n"] += 1
    if FLAKY["n"] % 3 != 0:
        raise ValueError(f"transient failure #{FLAKY['n']}")
    return "ok after retries"


@greeter.handler()
async def long_sleep(ctx: Context) -> str:
    await ctx.sleep(timedelta(seconds=600))
    return "woke"


@wf.main()
async def run(ctx: WorkflowContext, x: str) -> str:
    ctx.set("status", "waiting")
    v = await ctx.promise("p", type_hint=str).value()
    ctx.set("status", "done")
    return f"wf {x} {v}"


@wf.handler()
async def signal(ctx: WorkflowSharedContext, v: str) -> None:
    await ctx.promise("p", type_hint=str).resolve(v)


@lazy.handler()
async def bump(ctx: ObjectContext) -> list[Any]:
    n = await ctx.get("n", type_hint=int) or 0
    ctx.set("n", n + 1)
    return [n, await ctx.state_keys()]


SERVICES = {s.name: s for s in (greeter, counter, holder, wf, lazy)}

# ---------------------------------------------------------------- harness


class ScriptedShell:
    """Stands in for the HTTP stream: hands the VM one runtime frame per blocking wait."""

    def __init__(self, vm: VM, frames: list[bytes], close_on_wait: bool) -> None:
        self.vm = vm
        self.frames = frames
        self.close_on_wait = close_on_wait
        self.out = bytearray()
        self.inv: Invocation | None = None
        self._event = asyncio.Event()

    async def wait_progress(self) -> None:
        self.out += self.vm.take_output()
        assert self.inv is not None
        if self.close_on_wait:  # the end of a REQUEST_RESPONSE body, seen on first wait
            self.close_on_wait = False
            self.vm.notify_input_closed()
        if self.inv._running:
            await self._event.wait()
            self._event.clear()
        elif self.frames:
            self.vm.notify_input(self.frames.pop(0))
        else:
            self.vm.notify_input_closed()

    def notify_progress(self) -> None:
        self._event.set()


async def replay(ex: Exchange) -> list[tuple[int, int, Message]]:
    """Run the exchange's handler against its recorded runtime frames; the frames sent."""
    service, handler = ex.path.split("/")[-2:]
    h = SERVICES[service].handlers[handler]
    vm = VM(ex.version)
    frames = [encode_frame(f.msg, f.flags) for f in ex.runtime]
    known = 1 + ex.runtime[0].msg.known_entries  # type: ignore[attr-defined]
    vm.notify_input(b"".join(frames[:known]))
    rest = frames[known:]
    if not ex.bidi:
        vm.notify_input(b"".join(rest))
        rest = []
    shell = ScriptedShell(vm, rest, close_on_wait=not ex.bidi)
    inv = Invocation(vm, h, shell, run_in_executor=False)
    shell.inv = inv
    await inv.execute()
    shell.out += vm.take_output()
    return [(hdr.type, hdr.flags, m) for hdr, m in FrameDecoder().feed(bytes(shell.out))]


def normalize(t: int, flags: int, m: Message) -> tuple[int, int, Message]:
    if isinstance(m, SleepCommandMessage):
        m = m.replace(wake_up_time=0)
    elif isinstance(m, OneWayCallCommandMessage):
        m = m.replace(invoke_time=int(m.invoke_time > 0))
    elif isinstance(m, ErrorMessage):
        m = ErrorMessage(code=m.code, message=m.message)
    return t, flags, m


def _exchanges() -> list[Any]:
    out = []
    for i, ex in enumerate(load()):
        if ex.status != 200 or not ex.runtime:  # v4 / v8 / unknown-service probes
            continue
        marks = []
        if ex.path.endswith("/Counter/keys"):
            # restate-sdk 1.2.0 lists the key cleared just before (["a", "n"]); we list the
            # state as it is (["a"]).
            marks.append(pytest.mark.xfail(reason="restate-sdk keeps cleared keys in "
                                                  "eager state_keys", strict=True))
        out.append(pytest.param(ex, id=f"{i:02d}-{ex.section.split('-')[0]}-"
                                       f"{'bidi' if ex.bidi else 'rr'}-"
                                       f"{ex.path.split('/invoke/')[1]}", marks=marks))
    return out


def test_transcripts_parse_back_to_recorded_lengths() -> None:
    """The text-format parser is faithful: every frame re-encodes to its recorded length."""
    n = 0
    for ex in load():
        for f in ex.runtime + ex.sdk:
            if isinstance(f.msg, ErrorMessage):
                continue  # stack traces were cut when captured
            assert len(f.msg.encode()) == f.length, f
            n += 1
    assert n > 300


@pytest.mark.parametrize("ex", _exchanges())
async def test_same_frames_as_official_sdk(ex: Exchange) -> None:
    if ex.path.endswith("/flaky"):
        FLAKY["n"] = ex.runtime[0].msg.retry_count_since_last_stored_entry  # type: ignore
    got = [normalize(*f) for f in await replay(ex)]
    want = [normalize(f.type, f.flags, f.msg) for f in ex.sdk]
    assert got == want
    assert isinstance(want[-1][2], EndMessage | ErrorMessage) or want[-1][0] == 0x0001


def test_replay_mismatch_answers_570() -> None:
    """A journal whose first command is not what the handler issues -> ErrorMessage 570."""
    ex = next(e for e in load() if e.path.endswith("Greeter/greet") and not e.bidi
              and e.runtime[0].msg.known_entries > 1)  # type: ignore[attr-defined]
    runtime = [dataclasses.replace(f) for f in ex.runtime]
    # swap the recorded RunCommand's name: the handler now looks non-deterministic
    runtime[2].msg = runtime[2].msg.replace(name="other")
    bad = Exchange(ex.section, ex.path, 200, runtime, [])
    frames = asyncio.run(replay(bad))
    assert [type(m).__name__ for _, _, m in frames] == ["ErrorMessage"]
    assert frames[0][2].code == 570  # type: ignore[attr-defined]
