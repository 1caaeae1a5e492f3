"""ASGI shell: discovery, health and invoke over HTTP/1.1 (REQUEST_RESPONSE) or h2c
(BIDI_STREAM). All protocol logic lives in :mod:`.vm` and :mod:`.invocation`; this module
only moves bytes between the ASGI server and them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import unquote

from rstq.protocol import (
    invocation_content_type,
    manifest_content_type,
    negotiate_version,
    pick_manifest_version,
)

from .discovery import manifest_json
from .invocation import Invocation
from .service import AnyService
from .vm import VM

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SERVER_HEADER = (b"x-restate-server", b"rstq-sdk-python/0.1.0")


class _Shell:
    """Feeds request body chunks into the VM; flushes VM output as response chunks."""

    __slots__ = ("vm", "receive", "send", "_event", "_reader", "disconnected")

    def __init__(self, vm: VM, receive: Receive, send: Send) -> None:
        self.vm = vm
        self.receive = receive
        self.send = send
        self._event = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.disconnected = False

    async def flush(self) -> None:
        out = self.vm.take_output()
        if out and not self.disconnected:
            await self.send({"type": "http.response.body", "body": out, "more_body": True})

    async def read_once(self) -> None:
        msg = await self.receive()
        if msg["type"] == "http.disconnect":
            self.disconnected = True
            self.vm.notify_input_closed()
            return
        body = msg.get("body")
        if body:
            self.vm.notify_input(body)
        if not msg.get("more_body", False):
            self.vm.notify_input_closed()

    async def _read_loop(self) -> None:
        while not self.vm.input_closed:
            await self.read_once()
            self._event.set()

    async def wait_progress(self) -> None:
        await self.flush()
        if self._reader is None and not self.vm.input_closed:
            self._reader = asyncio.ensure_future(self._read_loop())
        await self._event.wait()
        self._event.clear()

    def notify_progress(self) -> None:
        self._event.set()

    async def drain(self) -> None:
        """Wait until the runtime closed its side (hypercorn drops the stream once we
        close ours, so close last)."""
        if self._reader is not None:
            await self._reader
        while not self.vm.input_closed:
            await self.read_once()


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


async def _respond(send: Send, status: int, body: bytes = b"",
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*(headers or []), SERVER_HEADER]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class RestateApp:
    """The ASGI application serving ``services``; build it with :func:`app`."""

    def __init__(self, services: Iterable[AnyService],
                 protocol: str | None = None, run_in_executor: bool = True) -> None:
        self.services: dict[str, AnyService] = {}
        for s in services:
            if s.name in self.services:
                raise ValueError(f"duplicate service {s.name}")
            self.services[s.name] = s
        self.protocol = protocol  # force "bidi" / "request_response"
        self.run_in_executor = run_in_executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.endswith("/discover"):
            await self._discover(scope, send)
        elif path.endswith("/health"):
            await _respond(send, 200, b'{"status":"ok"}', [(b"content-type", b"application/json")])
        else:
            parts = path.rstrip("/").split("/")
            if len(parts) >= 3 and parts[-3] == "invoke":
                await self._invoke(scope, receive, send, unquote(parts[-2]), unquote(parts[-1]))
            else:
                await _respond(send, 404)

    async def _discover(self, scope: Scope, send: Send) -> None:
        version = pick_manifest_version(_header(scope, b"accept"))
        if version is None:
            await _respond(send, 415)
            return
        mode = self.protocol or ("bidi" if scope.get("http_version") == "2"
                                 else "request_response")
        try:
            body = manifest_json(self.services.values(), version,
                                 "BIDI_STREAM" if mode == "bidi" else "REQUEST_RESPONSE")
        except ValueError as exc:
            await _respond(send, 500, str(exc).encode())
            return
        await _respond(send, 200, body,
                       [(b"content-type", manifest_content_type(version).encode())])

    async def _invoke(self, scope: Scope, receive: Receive, send: Send, service: str,
                      handler_name: str) -> None:
        version = negotiate_version(_header(scope, b"content-type"))
        if version is None:
            await _respond(send, 415)
            return
        svc = self.services.get(service)
        handler = svc.handlers.get(handler_name) if svc is not None else None
        if handler is None:
            await _respond(send, 404, json.dumps(
                {"message": f"unknown handler {service}/{handler_name}"}).encode())
            return
        vm = VM(version)
        shell = _Shell(vm, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", invocation_content_type(version).encode()), SERVER_HEADER]})
        while not vm.ready and not vm.input_closed and not vm.ended:
            await shell.read_once()
        if not vm.ended:
            if not vm.ready:
                vm.fail(571, "request body ended before the replayed journal")
            else:
                attempt_headers = {k.decode("latin-1"): v.decode("latin-1")
                                   for k, v in scope.get("headers", ())}
                await Invocation(vm, handler, shell, attempt_headers,
                                 self.run_in_executor).execute()
        await shell.flush()
        await shell.drain()
        if not shell.disconnected:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def app(services: Iterable[AnyService], protocol: str | None = None,
        identity_keys: list[str] | None = None, run_in_executor: bool = True) -> RestateApp:
    """ASGI app with discovery (manifest v2-v4 by Accept) and invoke (protocol v5-v7 by
    content type). ``protocol`` forces "bidi" or "request_response" in the manifest;
    otherwise HTTP/2 discovery advertises BIDI_STREAM and HTTP/1.1 REQUEST_RESPONSE.
    ``run_in_executor=False`` runs synchronous ``ctx.run`` actions on the event loop."""
    del identity_keys  # request signing is not supported yet
    return RestateApp(services, protocol, run_in_executor)
