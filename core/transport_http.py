"""The server's transport: HTTP/1.1 for REQUEST_RESPONSE, h2c for BIDI_STREAM deployments.

HTTP/1.1 is aiohttp: one POST per attempt whose body is what was sent before `end`. h2c is our
full-duplex client (core/h2c.py, since httpx/httpcore cannot stream both ways): one stream per
attempt on a pooled connection per peer. Their errors reach the invoker as `TransportError`
with the same message, so it needs to know neither library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager

import aiohttp
from rstq.core import h2c
from rstq.core.transport import Head, TransportError

# Request headers whose values differ per attempt: kept out of the HPACK dynamic table.
_UNIQUE_HEADERS = frozenset({"x-restate-invocation-id", "x-restate-service-key",
                             "traceparent"})


@contextmanager
def _unreachable() -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        raise  # aiohttp's connect timeout is a ClientError too: it stays a timeout, as before
    except (aiohttp.ClientError, h2c.H2ConnectionError) as e:
        raise TransportError(str(e)) from e


class _H2Exchange:
    def __init__(self, stream: h2c.H2Stream) -> None:
        self._stream = stream

    async def send(self, data: bytes) -> None:
        with _unreachable():
            await self._stream.send(data)

    async def end(self) -> None:
        with _unreachable():
            await self._stream.end()

    async def head(self) -> Head:
        with _unreachable():
            head = await self._stream.response_headers()
        return Head(head.status, head.header("content-type"), head.header("retry-after"))

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            with _unreachable():
                chunk = await self._stream.next_chunk()
            if chunk is None:
                return
            yield chunk

    async def read(self) -> bytes:
        with _unreachable():
            return await self._stream.read()


class _Http11Exchange:
    """The body is buffered until `end`, which sends the request and reads the head."""

    def __init__(self, session: aiohttp.ClientSession, url: str,
                 headers: Mapping[str, str]) -> None:
        self._session = session
        self._url = url
        self._headers = dict(headers)
        self._body: list[bytes] = []
        self.response: aiohttp.ClientResponse | None = None

    async def send(self, data: bytes) -> None:
        if self.response is not None:
            raise TransportError(f"{self._url}: request already sent")
        self._body.append(data)

    async def end(self) -> None:
        if self.response is not None:
            raise TransportError(f"{self._url}: request already sent")
        with _unreachable():
            self.response = await self._session.post(
                self._url, data=b"".join(self._body), headers=self._headers,
                skip_auto_headers=("User-Agent", "Accept-Encoding"))

    def _sent(self) -> aiohttp.ClientResponse:
        if self.response is None:
            raise TransportError(f"{self._url}: the response is read after end()")
        return self.response

    async def head(self) -> Head:
        resp = self._sent()
        return Head(resp.status, resp.headers.get("content-type"),
                    resp.headers.get("retry-after"))

    async def body(self) -> AsyncIterator[bytes]:
        chunks = self._sent().content.iter_any()
        while True:
            with _unreachable():
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk

    async def read(self) -> bytes:
        with _unreachable():
            return await self._sent().content.read()


class HttpTransport:
    def __init__(self) -> None:
        self._http: aiohttp.ClientSession | None = None
        self._h2 = h2c.H2Pool()

    def open(self, url: str, headers: Mapping[str, str], *, bidi: bool,
             ) -> AbstractAsyncContextManager[_H2Exchange | _Http11Exchange]:
        return self._open_h2(url, headers) if bidi else self._open_http11(url, headers)

    @asynccontextmanager
    async def _open_h2(self, url: str, headers: Mapping[str, str]) -> AsyncIterator[_H2Exchange]:
        with _unreachable():
            host, port, path = h2c.split_url(url)
            # HEADERS stay buffered: the first send writes them with the replay, in one write.
            stream = await self._h2.request(host, port, "POST", path, headers,
                                            never_index=_UNIQUE_HEADERS, flush=False)
        async with stream:  # resets the stream unless the peer finished it
            yield _H2Exchange(stream)

    @asynccontextmanager
    async def _open_http11(self, url: str, headers: Mapping[str, str],
                           ) -> AsyncIterator[_Http11Exchange]:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                connector=aiohttp.TCPConnector(limit=0))
        exchange = _Http11Exchange(self._http, url, headers)
        try:
            yield exchange
        finally:
            if exchange.response is not None:  # what `async with session.post(...)` does
                exchange.response.release()
                await exchange.response.wait_for_close()

    async def evict_silent(self, url: str, silent_s: float) -> None:
        await self._h2.evict_silent(url, silent_s)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self._h2.close()
