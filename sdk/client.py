"""Ingress client: call / send handlers, idempotency keys, attach and output, awakeables.

``Client`` is synchronous, ``AsyncClient`` its asyncio twin (same methods, awaitable). A
target is either a decorated handler function (``client.call(greet, "bob")``) or names
(``client.call("Greeter", "greet", "bob")`` / ``key=`` for objects and workflows).
Terminal failures raise :class:`~.exceptions.TerminalError` with the invocation's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from .exceptions import TerminalError
from .handler import handler_from_callable
from .serde import DEFAULT_SERDE, DefaultSerde, Serde

_NOT_READY = 470


class NotReady(Exception):
    """``output`` of an invocation that has not completed yet (ingress 470)."""


@dataclass(frozen=True)
class SendResult:
    invocation_id: str
    status: str  # "Accepted" | "PreviouslyAccepted"


@dataclass(frozen=True)
class _Req:
    method: str
    path: str
    body: bytes | None
    headers: dict[str, str]
    serde: Serde[Any]


def _path(service: str, handler: str, key: str | None) -> str:
    k = f"/{quote(key, safe='')}" if key is not None else ""
    return f"/{quote(service)}{k}/{quote(handler)}"


def _delay(d: timedelta | None) -> str:
    return "" if d is None else f"?delay={int(d.total_seconds() * 1000)}ms"


def _decode(status: int, body: bytes, serde: Serde[Any]) -> Any:
    if status == _NOT_READY:
        raise NotReady(body.decode(errors="replace"))
    if status >= 300:
        try:
            err = json.loads(body)
            raise TerminalError(str(err.get("message", "")), int(err.get("code", status)))
        except (ValueError, AttributeError):
            raise TerminalError(body.decode(errors="replace"), status) from None
    return serde.deserialize(body)


class _Requests:
    """Builds the ingress requests; the two clients only execute them."""

    def __init__(self, headers: dict[str, str] | None) -> None:
        self.headers = dict(headers or {})

    def _hdr(self, idempotency_key: str | None, extra: dict[str, str] | None,
             body: bool) -> dict[str, str]:
        h = {**self.headers, **(extra or {})}
        if body:
            h["content-type"] = "application/json"
        if idempotency_key is not None:
            h["idempotency-key"] = idempotency_key
        return h

    def invoke(self, path: str, arg: Any, send: bool, delay: timedelta | None,
               idempotency_key: str | None, headers: dict[str, str] | None,
               in_serde: Serde[Any], out_serde: Serde[Any]) -> _Req:
        body = in_serde.serialize(arg) if arg is not None else None
        suffix = "/send" + _delay(delay) if send else ""
        return _Req("POST", path + suffix, body, self._hdr(idempotency_key, headers, body
                                                              is not None), out_serde)

    def for_fn(self, fn: Any, arg: Any, key: str | None, send: bool, delay: timedelta | None,
               idempotency_key: str | None, headers: dict[str, str] | None) -> _Req:
        h = handler_from_callable(fn)
        return self.invoke(_path(h.service_name, h.name, key), arg, send, delay,
                           idempotency_key, headers, h.input_serde, h.output_serde)

    def simple(self, method: str, path: str, body: bytes | None = None,
               serde: Serde[Any] = DEFAULT_SERDE) -> _Req:
        hdr = {**self.headers}
        if body is not None:
            hdr["content-type"] = "application/json"
        return _Req(method, path, body, hdr, serde)


def _send_result(status: int, body: bytes) -> SendResult:
    data = _decode(status, body, DEFAULT_SERDE)
    return SendResult(str(data["invocationId"]), str(data.get("status", "")))


class Client:
    """Synchronous ingress client (httpx)."""

    def __init__(self, ingress_url: str, headers: dict[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        import httpx

        self._http = httpx.Client(base_url=ingress_url.rstrip("/"), timeout=timeout)
        self._r = _Requests(headers)

    def _do(self, r: _Req) -> tuple[int, bytes]:
        resp = self._http.request(r.method, r.path, content=r.body, headers=r.headers)
        return resp.status_code, resp.content

    def call(self, handler: Any, arg: Any = None, *, key: str | None = None,
             idempotency_key: str | None = None, headers: dict[str, str] | None = None) -> Any:
        r = self._r.for_fn(handler, arg, key, False, None, idempotency_key, headers)
        return _decode(*self._do(r), r.serde)

    def send(self, handler: Any, arg: Any = None, *, key: str | None = None,
             delay: timedelta | None = None, idempotency_key: str | None = None,
             headers: dict[str, str] | None = None) -> SendResult:
        return _send_result(*self._do(self._r.for_fn(handler, arg, key, True, delay,
                                                     idempotency_key, headers)))

    def call_handler(self, service: str, handler: str, arg: Any = None, *,
                     key: str | None = None, idempotency_key: str | None = None,
                     type_hint: Any = None) -> Any:
        s: Serde[Any] = DefaultSerde(type_hint)
        r = self._r.invoke(_path(service, handler, key), arg, False, None, idempotency_key,
                           None, DEFAULT_SERDE, s)
        return _decode(*self._do(r), s)

    def send_handler(self, service: str, handler: str, arg: Any = None, *,
                     key: str | None = None, delay: timedelta | None = None,
                     idempotency_key: str | None = None) -> SendResult:
        r = self._r.invoke(_path(service, handler, key), arg, True, delay, idempotency_key,
                           None, DEFAULT_SERDE, DEFAULT_SERDE)
        return _send_result(*self._do(r))

    def attach(self, invocation_id: str, type_hint: Any = None) -> Any:
        """Wait for the invocation's result."""
        return _decode(*self._do(self._r.simple("GET", f"/restate/invocation/{invocation_id}"
                                                       "/attach")), DefaultSerde(type_hint))

    def output(self, invocation_id: str, type_hint: Any = None) -> Any:
        """The result if completed, else raises :class:`NotReady`."""
        return _decode(*self._do(self._r.simple("GET", f"/restate/invocation/{invocation_id}"
                                                       "/output")), DefaultSerde(type_hint))

    def workflow_attach(self, workflow: str, key: str, type_hint: Any = None) -> Any:
        return _decode(*self._do(self._r.simple(
            "GET", f"/restate/workflow/{quote(workflow)}/{quote(key, safe='')}/attach")),
            DefaultSerde(type_hint))

    def resolve_awakeable(self, awakeable_id: str, value: Any) -> None:
        _decode(*self._do(self._r.simple("POST", f"/restate/awakeables/{awakeable_id}/resolve",
                                         DEFAULT_SERDE.serialize(value))), DEFAULT_SERDE)

    def reject_awakeable(self, awakeable_id: str, message: str) -> None:
        r = _Req("POST", f"/restate/awakeables/{awakeable_id}/reject", message.encode(),
                 {**self._r.headers, "content-type": "text/plain"}, DEFAULT_SERDE)
        _decode(*self._do(r), DEFAULT_SERDE)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """asyncio ingress client (httpx); the same methods as :class:`Client`, awaitable."""

    def __init__(self, ingress_url: str, headers: dict[str, str] | None = None,
                 timeout: float = 60.0) -> None:
        import httpx

        self._http = httpx.AsyncClient(base_url=ingress_url.rstrip("/"), timeout=timeout)
        self._r = _Requests(headers)

    async def _do(self, r: _Req) -> tuple[int, bytes]:
        resp = await self._http.request(r.method, r.path, content=r.body, headers=r.headers)
        return resp.status_code, resp.content

    async def call(self, handler: Any, arg: Any = None, *, key: str | None = None,
                   idempotency_key: str | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        r = self._r.for_fn(handler, arg, key, False, None, idempotency_key, headers)
        return _decode(*await self._do(r), r.serde)

    async def send(self, handler: Any, arg: Any = None, *, key: str | None = None,
                   delay: timedelta | None = None, idempotency_key: str | None = None,
                   headers: dict[str, str] | None = None) -> SendResult:
        return _send_result(*await self._do(self._r.for_fn(handler, arg, key, True, delay,
                                                           idempotency_key, headers)))

    async def attach(self, invocation_id: str, type_hint: Any = None) -> Any:
        return _decode(*await self._do(self._r.simple(
            "GET", f"/restate/invocation/{invocation_id}/attach")), DefaultSerde(type_hint))

    async def output(self, invocation_id: str, type_hint: Any = None) -> Any:
        return _decode(*await self._do(self._r.simple(
            "GET", f"/restate/invocation/{invocation_id}/output")), DefaultSerde(type_hint))

    async def resolve_awakeable(self, awakeable_id: str, value: Any) -> None:
        _decode(*await self._do(self._r.simple(
            "POST", f"/restate/awakeables/{awakeable_id}/resolve",
            DEFAULT_SERDE.serialize(value))), DEFAULT_SERDE)

    async def reject_awakeable(self, awakeable_id: str, message: str) -> None:
        r = _Req("POST", f"/restate/awakeables/{awakeable_id}/reject", message.encode(),
                 {**self._r.headers, "content-type": "text/plain"}, DEFAULT_SERDE)
        _decode(*await self._do(r), DEFAULT_SERDE)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
