"""The handler-facing API: contexts per handler kind, RunOptions, DurablePromise, Request.

Names and signatures follow restate-sdk's ``restate.context`` so a service moves between
the two by changing its import. One concrete class per handler kind, all over the same
:class:`~.invocation.Invocation` driver:

* :class:`Context` (plain services), :class:`ObjectSharedContext` (+ key, get, state_keys),
  :class:`ObjectContext` (+ set, clear, clear_all), :class:`WorkflowSharedContext` and
  :class:`WorkflowContext` (+ durable promises).
"""

from __future__ import annotations

import copy
import functools
import inspect
import time
import typing
import uuid as _uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from random import Random
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from rstq.protocol import Failure, StateKeys, Void

from .futures import (
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableSleepFuture,
    SendHandle,
    ready,
)
from .handler import core_type, handler_from_callable
from .proxy import ProxyTarget, make_proxy
from .serde import DEFAULT_SERDE, DefaultSerde, Serde

if TYPE_CHECKING:
    from .invocation import Invocation

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741
O = TypeVar("O")  # noqa: E741
P = ParamSpec("P")
S = TypeVar("S")

HandlerType = Callable[[Any, I], Awaitable[O]] | Callable[[Any], Awaitable[O]]
RunAction = Callable[..., Coroutine[Any, Any, T]] | Callable[..., T]


@dataclass
class RunOptions(Generic[T]):
    """Options of ``ctx.run_typed``. Setting any retry field gives the step its own
    retry policy (defaults: 50 ms initial interval, factor 2, 10 s max interval); once
    ``max_attempts`` / ``max_duration`` is exhausted the step fails with a TerminalError
    carrying the last error. With none set, a failure fails the attempt and the
    invocation retry policy applies."""

    serde: Serde[T] = field(default_factory=DefaultSerde)
    type_hint: Any = None
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    initial_retry_interval: timedelta | None = None
    max_retry_interval: timedelta | None = None
    retry_interval_factor: float | None = None
    max_retry_duration: timedelta | None = None  # deprecated alias of max_duration


@dataclass
class Request:
    """The invocation request as the handler sees it."""

    id: str
    headers: dict[str, str]
    attempt_headers: dict[str, str]
    body: bytes
    idempotency_key: str | None = None


def _bytes(raw: Any) -> bytes | None:
    return raw if type(raw) is bytes else None


def _void(_: Any) -> None:
    return None


def _target(tpe: Any) -> tuple[str, str, Serde[Any], Serde[Any]]:
    h = handler_from_callable(tpe)
    return h.service_name, h.name, h.input_serde, h.output_serde


class Context:
    """Context of a service handler; base of all contexts."""

    __slots__ = ("_inv", "_vm", "_random")

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        self._vm = inv.vm
        self._random: Random | None = None

    # ----------------------------------------------------------------- request, determinism
    def request(self) -> Request:
        vm = self._vm
        assert vm.start is not None and vm.input is not None
        inp = vm.input
        return Request(id=vm.start.debug_id, headers={h.key: h.value for h in inp.headers},
                       attempt_headers=dict(self._inv.attempt_headers),
                       body=inp.value.content if inp.value is not None else b"",
                       idempotency_key=vm.start.idempotency_key)

    def random(self) -> Random:
        """A Random seeded by the runtime: the same sequence on every replay."""
        if self._random is None:
            assert self._vm.start is not None
            seed = self._vm.start.random_seed or int.from_bytes(self._vm.start.id[-8:], "big")
            self._random = Random(seed)
        return self._random

    def uuid(self) -> _uuid.UUID:
        return _uuid.UUID(int=self.random().getrandbits(128), version=4)

    def time(self) -> RestateDurableFuture[float]:
        """``time.time()`` recorded in the journal."""
        return self.run_typed("timestamp", time.time)

    # ----------------------------------------------------------------- run
    def run_typed(self, name: str, action: Callable[P, Coroutine[Any, Any, T]] | Callable[P, T],
                  options: RunOptions[T] | None = None, /, *args: P.args,
                  **kwargs: P.kwargs) -> RestateDurableFuture[T]:
        """Run a side effect once; its result is journaled and replayed."""
        opts = options if options is not None else RunOptions()
        if isinstance(opts.serde, DefaultSerde) and opts.serde.type_hint is None:
            opts = copy.copy(opts)
            hint = opts.type_hint
            if hint is None:
                hint = _return_hint(action)
            opts.serde = DefaultSerde(core_type(hint)[1])
        fn = functools.partial(action, *args, **kwargs) if args or kwargs else action
        return self._inv.run(name, fn, opts)

    def run(self, name: str, action: RunAction[T], serde: Serde[T] = DEFAULT_SERDE,
            max_attempts: int | None = None, max_retry_duration: timedelta | None = None,
            type_hint: Any = None, args: tuple[Any, ...] | None = None,
            ) -> RestateDurableFuture[T]:
        """Deprecated in restate-sdk in favour of :meth:`run_typed`; kept for parity."""
        opts: RunOptions[T] = RunOptions(serde=serde, type_hint=type_hint,
                                         max_attempts=max_attempts,
                                         max_duration=max_retry_duration)
        return self.run_typed(name, action, opts, *(args or ()))

    # ----------------------------------------------------------------- timers
    def sleep(self, delta: timedelta, name: str | None = None) -> RestateDurableSleepFuture:
        h = self._vm.sys_sleep(int(delta.total_seconds() * 1000), name or "")
        return RestateDurableSleepFuture(self._inv, h, _void)

    # ----------------------------------------------------------------- calls
    def generic_call(self, service: str, handler: str, arg: bytes, key: str | None = None,
                     idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> RestateDurableCallFuture[bytes]:
        res, idh = self._vm.sys_call(service, handler, arg, key or "", idempotency_key, headers)
        self._inv.calls.append((res, idh))
        return RestateDurableCallFuture(self._inv, res, idh, _bytes_or_empty)

    def generic_send(self, service: str, handler: str, arg: bytes, key: str | None = None,
                     send_delay: timedelta | None = None, idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> SendHandle:
        delay = int(send_delay.total_seconds() * 1000) if send_delay else None
        idh = self._vm.sys_send(service, handler, arg, key or "", delay, idempotency_key,
                                headers)
        return SendHandle(self._inv, idh)

    def _call(self, tpe: Any, arg: Any, key: str | None, idempotency_key: str | None,
              headers: dict[str, str] | None) -> RestateDurableCallFuture[Any]:
        svc, hname, in_serde, out_serde = _target(tpe)
        res, idh = self._vm.sys_call(svc, hname, in_serde.serialize(arg), key or "",
                                     idempotency_key, headers)
        self._inv.calls.append((res, idh))
        return RestateDurableCallFuture(self._inv, res, idh,
                                        lambda raw: out_serde.deserialize(raw))

    def _send(self, tpe: Any, arg: Any, key: str | None, send_delay: timedelta | None,
              idempotency_key: str | None, headers: dict[str, str] | None) -> SendHandle:
        svc, hname, in_serde, _ = _target(tpe)
        delay = int(send_delay.total_seconds() * 1000) if send_delay else None
        idh = self._vm.sys_send(svc, hname, in_serde.serialize(arg), key or "", delay,
                                idempotency_key, headers)
        return SendHandle(self._inv, idh)

    def service_call(self, tpe: HandlerType[I, O], arg: I, idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> RestateDurableCallFuture[O]:
        return self._call(tpe, arg, None, idempotency_key, headers)

    def service_send(self, tpe: HandlerType[I, O], arg: I, send_delay: timedelta | None = None,
                     idempotency_key: str | None = None,
                     headers: dict[str, str] | None = None) -> SendHandle:
        return self._send(tpe, arg, None, send_delay, idempotency_key, headers)

    def object_call(self, tpe: HandlerType[I, O], key: str, arg: I,
                    idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None) -> RestateDurableCallFuture[O]:
        return self._call(tpe, arg, key, idempotency_key, headers)

    def object_send(self, tpe: HandlerType[I, O], key: str, arg: I,
                    send_delay: timedelta | None = None, idempotency_key: str | None = None,
                    headers: dict[str, str] | None = None) -> SendHandle:
        return self._send(tpe, arg, key, send_delay, idempotency_key, headers)

    def workflow_call(self, tpe: HandlerType[I, O], key: str, arg: I,
                      idempotency_key: str | None = None,
                      headers: dict[str, str] | None = None) -> RestateDurableCallFuture[O]:
        return self._call(tpe, arg, key, idempotency_key, headers)

    def workflow_send(self, tpe: HandlerType[I, O], key: str, arg: I,
                      send_delay: timedelta | None = None, idempotency_key: str | None = None,
                      headers: dict[str, str] | None = None) -> SendHandle:
        return self._send(tpe, arg, key, send_delay, idempotency_key, headers)

    # ----------------------------------------------------------------- typed proxies
    def rpc(self, api: Callable[..., S], key: str | None = None,
            idempotency_key: str | None = None) -> S:
        """Typed request-response proxy: ``await ctx.rpc(TicketApi, key).reserve(id)``.

        ``api`` is a class declaring the target's handlers as ``async def`` methods
        (typically a Protocol; typed as ``Callable[..., S]`` so mypy accepts Protocols)."""
        return make_proxy(api, ProxyTarget(self, key, False, None, idempotency_key))

    def send(self, api: Callable[..., S], key: str | None = None,
             delay: timedelta | None = None,
             idempotency_key: str | None = None) -> S:
        """Typed one-way proxy: ``ctx.send(SessionApi, key, delay=...).expire(...)``;
        each call returns a :class:`SendHandle` (awaiting it gives the invocation id)."""
        return make_proxy(api, ProxyTarget(self, key, True, delay, idempotency_key))

    # ----------------------------------------------------------------- awakeables, signals
    def awakeable(self, serde: Serde[T] = DEFAULT_SERDE,
                  type_hint: Any = None) -> tuple[str, RestateDurableFuture[T]]:
        s = _typed(serde, type_hint)
        awk_id, h = self._vm.sys_awakeable()
        return awk_id, RestateDurableFuture(self._inv, h, _deser(s))

    def resolve_awakeable(self, name: str, value: I, serde: Serde[I] = DEFAULT_SERDE) -> None:
        self._vm.sys_complete_awakeable(name, value=serde.serialize(value))

    def reject_awakeable(self, name: str, failure_message: str,
                         failure_code: int = 500) -> None:
        self._vm.sys_complete_awakeable(name, failure=Failure(failure_code, failure_message))

    def signal(self, name: str, serde: Serde[T] = DEFAULT_SERDE,
               type_hint: Any = None) -> RestateDurableFuture[T]:
        return RestateDurableFuture(self._inv, self._vm.sys_signal(name),
                                    _deser(_typed(serde, type_hint)))

    def resolve_signal(self, invocation_id: str, name: str, value: I,
                       serde: Serde[I] = DEFAULT_SERDE) -> None:
        self._vm.sys_complete_signal(invocation_id, name, value=serde.serialize(value))

    def reject_signal(self, invocation_id: str, name: str, failure_message: str,
                      failure_code: int = 500) -> None:
        self._vm.sys_complete_signal(invocation_id, name,
                                     failure=Failure(failure_code, failure_message))

    # ----------------------------------------------------------------- other invocations
    def cancel_invocation(self, invocation_id: str) -> None:
        self._vm.sys_cancel_invocation(invocation_id)

    def attach_invocation(self, invocation_id: str, serde: Serde[T] = DEFAULT_SERDE,
                          type_hint: Any = None) -> RestateDurableFuture[T]:
        h = self._vm.sys_attach_invocation(invocation_id)
        return RestateDurableFuture(self._inv, h, _deser(_typed(serde, type_hint)))


class ObjectSharedContext(Context):
    """Shared handler of a virtual object: reads state, runs concurrently."""

    __slots__ = ()

    def key(self) -> str:
        assert self._vm.start is not None
        return self._vm.start.key

    def get(self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: Any = None,
            entry_name: str | None = None) -> RestateDurableFuture[T | None]:
        s = _typed(serde, type_hint)
        r = self._vm.sys_get_state(name, entry_name or "")
        if isinstance(r, int):
            return RestateDurableFuture(self._inv, r, _deser(s))
        return ready(None if r.value is None else s.deserialize(r.value))

    def state_keys(self, entry_name: str | None = None) -> RestateDurableFuture[list[str]]:
        r = self._vm.sys_state_keys(entry_name or "")
        if isinstance(r, int):
            return RestateDurableFuture(self._inv, r, _keys)
        return ready(typing.cast(list[str], r.value))


class ObjectContext(ObjectSharedContext):
    """Exclusive handler of a virtual object: reads and writes state."""

    __slots__ = ()

    def set(self, name: str, value: T, serde: Serde[T] = DEFAULT_SERDE,
            entry_name: str | None = None) -> None:
        self._vm.sys_set_state(name, serde.serialize(value), entry_name or "")

    def clear(self, name: str, entry_name: str | None = None) -> None:
        self._vm.sys_clear_state(name, entry_name or "")

    def clear_all(self, entry_name: str | None = None) -> None:
        self._vm.sys_clear_all_state(entry_name or "")


class DurablePromise(Generic[T]):
    """A workflow promise, completed once per workflow key."""

    __slots__ = ("_ctx", "name", "serde")

    def __init__(self, ctx: Context, name: str, serde: Serde[T]) -> None:
        self._ctx = ctx
        self.name = name
        self.serde = serde

    def value(self) -> RestateDurableFuture[T]:
        h = self._ctx._vm.sys_get_promise(self.name)
        return RestateDurableFuture(self._ctx._inv, h, _deser(self.serde))

    def __await__(self) -> typing.Generator[Any, Any, T]:
        return self.value().__await__()

    def peek(self) -> RestateDurableFuture[T | None]:
        h = self._ctx._vm.sys_peek_promise(self.name)
        return RestateDurableFuture(self._ctx._inv, h, _deser(self.serde))

    def resolve(self, value: T) -> RestateDurableFuture[None]:
        h = self._ctx._vm.sys_complete_promise(self.name, value=self.serde.serialize(value))
        return RestateDurableFuture(self._ctx._inv, h, _void)

    def reject(self, message: str, code: int = 500) -> RestateDurableFuture[None]:
        h = self._ctx._vm.sys_complete_promise(self.name, failure=Failure(code, message))
        return RestateDurableFuture(self._ctx._inv, h, _void)


class WorkflowSharedContext(ObjectSharedContext):
    """Shared handler of a workflow: reads state, completes promises."""

    __slots__ = ()

    def promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE,
                type_hint: Any = None) -> DurablePromise[T]:
        return DurablePromise(self, name, _typed(serde, type_hint))


class WorkflowContext(ObjectContext):
    """The workflow's main handler."""

    __slots__ = ()

    def promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE,
                type_hint: Any = None) -> DurablePromise[T]:
        return DurablePromise(self, name, _typed(serde, type_hint))


# --------------------------------------------------------------------------- helpers
def _typed(serde: Serde[Any], hint: Any) -> Serde[Any]:
    if hint is not None and isinstance(serde, DefaultSerde) and serde.type_hint is None:
        return DefaultSerde(core_type(hint)[1])
    return serde


def _deser(serde: Serde[Any]) -> Callable[[Any], Any]:
    def convert(raw: Any) -> Any:
        if type(raw) is bytes:
            return serde.deserialize(raw)
        return None  # void: absent state / empty promise peek
    return convert


def _bytes_or_empty(raw: Any) -> bytes:
    return raw if type(raw) is bytes else b""


def _keys(raw: Any) -> list[str]:
    if isinstance(raw, StateKeys):
        return sorted(k.decode() for k in raw.keys)
    return []


def _return_hint(action: Any) -> Any:
    try:
        ret = inspect.signature(action, eval_str=True).return_annotation
    except (TypeError, ValueError, NameError):
        return None
    return None if ret is inspect.Signature.empty else ret


_ = Void  # re-exported type used in results
CONTEXT_FOR_KIND: dict[tuple[str, str | None], type[Context]] = {
    ("service", None): Context,
    ("object", "exclusive"): ObjectContext,
    ("object", None): ObjectContext,
    ("object", "shared"): ObjectSharedContext,
    ("workflow", "workflow"): WorkflowContext,
    ("workflow", "shared"): WorkflowSharedContext,
    ("workflow", "exclusive"): WorkflowContext,
    ("workflow", None): WorkflowContext,
}
