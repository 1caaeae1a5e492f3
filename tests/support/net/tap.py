"""ASGI wire tap: records every ``/invoke`` exchange between a Restate-compatible server and an
SDK endpoint, so tests can compare what the runtime SENDS the SDK (headers, Start, replayed
journal, pushed notifications) across servers.

Writer: :func:`tap` wraps an ASGI app; each ASGI event of an HTTP request is appended as one JSON
line (bodies hex-encoded) to the file named by ``$RSTQ_TAP_FILE`` (``O_APPEND`` small writes, so
concurrent requests of one process interleave safely).

Reader: :func:`read_exchanges` groups the lines back into :class:`Exchange` objects and decodes
both directions with rstq's own codec (:mod:`rstq.protocol`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstq.protocol import messages as pm
from rstq.protocol.framing import FrameDecoder, FrameHeader
from rstq.protocol.wire import ProtocolError

TAP_ENV = "RSTQ_TAP_FILE"

Scope = MutableMapping[str, Any]
Event = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Event]]
Send = Callable[[Event], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def tap(app: ASGIApp, path: str | None = None) -> ASGIApp:
    """Wrap ``app``; log every HTTP request/response event to ``path`` (``$RSTQ_TAP_FILE``)."""
    target = path or os.environ.get(TAP_ENV, "tap.jsonl")
    seq = [0]

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        seq[0] += 1
        rid = f"{os.getpid()}-{seq[0]}"

        def log(kind: str, **kw: Any) -> None:
            line = json.dumps({"rid": rid, "t": time.time(), "kind": kind, **kw}) + "\n"
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)

        log("req", method=scope["method"], path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            http_version=scope["http_version"],
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])

        async def r() -> Event:
            ev = await receive()
            if ev.get("type") == "http.request":
                log("req_body", body=bytes(ev.get("body", b"")).hex(),
                    more=bool(ev.get("more_body", False)))
            else:
                log("req_event", type=ev.get("type"))
            return ev

        async def s(ev: Event) -> None:
            if ev["type"] == "http.response.start":
                log("resp_start", status=ev["status"],
                    headers=[(k.decode("latin-1"), v.decode("latin-1"))
                             for k, v in ev.get("headers", [])])
            elif ev["type"] == "http.response.body":
                log("resp_body", body=bytes(ev.get("body", b"")).hex(),
                    more=bool(ev.get("more_body", False)))
            await send(ev)

        await app(scope, r, s)

    return wrapped


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


@dataclass
class Frame:
    type: int
    flags: int
    msg: pm.Message | None  # None: undecodable (``error`` says why)
    error: str = ""

    @property
    def name(self) -> str:
        return str(pm.message_type_name(self.type))


@dataclass
class Exchange:
    rid: str
    t0: float
    method: str
    path: str
    http_version: str
    headers: dict[str, str]
    status: int | None = None
    resp_headers: dict[str, str] = field(default_factory=dict)
    req_body: bytes = b""
    resp_body: bytes = b""
    req_done: bool = False  # the runtime closed its side (more_body=False)
    resp_done: bool = False
    disconnected: bool = False

    @property
    def service_handler(self) -> tuple[str, str]:
        parts = self.path.strip("/").split("/")
        return (parts[1], parts[2]) if len(parts) >= 3 else ("", "")

    @property
    def invocation_id(self) -> str:
        return self.headers.get("x-restate-invocation-id", "")

    @property
    def to_sdk(self) -> list[Frame]:
        return decode_frames(self.req_body)

    @property
    def from_sdk(self) -> list[Frame]:
        return decode_frames(self.resp_body)

    @property
    def start(self) -> pm.StartMessage | None:
        frames = self.to_sdk
        msg = frames[0].msg if frames else None
        return msg if isinstance(msg, pm.StartMessage) else None

    def input_value(self) -> bytes | None:
        for f in self.to_sdk:
            if isinstance(f.msg, pm.InputCommandMessage):
                return f.msg.value.content if f.msg.value is not None else b""
        return None

    def ended(self) -> bool:
        """The SDK finished this attempt (End, Suspension or Error frame sent)."""
        return any(isinstance(f.msg, (pm.EndMessage, pm.SuspensionMessage, pm.ErrorMessage))
                   for f in self.from_sdk)


def decode_frames(data: bytes) -> list[Frame]:
    dec = FrameDecoder()
    out: list[Frame] = []
    try:
        raw: list[tuple[FrameHeader, bytes]] = dec.feed_raw(data)
    except ProtocolError as e:
        return [Frame(-1, 0, None, str(e))]
    for header, payload in raw:
        try:
            out.append(Frame(header.type, header.flags, pm.decode_message(header.type, payload)))
        except ProtocolError as e:
            out.append(Frame(header.type, header.flags, None, str(e)))
    return out


def read_exchanges(path: Path, *, invoke_only: bool = True) -> list[Exchange]:
    """All exchanges in the tap file, in request order."""
    by_rid: dict[str, Exchange] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        rid, kind = ev["rid"], ev["kind"]
        if kind == "req":
            by_rid[rid] = Exchange(rid, ev["t"], ev["method"], ev["path"], ev["http_version"],
                                   {k.lower(): v for k, v in ev["headers"]})
            continue
        ex = by_rid.get(rid)
        if ex is None:
            continue
        if kind == "req_body":
            ex.req_body += bytes.fromhex(ev["body"])
            ex.req_done = ex.req_done or not ev["more"]
        elif kind == "req_event":
            ex.disconnected = ex.disconnected or ev["type"] == "http.disconnect"
        elif kind == "resp_start":
            ex.status = ev["status"]
            ex.resp_headers = {k.lower(): v for k, v in ev["headers"]}
        elif kind == "resp_body":
            ex.resp_body += bytes.fromhex(ev["body"])
            ex.resp_done = ex.resp_done or not ev["more"]
    out = sorted(by_rid.values(), key=lambda e: e.t0)
    if invoke_only:
        out = [e for e in out if e.path.startswith("/invoke/")]
    return out
