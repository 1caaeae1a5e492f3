"""Clocks: the only place the runtime reads time, so tests can drive it by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def wait(self, wakeup: asyncio.Event, delay_ms: int | None) -> None:
        """Return when `wakeup` is set or `delay_ms` (None: forever) has passed."""


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def wait(self, wakeup: asyncio.Event, delay_ms: int | None) -> None:
        if delay_ms is None:
            await wakeup.wait()
            return
        try:
            async with asyncio.timeout(max(delay_ms, 0) / 1000):
                await wakeup.wait()
        except TimeoutError:
            pass


class ManualClock:
    """A clock that moves only when told to; waiting sleepers wake on `advance`."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms
        self._events: set[asyncio.Event] = set()

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        self._now += ms
        for ev in list(self._events):
            ev.set()

    async def wait(self, wakeup: asyncio.Event, delay_ms: int | None) -> None:
        if delay_ms is not None and delay_ms <= 0:
            await asyncio.sleep(0)
            return
        self._events.add(wakeup)
        try:
            await wakeup.wait()
        finally:
            self._events.discard(wakeup)
