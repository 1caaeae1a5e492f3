"""ASGI lifespan for SDK apps served by hypercorn in tests and benchmarks."""

from __future__ import annotations

from typing import Any


def with_lifespan(sdk_app: Any) -> Any:
    """Answer the lifespan protocol around `sdk_app`: restate.app rejects it, after which
    hypercorn ignores SIGTERM; answering it keeps shutdown instant."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        await sdk_app(scope, receive, send)

    return wrapped
