"""`AsgiTransport` on its own: the ASGI events it makes, and a failing app as a server shows it."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from rstq.core.transport import Head, TransportError
from rstq.core.transport_asgi import AsgiTransport, Receive, Send

URL = "http://svc.test:9080/base/invoke/My%2FSvc/run"


async def echo(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Answers each request chunk as it comes (full duplex), then the scope it saw."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"x/echo"), (b"retry-after", b"3")]})
    while True:
        msg = await receive()
        await send({"type": "http.response.body", "body": msg.get("body", b""),
                    "more_body": True})
        if not msg.get("more_body"):
            break
    seen = f"|{scope['http_version']} {scope['method']} {scope['path']}"
    await send({"type": "http.response.body", "body": seen.encode()})


@pytest.mark.parametrize("bidi", [False, True])
async def test_request_and_response_stream_both_ways(bidi: bool) -> None:
    transport = AsgiTransport(echo)
    async with transport.open(URL, {"X-Id": "1"}, bidi=bidi) as exchange:
        await exchange.send(b"ab")
        assert await exchange.head() == Head(200, "x/echo", "3")
        body = exchange.body()
        assert await anext(body) == b"ab"  # answered before the request ended
        await exchange.end()
        rest = b"".join([chunk async for chunk in body])
        with pytest.raises(TransportError):
            await exchange.send(b"late")
    version = "2" if bidi else "1.1"
    assert rest == f"|{version} POST /base/invoke/My/Svc/run".encode()
    assert transport.opened == 1


async def test_an_app_failing_before_its_response_answers_500() -> None:
    async def broken(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async with AsgiTransport(broken).open(URL, {}, bidi=True) as exchange:
        assert (await exchange.head()).status == 500
        assert await exchange.read() == b""


async def test_an_app_failing_mid_response_breaks_the_stream() -> None:
    async def broken(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        raise RuntimeError("boom")

    async with AsgiTransport(broken).open(URL, {}, bidi=True) as exchange:
        chunks = exchange.body()
        assert await anext(chunks) == b"x"
        with pytest.raises(TransportError, match="boom"):
            await anext(chunks)


async def test_leaving_an_exchange_disconnects_and_stops_the_app() -> None:
    seen: list[str] = []

    async def waits(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append((await receive())["type"])

    transport = AsgiTransport(waits)
    async with transport.open(URL, {}, bidi=True) as exchange:
        await exchange.head()
    assert seen == ["http.disconnect"]
    assert exchange.task.done() and not exchange.task.cancelled()
