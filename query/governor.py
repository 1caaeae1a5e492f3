"""A CPU share for SQL while invocations run.

The server's Python work (applying the log, driving attempts, and the SQL views) shares one
interpreter lock. A client that loops heavy queries would otherwise take as much of it as it
asks for and slow invocations down. The governor is a token bucket over *CPU seconds*: while
the server is busy, SQL may use `share` of wall time on average (plus a small `burst`, so an
occasional query never waits); a query that would exceed it waits before it starts. When the
server is idle the bucket is full and queries run at once, however heavy.

Each query is charged what it cost on the threads that hold the interpreter lock for it: the
view refresh on the event loop, planning and Arrow conversion on the query thread, and the
encoding of its result. DataFusion's execution itself releases the lock and is not charged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class GovernorStats:
    charged_s: float = 0.0
    waited_s: float = 0.0
    delayed_queries: int = 0


class Governor:
    def __init__(self, share: float, burst_s: float = 0.1,
                 busy: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.share = share
        self.burst_s = burst_s
        self.busy = busy or (lambda: True)
        self.clock = clock
        self.tokens = burst_s
        self._at = clock()
        self._lock = threading.Lock()
        self.stats = GovernorStats()

    @property
    def enabled(self) -> bool:
        return 0 < self.share < 1

    def _refill(self) -> None:
        now = self.clock()
        if not self.busy():
            self.tokens = self.burst_s
        else:
            self.tokens = min(self.burst_s, self.tokens + self.share * (now - self._at))
        self._at = now

    def delay(self) -> float:
        """Seconds to wait before the next query may start (0: start now)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            self._refill()
            if self.tokens >= 0:
                return 0.0
            return -self.tokens / self.share

    def charge(self, cpu_s: float) -> None:
        """Count `cpu_s` seconds of interpreter time spent on SQL."""
        if cpu_s <= 0 or not self.enabled:
            return
        with self._lock:
            self._refill()
            self.tokens -= cpu_s
            self.stats.charged_s += cpu_s

    def waited(self, seconds: float) -> None:
        with self._lock:
            self.stats.waited_s += seconds
            self.stats.delayed_queries += 1


class CpuMeter:
    """Interpreter time spent on this thread inside `with` blocks (for `Governor.charge`)."""

    __slots__ = ("_t0", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self._t0 = 0.0

    def __enter__(self) -> CpuMeter:
        self._t0 = time.thread_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total += time.thread_time() - self._t0
