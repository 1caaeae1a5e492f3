"""A malicious REQUEST_RESPONSE service endpoint (tests/chaos): it answers each invocation of
`Fuzz/<key>/run` with whatever body the test queued next (frames, garbage, oversized frames).

It runs aiohttp on its own thread, so synchronous tests (Hypothesis) can drive it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from queue import Empty, Queue

from aiohttp import web
from rstq.protocol import messages as pm
from rstq.protocol.framing import encode_frame


class Malicious:
    """A REQUEST_RESPONSE endpoint (aiohttp, on its own thread) answering each invocation of
    `Fuzz/<key>/run` with the next body queued by the test."""

    MANIFEST = {"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": 5,
                "maxProtocolVersion": 6,
                "services": [{"name": "Fuzz", "ty": "VIRTUAL_OBJECT",
                              "retryPolicyMaxAttempts": 1, "retryPolicyOnMaxAttempts": "KILL",
                              "handlers": [{"name": "run", "input": {}, "output": {},
                                            "abortTimeout": 2000, "inactivityTimeout": 1000}]}]}

    def __init__(self) -> None:
        self.bodies: Queue[bytes] = Queue()
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/discover"):
            return web.Response(body=json.dumps(self.MANIFEST).encode(), content_type=(
                "application/vnd.restate.endpointmanifest.v2+json"))
        await request.read()
        try:
            body = self.bodies.get_nowait()
        except Empty:
            body = encode_frame(pm.EndMessage())
        ctype = request.headers.get("content-type", "application/vnd.restate.invocation.v6")
        return web.Response(body=body, headers={"content-type": ctype})

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runner = runner
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def start(self) -> Malicious:
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
