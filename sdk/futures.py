"""Durable futures: awaitables over VM handles, resolved by the invocation driver."""

from __future__ import annotations

import typing
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rstq.protocol import Failure

from .exceptions import TerminalError

if TYPE_CHECKING:
    from .invocation import Invocation

T = TypeVar("T")

_UNSET: Any = object()


def raise_failure(f: Failure) -> typing.NoReturn:
    md = {m.key: m.value for m in f.metadata} or None
    raise TerminalError(f.message, f.code, md)


class RestateDurableFuture(Generic[T]):
    """A durable result (state read, run, call, sleep, awakeable, promise ...).

    Await it (once or many times); combine several with ``gather`` / ``select`` /
    ``wait_completed``.
    """

    __slots__ = ("_inv", "_handle", "_convert", "_value")

    _convert: Callable[[Any], Any] | None

    def __init__(self, inv: Invocation | None, handle: int,
                 convert: Callable[[Any], T] | None = None, value: Any = _UNSET) -> None:
        self._inv = inv
        self._handle = handle
        self._convert = convert
        self._value = value

    def is_completed(self) -> bool:
        return self._value is not _UNSET or (
            self._inv is not None and self._inv.vm.is_completed(self._handle))

    def _resolve(self) -> T:
        """The result; the handle must be completed. Failures raise TerminalError."""
        if self._value is _UNSET:
            assert self._inv is not None
            raw = self._inv.vm.take(self._handle)
            if type(raw) is Failure:
                self._value = raw
            else:
                self._value = self._convert(raw) if self._convert is not None else raw
        if type(self._value) is Failure:
            raise_failure(self._value)
        return typing.cast(T, self._value)

    def __await__(self) -> Generator[Any, Any, T]:
        if self._value is _UNSET and self._inv is not None:
            inv = self._inv
            if not inv.vm.is_completed(self._handle) or inv.has_pending_work():
                yield from inv.wait_any([self._handle]).__await__()
        return self._resolve()


class RestateDurableCallFuture(RestateDurableFuture[T]):
    """The result of a call; also knows the callee's invocation id."""

    __slots__ = ("_id_future",)

    def __init__(self, inv: Invocation, handle: int, id_handle: int,
                 convert: Callable[[Any], T] | None = None) -> None:
        super().__init__(inv, handle, convert)
        self._id_future: RestateDurableFuture[str] = RestateDurableFuture(inv, id_handle)

    async def invocation_id(self) -> str:
        return await self._id_future

    async def cancel_invocation(self) -> None:
        assert self._inv is not None
        self._inv.ctx.cancel_invocation(await self.invocation_id())


class RestateDurableSleepFuture(RestateDurableFuture[None]):
    __slots__ = ()


class SendHandle:
    """Handle of a one-way call."""

    __slots__ = ("_id_future", "_inv")

    def __init__(self, inv: Invocation, id_handle: int) -> None:
        self._inv = inv
        self._id_future: RestateDurableFuture[str] = RestateDurableFuture(inv, id_handle)

    async def invocation_id(self) -> str:
        return await self._id_future

    async def cancel_invocation(self) -> None:
        self._inv.ctx.cancel_invocation(await self.invocation_id())


def ready(value: T) -> RestateDurableFuture[T]:
    """An already-resolved future (eager state reads)."""
    return RestateDurableFuture(None, 0, None, value)
