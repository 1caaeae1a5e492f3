"""A fake service endpoint for the epoch fence and Retry-After (tests/chaos).


Two deployments: ``/rr`` (REQUEST_RESPONSE, service ``ZombieRR``) and ``/h2`` (BIDI_STREAM,
service ``ZombieH2``), both virtual objects with small abort/inactivity timeouts and a fast
retry policy. Handlers:

* ``set``: attempt 1 answers 200 and then goes quiet, so the invoker aborts it and starts
  attempt 2. It keeps its stream open and, once attempt 2 has started, sends
  ``SetState(owner="zombie")`` + Output + End, and again after attempt 2 ended. Attempt 2 sends
  ``SetState(owner="live")`` + Output("live") + End. The state must say "live", and no zombie
  frame may be in the journal.
* ``busy``: answers 503 with ``Retry-After: 1`` twice, then Output("ok") + End.

``GET /stats`` answers the attempt start times (monotonic seconds) per invocation id.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

from rstq.protocol import messages as pm
from rstq.protocol.framing import encode_frame

from tests.support.net.tap import Receive, Scope, Send

MANIFEST_CT = "application/vnd.restate.endpointmanifest.v4+json"
MOUNTS = {"/rr": ("ZombieRR", "REQUEST_RESPONSE"), "/h2": ("ZombieH2", "BIDI_STREAM")}
ATTEMPTS: dict[str, list[float]] = defaultdict(list)
LIVE_STARTED: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
LIVE_ENDED: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
ZOMBIE_SENT: dict[str, int] = defaultdict(int)


def _frames(owner: str) -> bytes:
    value = json.dumps(owner).encode()
    return (encode_frame(pm.SetStateCommandMessage(key=b"owner", value=pm.Value(content=value)))
            + encode_frame(pm.OutputCommandMessage(value=pm.Value(content=value)))
            + encode_frame(pm.EndMessage()))


def manifest(service: str, mode: str) -> dict[str, Any]:
    handler = {"input": {}, "output": {}, "abortTimeout": 400, "inactivityTimeout": 200}
    return {
        "protocolMode": mode, "minProtocolVersion": 5, "maxProtocolVersion": 6,
        "services": [{"name": service, "ty": "VIRTUAL_OBJECT",
                      "retryPolicyInitialInterval": 20, "retryPolicyMaxInterval": 100,
                      "retryPolicyExponentiationFactor": 2.0,
                      "handlers": [{"name": n, **handler} for n in ("set", "busy")]}],
    }


async def _head(send: Send, status: int, ctype: str,
                extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype.encode()), *extra]})


async def _body(send: Send, body: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _drain(receive: Receive) -> None:
    """Read the request body until its end (REQUEST_RESPONSE) or the first chunk (BIDI)."""
    while True:
        msg = await receive()
        if msg["type"] != "http.request" or not msg.get("more_body"):
            return
        if msg.get("body"):
            return


async def _set(receive: Receive, send: Send, ctype: str, inv_id: str) -> None:
    attempt = len(ATTEMPTS[inv_id])
    await _drain(receive)
    await _head(send, 200, ctype)
    if attempt == 1:  # the zombie: quiet until the invoker gave up and attempt 2 started
        await asyncio.wait_for(LIVE_STARTED[inv_id].wait(), 30)
        try:
            await _body(send, _frames("zombie"), more=True)
            ZOMBIE_SENT[inv_id] += 1
            await asyncio.wait_for(LIVE_ENDED[inv_id].wait(), 30)
            await _body(send, _frames("zombie"))
            ZOMBIE_SENT[inv_id] += 1
        except Exception:  # noqa: BLE001 - the stream is gone: that is the point
            pass
        return
    LIVE_STARTED[inv_id].set()
    await asyncio.sleep(0.2)  # the zombie's frames go out first
    await _body(send, _frames("live"))
    LIVE_ENDED[inv_id].set()


async def fake(scope: Scope, receive: Receive, send: Send, service: str, mode: str,
               rest: str) -> None:
    if rest == "/discover":
        await _head(send, 200, MANIFEST_CT)
        await _body(send, json.dumps(manifest(service, mode)).encode())
        return
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    ctype = headers.get("content-type", "application/vnd.restate.invocation.v6")
    inv_id = headers.get("x-restate-invocation-id", "")
    ATTEMPTS[inv_id].append(time.monotonic())
    handler = rest.rsplit("/", 1)[-1]
    if handler == "set":
        await _set(receive, send, ctype, inv_id)
        return
    await _drain(receive)
    if len(ATTEMPTS[inv_id]) <= 2:
        await _head(send, 503, "text/plain", ((b"retry-after", b"1"),))
        await _body(send, b"busy, come back later")
        return
    await _head(send, 200, ctype)
    await _body(send, encode_frame(pm.OutputCommandMessage(value=pm.Value(content=b'"ok"')))
                + encode_frame(pm.EndMessage()))


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path == "/stats":
        await _head(send, 200, "application/json")
        await _body(send, json.dumps({"attempts": ATTEMPTS, "zombie_sent": ZOMBIE_SENT}).encode())
        return
    for prefix, (service, mode) in MOUNTS.items():
        if path.startswith(prefix + "/"):
            await fake(scope, receive, send, service, mode, path[len(prefix):])
            return
    await _head(send, 404, "text/plain")
    await _body(send, b"not found")
