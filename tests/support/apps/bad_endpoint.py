"""A fake service endpoint that misbehaves on purpose (tests/core/test_bad_services.py).

Mounted under three path prefixes, each a deployment of its own:

* ``/rr``: service ``BadRR``, protocolMode REQUEST_RESPONSE (register with use_http_11);
* ``/h2``: service ``BadH2``, protocolMode BIDI_STREAM (h2c);
* ``/sdk``: the official restate-sdk, service ``Drift``, whose handler changes its code between
  attempts (driven by a flag file), so the SDK itself reports a journal mismatch (570).

``/discover`` answers a valid v4 manifest (fast retry policy, small abort/inactivity timeouts
for ``hang``); ``/invoke/<svc>/<handler>`` misbehaves per handler, see :data:`HANDLERS`.
``ok`` is the healthy handler: Output("ok") + End.

Serve with: ``hypercorn tests.support.apps.bad_endpoint:app``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import restate
from restate import Context, Service
from rstq.protocol import messages as pm
from rstq.protocol.framing import encode_frame, encode_header

from tests.support.net.tap import Receive, Scope, Send

MANIFEST_CT = "application/vnd.restate.endpointmanifest.v4+json"

OUTPUT_OK = encode_frame(pm.OutputCommandMessage(value=pm.Value(content=b'"ok"')))
END = encode_frame(pm.EndMessage())

# handler -> (HTTP status, content-type or None for the protocol's, body) for the simple cases.
HANDLERS: dict[str, tuple[int, str | None, bytes]] = {
    "ok": (200, None, OUTPUT_OK + END),
    "garbage": (200, None, b"this is not a frame at all, just bytes\n"),
    # An Output frame announcing 50 payload bytes, 5 sent, then the stream closes.
    "truncated": (200, None, encode_header(pm.OutputCommandMessage.TYPE, 50) + b"\x0a\x03abc"),
    # 0x00ff is in the control range and not a known control message.
    "unknown_control": (200, None, encode_header(0x00FF, 0) + END),
    # A notification type (runtime -> SDK only) sent by the SDK.
    "notification": (200, None, encode_frame(pm.SleepCompletionNotificationMessage(
        completion_id=1, void=pm.Void())) + OUTPUT_OK + END),
    # Frames after End (the protocol says nothing may follow End).
    "after_end": (200, None, OUTPUT_OK + END + OUTPUT_OK + END),
    "status_500": (500, "text/plain", b"internal boom"),
    "status_502": (502, "text/plain", b"bad gateway"),
    "status_503": (503, "text/plain", b"unavailable"),
    "wrong_ctype": (200, "application/json", OUTPUT_OK + END),
    "no_end": (200, None, OUTPUT_OK),
    "give_up": (503, "text/plain", b"still unavailable"),  # max 2 attempts, then killed
}
HANG = ("hang", "hang_head")  # hang: never answers; hang_head: answers 200, sends nothing more

FAST_RETRY = {"retryPolicyInitialInterval": 20, "retryPolicyMaxInterval": 100,
              "retryPolicyExponentiationFactor": 2.0}


def _handler(name: str) -> dict[str, Any]:
    h: dict[str, Any] = {"name": name, "input": {}, "output": {}}
    if name in HANG:
        h.update({"abortTimeout": 300, "inactivityTimeout": 150})
    if name == "give_up":
        h.update({"retryPolicyMaxAttempts": 2, "retryPolicyOnMaxAttempts": "KILL"})
    return h


def manifest(service: str, mode: str) -> dict[str, Any]:
    return {
        "protocolMode": mode, "minProtocolVersion": 5, "maxProtocolVersion": 6,
        "services": [{"name": service, "ty": "SERVICE", **FAST_RETRY,
                      "handlers": [_handler(n) for n in [*HANDLERS, *HANG]]}],
    }


MOUNTS = {"/rr": ("BadRR", "REQUEST_RESPONSE"), "/h2": ("BadH2", "BIDI_STREAM")}


async def _respond(send: Send, status: int, ctype: str, body: bytes, *, more: bool = False,
                   ) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype.encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": more})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def fake(scope: Scope, receive: Receive, send: Send, service: str, mode: str,
               rest: str) -> None:
    if rest == "/discover":
        await _respond(send, 200, MANIFEST_CT, json.dumps(manifest(service, mode)).encode())
        return
    parts = rest.strip("/").split("/")
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    if len(parts) != 3 or parts[0] != "invoke" or parts[1] != service:
        await _respond(send, 404, "text/plain", b"not found")
        return
    ctype = headers.get("content-type", "application/vnd.restate.invocation.v6")
    handler = parts[2]
    if handler == "hang":
        await _until_disconnect(receive)
        return
    if handler == "hang_head":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype.encode())]})
        await _until_disconnect(receive)
        return
    status, own_ctype, body = HANDLERS[handler]
    await _respond(send, status, own_ctype or ctype, body)


# --- the real SDK, with code that changes between attempts -----------------------------------

drift = Service("Drift")


@drift.handler()
async def ok(ctx: Context) -> str:
    return "ok"


@drift.handler()
async def change(ctx: Context, flag: str) -> str:
    """First attempt: journals a run step, then fails retryably. Later attempts (flag file
    present) start with a sleep instead: the replayed journal no longer matches the code."""
    path = Path(flag)
    if not path.exists():
        path.write_text("deployed v2")
        await ctx.run_typed("step-a", lambda: "a")
        raise ValueError("v1 fails after step-a")
    await ctx.sleep(timedelta(milliseconds=1))
    return "v2"


sdk_app = restate.app(services=[drift])


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if path.startswith("/sdk/"):
        await sdk_app({**scope, "path": path[4:], "raw_path": path[4:].encode()},
                      receive, send)
        return
    for prefix, (service, mode) in MOUNTS.items():
        if path.startswith(prefix + "/"):
            await fake(scope, receive, send, service, mode, path[len(prefix):])
            return
    await _respond(send, 404, "text/plain", b"not found")
