"""Combinators over durable futures: gather, select, wait_completed, as_completed.

Resolution follows the arrival order of notifications (persisted by the runtime), so a
replay picks the same winner as the original run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .exceptions import TerminalError
from .futures import RestateDurableFuture
from .invocation import Invocation


def _split(futures: list[RestateDurableFuture[Any]]) -> tuple[
        Invocation | None, list[RestateDurableFuture[Any]], list[RestateDurableFuture[Any]]]:
    inv: Invocation | None = None
    done: list[RestateDurableFuture[Any]] = []
    pending: list[RestateDurableFuture[Any]] = []
    for f in futures:
        if not isinstance(f, RestateDurableFuture):
            raise TerminalError("All futures must be SDK created futures.")
        if f._inv is not None:
            if inv is None:
                inv = f._inv
            elif inv is not f._inv:
                raise TerminalError("All futures must be created by the same SDK context.")
        (done if f.is_completed() else pending).append(f)
    return inv, done, pending


async def gather(*futures: RestateDurableFuture[Any]) -> list[RestateDurableFuture[Any]]:
    """Wait until all futures completed; returns them (await each for its value)."""
    fl = list(futures)
    inv, _, pending = _split(fl)
    while pending:
        assert inv is not None
        await inv.wait_any([f._handle for f in pending])
        pending = [f for f in pending if not f.is_completed()]
    return fl


async def wait_completed(*futures: RestateDurableFuture[Any]) -> tuple[
        list[RestateDurableFuture[Any]], list[RestateDurableFuture[Any]]]:
    """Wait until at least one completed; returns (completed, not completed)."""
    fl = list(futures)
    if not fl:
        return [], []
    inv, done, pending = _split(fl)
    if done:
        return done, pending
    assert inv is not None
    first = await inv.wait_any([f._handle for f in pending])
    return [f for f in pending if f._handle == first], [f for f in pending
                                                         if f._handle != first]


async def as_completed(*futures: RestateDurableFuture[Any]) -> AsyncIterator[
        RestateDurableFuture[Any]]:
    """Yield the futures as they complete."""
    remaining = list(futures)
    while remaining:
        done, remaining = await wait_completed(*remaining)
        for f in done:
            yield f


async def select(**futures: RestateDurableFuture[Any]) -> list[Any]:
    """``[name, value]`` of the first future to complete (raises its TerminalError)."""
    if not futures:
        raise ValueError("At least one future must be passed.")
    reverse = {id(f): k for k, f in futures.items()}
    done, _ = await wait_completed(*futures.values())
    f = done[0]
    return [reverse[id(f)], await f]
