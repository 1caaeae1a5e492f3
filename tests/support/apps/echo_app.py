"""Tiny ASGI app for the h2c client tests.

/echo  streams back each request chunk as soon as it arrives (proves full duplex)
/bytes?n=N  returns N bytes (large response bodies, flow control)
/count  reads the whole request body and returns its length and sha256
/headers  returns the request headers as JSON
/{badtype,badjson,badschema,range,bidi,boom}/discover  misbehaving discovery endpoints
anything else: 404
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

_V4 = b"application/vnd.restate.endpointmanifest.v4+json"


def _manifest(mode: str, lo: int, hi: int) -> bytes:
    doc = {"protocolMode": mode, "minProtocolVersion": lo, "maxProtocolVersion": hi}
    return json.dumps({**doc, "services": []}).encode()


# Misbehaving discovery endpoints: {prefix}/discover -> (status, content type, body).
FAKE_DISCOVERY = {
    "/badtype/discover": (200, b"application/json", _manifest("BIDI_STREAM", 5, 7)),
    "/badjson/discover": (200, _V4, b"{not json"),
    "/badschema/discover": (200, _V4, b'{"protocolMode": "BIDI_STREAM"}'),
    "/range/discover": (200, _V4 + b"; charset=utf-8", _manifest("REQUEST_RESPONSE", 8, 9)),
    "/bidi/discover": (200, _V4, _manifest("BIDI_STREAM", 5, 7)),
    "/boom/discover": (500, b"text/plain", b"internal failure: " + b"x" * 5000),
}
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def _start(send: Send, status: int = 200, ctype: bytes = b"application/octet-stream") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
    )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/echo":
        await _start(send)
        # An empty body chunk forces the response head out before any request data arrives.
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            if body:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            if not msg.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/bytes":
        n = int(parse_qs(scope["query_string"].decode()).get("n", ["0"])[0])
        await _start(send)
        chunk = bytes(range(256)) * 256  # 64 KiB, a recognisable pattern
        sent = 0
        while sent < n:
            part = chunk[: min(len(chunk), n - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < n})
        if n == 0:
            await send({"type": "http.response.body", "body": b""})
    elif path == "/count":
        h = hashlib.sha256()
        total = 0
        while True:
            msg = await receive()
            body = msg.get("body", b"")
            h.update(body)
            total += len(body)
            if not msg.get("more_body", False):
                break
        await _start(send, ctype=b"application/json")
        out = json.dumps({"n": total, "sha256": h.hexdigest()}).encode()
        await send({"type": "http.response.body", "body": out})
    elif path == "/headers":
        await _start(send, ctype=b"application/json")
        hs = {k.decode(): v.decode() for k, v in scope["headers"]}
        await send({"type": "http.response.body", "body": json.dumps(hs).encode()})
    elif path.endswith("/discover") and path in FAKE_DISCOVERY:
        status, ctype, body = FAKE_DISCOVERY[path]
        await _start(send, status, ctype)
        await send({"type": "http.response.body", "body": body})
    else:
        await _start(send, 404, b"text/plain")
        await send({"type": "http.response.body", "body": b"not found"})
