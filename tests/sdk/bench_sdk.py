"""SDK CPU per invocation, rstq.sdk vs the official restate-sdk, same process, same input.

Each invocation goes through the SDK's ASGI app as restate-server would drive it over one
BIDI stream (protocol v6): Start + Input, then a RunCompletionNotification answering each
ProposeRunCompletion, until End. No sockets: the runtime side is scripted in-process, so
the figure is the SDK's own CPU (ASGI app + protocol core + handler).

    .venv/bin/python -m tests.sdk.bench_sdk [N]
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from typing import Any

import restate
import rstq.sdk as rsdk
from rstq.protocol import (
    FrameDecoder,
    InputCommandMessage,
    ProposeRunCompletionMessage,
    RunCompletionNotificationMessage,
    StartMessage,
    Value,
    encode_frame,
)


def build(mod: Any) -> Any:
    svc = mod.Service("Bench")

    @svc.handler()
    async def greet(ctx: Any, name: str) -> str:
        return f"Hello {name}!"

    @svc.handler()
    async def three_steps(ctx: Any, name: str) -> str:
        a = await ctx.run_typed("a", lambda: name.upper())
        b = await ctx.run_typed("b", lambda: len(name))
        c = await ctx.run_typed("c", lambda: name[::-1])
        return f"{a}{b}{c}"

    return mod.app([svc])


async def invoke(app: Any, handler: str, n: int) -> None:
    start = encode_frame(StartMessage(id=os.urandom(24), debug_id="inv_1x", known_entries=1,
                                      partial_state=True, random_seed=n)) + \
        encode_frame(InputCommandMessage(value=Value(b'"bob"')))
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": start, "more_body": True})
    dec = FrameDecoder()
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await inbox.get()

    async def send(ev: dict[str, Any]) -> None:
        if ev["type"] != "http.response.body":
            return
        for _, m in dec.feed(ev.get("body", b"")):
            if isinstance(m, ProposeRunCompletionMessage):
                note = RunCompletionNotificationMessage(
                    completion_id=m.result_completion_id, value=Value(m.value or b""))
                inbox.put_nowait({"type": "http.request", "body": encode_frame(note),
                                  "more_body": True})
            elif type(m).__name__ in ("EndMessage", "ErrorMessage", "SuspensionMessage"):
                inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        if not ev.get("more_body", False):
            done.set()

    scope = {"type": "http", "http_version": "2", "method": "POST",
             "path": f"/invoke/Bench/{handler}", "query_string": b"", "headers": [
                 (b"content-type", b"application/vnd.restate.invocation.v6"),
                 (b"accept", b"application/vnd.restate.invocation.v6")]}
    await app(scope, receive, send)
    await done.wait()


async def measure(app: Any, handler: str, n: int) -> float:
    for i in range(50):  # warm up
        await invoke(app, handler, i)
    gc.collect()
    t0 = time.process_time()
    for i in range(n):
        await invoke(app, handler, i)
    return (time.process_time() - t0) / n * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    apps = {"restate-sdk 1.2.0": build(restate), "rstq.sdk": build(rsdk)}
    print(f"CPU ms per invocation (n={n}, python {sys.version.split()[0]})")
    for handler in ("greet", "three_steps"):
        for name, app in apps.items():
            ms = asyncio.run(measure(app, handler, n))
            print(f"  {handler:12s} {name:18s} {ms:.3f} ms")


if __name__ == "__main__":
    main()
