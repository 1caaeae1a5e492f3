"""The invoker's transport seam: how an attempt's bytes reach a service endpoint and back.

The invoker encodes and decodes the Restate frames itself (sans-IO: `FrameDecoder`); a
`Transport` only moves bytes. It opens one `Exchange` per attempt (a POST to
`<deployment>/invoke/<service>/<handler>`): the request body is written with `send` and closed
with `end`, the response is read with `head` then `body`. Leaving the `open(...)` context
releases the exchange, aborting it if it is not finished (a cancelled attempt).

REQUEST_RESPONSE (`bidi=False`): everything is sent, then `end`, then the response is read.
BIDI_STREAM (`bidi=True`): both directions are used at once, notifications are sent while the
response streams in. Implementations: `transport_http.HttpTransport` (HTTP/1.1 with aiohttp,
h2c with core/h2c.py; the server's default) and `transport_asgi.AsgiTransport` (an ASGI app
called in memory: tests without sockets).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


class TransportError(Exception):
    """The endpoint cannot be reached, or the exchange broke (reset, connection lost).

    The attempt fails as retryable (503); the message is the underlying error's."""


@dataclass(frozen=True)
class Head:
    """What the invoker reads of a response head."""

    status: int
    content_type: str | None
    retry_after: str | None


class Exchange(Protocol):
    """One attempt's request and response."""

    async def send(self, data: bytes) -> None:
        """Write request body bytes (waits for flow control where there is any)."""

    async def end(self) -> None:
        """Close the request side; the response can still be read."""

    async def head(self) -> Head:
        """Wait for the response head."""

    def body(self) -> AsyncIterator[bytes]:
        """The response body, in chunks as they arrive."""

    async def read(self) -> bytes:
        """The rest of the response body (to quote it in an error)."""


class Transport(Protocol):
    def open(self, url: str, headers: Mapping[str, str], *, bidi: bool,
             ) -> AbstractAsyncContextManager[Exchange]:
        """Start a POST to `url` (the request head only, nothing of the body yet)."""

    async def evict_silent(self, url: str, silent_s: float) -> None:
        """Drop pooled connections to `url`'s peer that sent nothing for `silent_s` (a peer
        gone without FIN or RST would otherwise be reused for ever)."""

    async def close(self) -> None:
        """Close every connection (and whatever still runs on them)."""
