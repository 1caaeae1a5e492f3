"""A faulty TCP proxy (tests only): forwards 127.0.0.1:<port> to a target and, per chunk,
with seeded probabilities, delays it, drops the connection silently (a black hole: nothing more
is forwarded either way, the sockets stay open) or resets it (RST, SO_LINGER 0).

It runs its own asyncio loop on a thread, so tests of any kind can use it:

    with FaultyProxy(target_port, seed=1) as proxy:
        proxy.set_faults(delay=0.05, drop=0.01, reset=0.02)
        ... uri = proxy.url ...
    proxy.injected  # {"delay": n, "drop": n, "reset": n}
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from types import TracebackType
from typing import Self


class FaultyProxy:
    def __init__(self, target_port: int, *, seed: int = 0, target_host: str = "127.0.0.1",
                 ) -> None:
        self.target = (target_host, target_port)
        self.rnd = random.Random(seed)
        self.delay_p = self.drop_p = self.reset_p = 0.0
        self.max_delay = 0.2
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faulty-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_faults(self, *, delay: float = 0.0, drop: float = 0.0, reset: float = 0.0,
                   max_delay: float = 0.2) -> None:
        """Per-chunk probabilities; all zero: a faithful proxy."""
        with self._lock:
            self.delay_p, self.drop_p, self.reset_p = delay, drop, reset
            self.max_delay = max_delay

    def _roll(self) -> tuple[str | None, float]:
        with self._lock:
            x = self.rnd.random()
            if x < self.reset_p:
                return "reset", 0.0
            if x < self.reset_p + self.drop_p:
                return "drop", 0.0
            if x < self.reset_p + self.drop_p + self.delay_p:
                return "delay", self.rnd.uniform(0.0, self.max_delay)
            return None, 0.0

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = fut.result(10)
        return self

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._open):
            w.transport.abort()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- forwarding ----------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        state = {"dead": False}
        try:
            await asyncio.gather(self._pipe(reader, up_writer, writer, state),
                                 self._pipe(up_reader, writer, up_writer, state))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                    other: asyncio.StreamWriter, state: dict[str, bool]) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data or state["dead"]:
                    break
                fault, delay = self._roll()
                if fault is not None:
                    self.injected[fault] += 1
                if fault == "reset":
                    state["dead"] = True
                    for w in (dst, other):
                        _reset(w)
                    return
                if fault == "drop":  # black hole: keep reading, forward nothing, never close
                    state["dead"] = True
                    while await src.read(65536):
                        pass
                    return
                if delay:
                    await asyncio.sleep(delay)
                dst.write(data)
                await dst.drain()
        except (OSError, ConnectionError):
            pass
        if not state["dead"]:
            try:
                dst.write_eof()
            except (OSError, RuntimeError):
                pass


def _reset(w: asyncio.StreamWriter) -> None:
    sock = w.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    w.transport.abort()
