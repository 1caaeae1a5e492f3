"""Typed call proxies: ``ctx.rpc(TicketApi, key).reserve(ticket_id)``.

``TicketApi`` is any class whose methods declare the target's handlers, e.g. a Protocol::

    class TicketApi(Protocol):
        async def reserve(self, ticket_id: str) -> bool: ...

mypy checks the argument and result types because ``rpc()`` returns the class's own type.
The service name is ``TicketApi.__service_name__`` if set, else the class name. Handler
input/output (de)serialization uses the method's annotations (dataclasses, pydantic ok).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .serde import DefaultSerde

if TYPE_CHECKING:
    from .context import Context

S = TypeVar("S")


@dataclass(frozen=True)
class ProxyTarget:
    ctx: Context
    key: str | None
    one_way: bool
    delay: timedelta | None
    idempotency_key: str | None


def service_name_of(api: type) -> str:
    return str(getattr(api, "__service_name__", api.__name__))


class _Proxy:
    __slots__ = ("_api", "_target", "_service")

    def __init__(self, api: type, target: ProxyTarget) -> None:
        self._api = api
        self._target = target
        self._service = service_name_of(api)

    def __getattr__(self, handler: str) -> Any:
        method = getattr(self._api, handler, None)
        if method is None or handler.startswith("_"):
            raise AttributeError(f"{self._api.__name__} declares no handler {handler!r}")
        sig = inspect.signature(method, eval_str=True)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        in_serde: DefaultSerde[Any] = DefaultSerde(params[-1].annotation if params else None)
        ret = sig.return_annotation
        out_serde: DefaultSerde[Any] = DefaultSerde(
            None if ret is inspect.Signature.empty else ret)
        t = self._target
        service = self._service

        def call(*args: Any) -> Any:
            payload = in_serde.serialize(args[0]) if args else b""
            if t.one_way:
                return t.ctx.generic_send(service, handler, payload, t.key, t.delay,
                                          t.idempotency_key)
            fut = t.ctx.generic_call(service, handler, payload, t.key, t.idempotency_key)
            fut._convert = lambda raw: out_serde.deserialize(raw) if raw else None
            return fut

        return call


def make_proxy(api: Callable[..., S], target: ProxyTarget) -> S:
    """``api`` is the API class (typed as a callable so that Protocols are accepted)."""
    if not isinstance(api, type):
        raise TypeError(f"expected an API class, got {api!r}")
    return _Proxy(api, target)  # type: ignore[return-value]
