"""An in-memory transport: each exchange calls an ASGI app directly, no socket, no HTTP server.

For tests: the invoker runs real attempts against a service endpoint's ASGI app (rstq.sdk's,
the official restate-sdk's: core names neither, any ASGI 3 callable serves) on the same event
loop, so nothing waits on a network or another process. REQUEST_RESPONSE exchanges get an
HTTP/1.1 scope and BIDI_STREAM ones an HTTP/2 scope, since SDKs pick their mode from
`http_version` behind a real server too. Request bytes become `http.request` events as they
are sent; `end` sends the last one (`more_body: False`); leaving the exchange disconnects
(`http.disconnect`, which an app waiting in `receive()` gets at once) and then cancels the app
if it still runs.

What a server would do on an app's failure is kept: an app that raises (or returns) before it
started the response answers 500; one that raises after it is a broken stream
(`TransportError`), as a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote, urlsplit

from rstq.core.transport import Head, TransportError

log = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


def _scope(method: str, url: str, headers: Mapping[str, str], bidi: bool) -> dict[str, Any]:
    parts = urlsplit(url)
    raw_path = parts.path or "/"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "2" if bidi else "1.1",
        "method": method,
        "scheme": parts.scheme or "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in headers.items()],
        "client": ("127.0.0.1", 0),
        "server": (parts.hostname or "localhost", parts.port or 80),
    }


class _AsgiExchange:
    def __init__(self, app: AsgiApp, scope: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        self._requests: deque[Message] = deque()  # http.request events the app has not read
        self._request_ready = asyncio.Event()
        self._ended = False  # the last http.request was queued
        self._disconnected = False
        self._head: asyncio.Future[Head] = loop.create_future()
        # Response body chunks; None: the body is complete; an exception: the stream broke.
        self._chunks: asyncio.Queue[bytes | None | TransportError] = asyncio.Queue()
        self._body_done = False
        self.task = loop.create_task(self._serve(app, scope))

    # --- the app's side ------------------------------------------------------------------------

    async def _serve(self, app: AsgiApp, scope: dict[str, Any]) -> None:
        try:
            await app(scope, self._receive, self._send)
        except Exception as e:
            log.debug("ASGI app failed on %s", scope["path"], exc_info=True)
            self._finish(TransportError(f"the ASGI app failed: {e!r}"))
        else:
            self._finish(None)

    def _finish(self, error: TransportError | None) -> None:
        if not self._head.done():  # nothing was answered: the server's 500
            self._head.set_result(Head(500, None, None))
            error = None
        if not self._body_done:
            self._body_done = True
            self._chunks.put_nowait(error)

    async def _receive(self) -> Message:
        while not self._requests:
            if self._disconnected:
                return {"type": "http.disconnect"}
            self._request_ready.clear()
            await self._request_ready.wait()
        return self._requests.popleft()

    async def _send(self, message: Message) -> None:
        if self._disconnected:
            return  # the client is gone: dropped, as a server drops writes to a closed stream
        if message["type"] == "http.response.start" and not self._head.done():
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in message.get("headers", ())}
            self._head.set_result(Head(int(message["status"]), headers.get("content-type"),
                                       headers.get("retry-after")))
        elif message["type"] == "http.response.body" and not self._body_done:
            body = bytes(message.get("body", b""))
            if body:
                self._chunks.put_nowait(body)
            if not message.get("more_body", False):
                self._body_done = True
                self._chunks.put_nowait(None)

    # --- the invoker's side (Exchange) ---------------------------------------------------------

    def _request(self, body: bytes, more: bool) -> None:
        if self._ended or self._disconnected:
            raise TransportError("request side already closed")
        self._requests.append({"type": "http.request", "body": body, "more_body": more})
        self._ended = not more
        self._request_ready.set()

    async def send(self, data: bytes) -> None:
        self._request(data, True)

    async def end(self) -> None:
        self._request(b"", False)

    async def head(self) -> Head:
        return await asyncio.shield(self._head)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._chunks.get()
            if item is None or isinstance(item, TransportError):
                self._chunks.put_nowait(item)  # stays at its end, as a finished stream does
                if item is None:
                    return
                raise item
            yield item

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.body()])

    async def close(self) -> None:
        self._disconnected = True
        self._request_ready.set()
        if not self.task.done():
            await asyncio.sleep(0)  # one step for an app waiting in receive() to see it
        if not self.task.done():
            self.task.cancel()
        await asyncio.wait([self.task])  # raises nothing of the app's: it is over either way


class AsgiTransport:
    """Exchanges with `app`, in memory. `opened` counts them (one per attempt)."""

    def __init__(self, app: AsgiApp) -> None:
        self.app = app
        self.opened = 0
        self._live: set[_AsgiExchange] = set()

    @contextlib.asynccontextmanager
    async def open(self, url: str, headers: Mapping[str, str], *, bidi: bool,
                   ) -> AsyncIterator[_AsgiExchange]:
        exchange = _AsgiExchange(self.app, _scope("POST", url, headers, bidi))
        self.opened += 1
        self._live.add(exchange)
        try:
            yield exchange
        finally:
            await exchange.close()
            self._live.discard(exchange)  # after: an interrupted close is left to close()

    async def get(self, url: str, headers: Mapping[str, str], *, bidi: bool,
                  ) -> tuple[int, str | None, bytes]:
        """A GET (discovery): (status, content-type, body)."""
        exchange = _AsgiExchange(self.app, _scope("GET", url, headers, bidi))
        try:
            await exchange.end()
            head = await exchange.head()
            return head.status, head.content_type, await exchange.read()
        finally:
            await exchange.close()

    async def evict_silent(self, url: str, silent_s: float) -> None:
        pass  # no connections to go silent

    async def close(self) -> None:
        live, self._live = list(self._live), set()
        for exchange in live:
            await exchange.close()
