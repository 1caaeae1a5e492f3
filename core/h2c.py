"""Full-duplex HTTP/2 cleartext (prior knowledge) client on `h2` + asyncio streams.

Why not httpx: httpcore sends the whole request body before reading the response, but the
Restate BIDI_STREAM mode needs to write request DATA while reading response DATA on one open
stream (restate-protocol.md section 4.2).

One `H2Connection` multiplexes many streams over one TCP connection; a single reader task feeds
h2 and dispatches events to per-stream state. Writes are synchronous appends to the transport
buffer (the loop is single-threaded, so no lock is needed), followed by `drain()` for backpressure.
Received data is acknowledged to the peer only when the consumer takes it out of the stream, so a
slow consumer throttles the peer instead of buffering without bound.

Timeouts are the caller's job (`asyncio.wait_for`); cancelling a caller never corrupts the
connection, and `H2Stream.reset()` (or `async with stream:`) frees the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hpack import NeverIndexedHeaderTuple

__all__ = [
    "H2Connection",
    "H2ConnectionError",
    "H2Pool",
    "H2Response",
    "H2Stream",
    "H2StreamReset",
    "get",
    "split_url",
]

# Generous receive windows: the peer may stream ~1 MiB per stream before we must ack, and the
# connection window covers many such streams (defaults of 64 KiB would stall large bodies).
STREAM_WINDOW = 1 << 20
CONNECTION_WINDOW = 16 << 20
READ_CHUNK = 1 << 16
SETTINGS_TIMEOUT = 10.0  # seconds for the server preface after connect

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


# Our own cap on concurrent streams per connection, whatever the server advertises: hypercorn
# (through the `priority` package) drops the whole connection when more than 1000 streams are
# open at once, taking every attempt on it down (seen at ~1,000 timers/s). Streams over the cap
# wait for a slot.
MAX_OPEN_STREAMS = 256


class _Connection(h2.connection.H2Connection):
    # h2 remembers up to 2**16 closed streams per connection (~120 B each) to tell a late
    # frame from a protocol error; an invoker connection carries one stream per invocation,
    # so that is ~8 MB that grows with history. A few thousand cover any late frame.
    MAX_CLOSED_STREAMS = 4096


class H2ConnectionError(Exception):
    """The connection (or the stream on it) failed: refused, closed, GOAWAY, protocol error.

    `refused` is True when the peer provably did not process the request (connect failure,
    stream beyond GOAWAY's last-stream-id, REFUSED_STREAM): retrying is then always safe.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class H2StreamReset(H2ConnectionError):
    """The stream was reset (RST_STREAM) by the peer or locally."""

    def __init__(self, stream_id: int, error_code: int, *, remote: bool) -> None:
        name = _error_name(error_code)
        who = "peer" if remote else "client"
        refused = remote and error_code == h2.errors.ErrorCodes.REFUSED_STREAM
        super().__init__(f"stream {stream_id} reset by {who}: {name}", refused=refused)
        self.stream_id = stream_id
        self.error_code = error_code
        self.remote = remote


def _error_name(code: int) -> str:
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error 0x{code:x}"


@dataclass(frozen=True)
class H2Response:
    """Response head: status and headers (names lower-case, in wire order)."""

    status: int
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str, default: str | None = None) -> str | None:
        """First value of header `name` (case-insensitive)."""
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default


class H2Stream:
    """One request/response exchange. Both directions may be used concurrently."""

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self._conn = conn
        self.stream_id = stream_id
        self._head: asyncio.Future[H2Response] = conn._loop.create_future()
        # Items: (data, flow_controlled_length); None = END_STREAM; or the error to raise.
        self._inbox: deque[tuple[bytes, int] | H2ConnectionError | None] = deque()
        self._inbox_ready = asyncio.Event()
        self._window_open = asyncio.Event()
        self._error: H2ConnectionError | None = None
        self._local_closed = False  # we sent END_STREAM or RST_STREAM
        self._remote_closed = False  # peer sent END_STREAM or RST_STREAM, or connection died
        self.trailers: tuple[tuple[str, str], ...] = ()

    # -- response side -------------------------------------------------------------------------

    async def response_headers(self) -> H2Response:
        """Wait for the response head (1xx informational responses are skipped)."""
        return await asyncio.shield(self._head)

    async def next_chunk(self) -> bytes | None:
        """Next response DATA chunk, or None at END_STREAM; raises on reset/connection loss.

        Cancellation-safe (e.g. under `asyncio.wait_for`): nothing is consumed until it returns.
        """
        while True:
            while not self._inbox:
                self._inbox_ready.clear()
                await self._inbox_ready.wait()
            item = self._inbox[0]
            if item is None:
                return None  # left in place: the stream stays at EOF
            if isinstance(item, H2ConnectionError):
                raise item
            self._inbox.popleft()
            data, flow_len = item
            self._conn._ack(self.stream_id, flow_len)  # let the peer send more
            if data:
                return data

    async def body(self) -> AsyncIterator[bytes]:
        """Yield response DATA chunks as they arrive; ends at END_STREAM, raises on reset."""
        while (chunk := await self.next_chunk()) is not None:
            yield chunk

    async def read(self) -> bytes:
        """Read the whole remaining response body."""
        return b"".join([chunk async for chunk in self.body()])

    # -- request side --------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Send request DATA, waiting for flow-control window as needed."""
        view = memoryview(data)
        while view:
            self._check_writable()
            conn = self._conn
            window = conn._h2.local_flow_control_window(self.stream_id)
            if window <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            n = min(window, conn._h2.max_outbound_frame_size, len(view))
            conn._h2_call(conn._h2.send_data, self.stream_id, view[:n].tobytes())
            view = view[n:]
            await conn._flush_and_drain()

    async def end(self) -> None:
        """Half-close the request side (END_STREAM); the response can still be read."""
        self._check_writable()
        self._conn._h2_call(self._conn._h2.end_stream, self.stream_id)
        self._local_closed = True
        await self._conn._flush_and_drain()
        self._conn._maybe_forget(self)

    def reset(self, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Abort the stream (RST_STREAM) unless it is already fully closed. Idempotent."""
        if not self.closed:
            self._conn._reset(self, error_code)

    @property
    def closed(self) -> bool:
        return self._local_closed and self._remote_closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The peer finished cleanly and only our side is open: not an error, just stop.
        clean = self._remote_closed and self._error is None and exc is None
        self.reset(h2.errors.ErrorCodes.NO_ERROR if clean else h2.errors.ErrorCodes.CANCEL)

    def _check_writable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._local_closed:
            raise H2ConnectionError(f"stream {self.stream_id}: request side already closed")

    # -- called by the connection's reader -----------------------------------------------------

    def _fail(self, err: H2ConnectionError) -> None:
        if self._error is None:
            self._error = err
        if not self._head.done():
            self._head.set_exception(err)
            self._head.exception()  # mark retrieved: nobody may ever await the head
        self._remote_closed = True
        self._local_closed = True
        self._inbox.append(err)
        self._inbox_ready.set()
        self._window_open.set()

    def _push(self, item: tuple[bytes, int] | None) -> None:
        self._inbox.append(item)
        self._inbox_ready.set()


class H2Connection:
    """One h2c connection; create with `await H2Connection.connect(host, port)`."""

    def __init__(
        self, host: str, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.host = host
        self.port = port
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._writer = writer
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self._h2 = _Connection(config=config)
        self._streams: dict[int, H2Stream] = {}
        self._capacity = asyncio.Event()  # set when a stream slot may have freed up
        self._settings_seen = asyncio.Event()  # the peer's first SETTINGS arrived
        self._closed = False
        self._goaway = False
        self._error: H2ConnectionError | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._flush_pending = False  # a _flush is scheduled for the end of this loop turn
        self.last_received = time.monotonic()  # liveness: a black-holed peer sends nothing

    @classmethod
    async def connect(cls, host: str, port: int) -> H2Connection:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=READ_CHUNK * 4)
        except OSError as e:
            raise H2ConnectionError(f"cannot connect to {host}:{port}: {e}", refused=True) from e
        sock = writer.get_extra_info("socket")
        if sock is not None:  # small request/response frames must not wait for Nagle
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = cls(host, port, reader, writer)
        conn._start()
        # Until the server's SETTINGS arrive its stream limit is unknown (h2 assumes unlimited);
        # opening streams before that could exceed it. Costs one round trip per connection.
        try:
            await asyncio.wait_for(conn._settings_seen.wait(), SETTINGS_TIMEOUT)
        except TimeoutError:
            await conn.close()
            raise H2ConnectionError(
                f"{host}:{port} sent no HTTP/2 SETTINGS (not an h2c server?)", refused=True
            ) from None
        finally:
            if conn._error is not None:
                await conn.close()
        conn._check_usable()
        return conn

    def _start(self) -> None:
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000,
            },
        )
        self._h2.initiate_connection()
        self._h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()
        self._reader_task = self._loop.create_task(self._read_loop())

    @property
    def usable(self) -> bool:
        """False once closed, failed or after GOAWAY: open a new connection then."""
        return not (self._closed or self._goaway or self._error is not None)

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def request(
        self,
        method: str,
        path: str,
        headers: Headers = (),
        *,
        end_stream: bool = False,
        authority: str | None = None,
        never_index: frozenset[str] = frozenset(),
        flush: bool = True,
    ) -> H2Stream:
        """Open a stream and send the request head. `end_stream=True` for body-less requests.

        Headers named in `never_index` (lower-case) are sent as HPACK never-indexed literals:
        for values unique to one request (ids), which would only churn the dynamic table.
        `flush=False` leaves the HEADERS frame buffered: the caller's first `send()` (or `end()`)
        writes it together with the first DATA frame, one socket write instead of two."""
        while True:
            self._check_usable()
            limit = min(self._h2.remote_settings.max_concurrent_streams, MAX_OPEN_STREAMS)
            if self._h2.open_outbound_streams < limit:
                break
            self._capacity.clear()  # wait for a slot: h2 would raise TooManyStreamsError
            await self._capacity.wait()
        items = headers.items() if isinstance(headers, Mapping) else headers
        head: list[tuple[str, str] | NeverIndexedHeaderTuple] = [
            (":method", method),
            (":scheme", "http"),
            (":authority", authority or f"{self.host}:{self.port}"),
            (":path", path),
        ]
        for k, v in items:
            k = k.lower()
            head.append(NeverIndexedHeaderTuple(k, v) if k in never_index else (k, v))
        stream_id = self._h2.get_next_available_stream_id()
        stream = H2Stream(self, stream_id)
        self._streams[stream_id] = stream
        try:
            self._h2.send_headers(stream_id, head, end_stream=end_stream)
        except h2.exceptions.ProtocolError as e:
            del self._streams[stream_id]
            raise H2ConnectionError(f"cannot open stream: {e}") from e
        stream._local_closed = end_stream
        if flush:
            await self._flush_and_drain()
        return stream

    async def close(self) -> None:
        """Send GOAWAY and close; in-flight streams fail with H2ConnectionError."""
        if self._closed:
            return
        if self._error is None:
            with contextlib.suppress(Exception):
                self._h2.close_connection()
                self._flush()
        self._shutdown(H2ConnectionError(f"connection to {self.host}:{self.port} closed"))
        if self._reader_task is not None and self._reader_task is not asyncio.current_task():
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- internals -----------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed or self._goaway:
            raise H2ConnectionError(
                f"connection to {self.host}:{self.port} is closing", refused=True
            )

    def _h2_call(self, fn: Callable[..., None], *args: object) -> None:
        """Run an h2 send-side call, mapping its state errors to H2ConnectionError."""
        self._check_alive()
        try:
            fn(*args)
        except h2.exceptions.ProtocolError as e:
            raise H2ConnectionError(f"HTTP/2 state error: {e!r}") from e

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and not self._closed:
            self._writer.write(data)

    async def _flush_and_drain(self) -> None:
        self._flush()
        if self._error is not None:
            raise self._error
        try:
            await self._writer.drain()
        except OSError as e:
            err = H2ConnectionError(f"connection to {self.host}:{self.port} lost: {e}")
            self._shutdown(err)
            raise err from e

    def _flush_soon(self) -> None:
        """Flush at the end of this loop turn: frames queued meanwhile (other streams' resets,
        window updates, DATA) share one socket write."""
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._deferred_flush)

    def _deferred_flush(self) -> None:
        self._flush_pending = False
        self._flush()

    def _ack(self, stream_id: int, flow_len: int) -> None:
        if flow_len and not self._closed:
            self._h2.acknowledge_received_data(flow_len, stream_id)
            self._flush_soon()

    def _reset(self, stream: H2Stream, error_code: int) -> None:
        if not self._closed and stream.stream_id in self._streams:
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream.stream_id, error_code)
                self._flush_soon()
        # Return unread data to the connection window; h2 ignores the closed stream's part.
        unread = sum(i[1] for i in stream._inbox if isinstance(i, tuple))
        stream._inbox.clear()
        self._ack(stream.stream_id, unread)
        stream._fail(H2StreamReset(stream.stream_id, error_code, remote=False))
        self._forget(stream.stream_id)

    def _maybe_forget(self, stream: H2Stream) -> None:
        if stream._local_closed and stream._remote_closed:
            self._forget(stream.stream_id)

    def _forget(self, stream_id: int) -> None:
        if self._streams.pop(stream_id, None) is not None:
            self._capacity.set()
            if self._goaway and not self._streams:  # drained after GOAWAY: close (deferred,
                self._loop.call_soon(self._close_drained)  # callers may be mid-iteration)

    def _close_drained(self) -> None:
        msg = f"connection to {self.host}:{self.port} closed after GOAWAY"
        self._shutdown(H2ConnectionError(msg, refused=True))

    async def _read_loop(self) -> None:
        err: H2ConnectionError
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                self.last_received = time.monotonic()
                if not data:
                    err = H2ConnectionError(f"connection to {self.host}:{self.port} closed by peer")
                    break
                try:
                    events = self._h2.receive_data(data)
                except h2.exceptions.ProtocolError as e:
                    self._flush()  # h2 queued a GOAWAY for the peer
                    err = H2ConnectionError(f"HTTP/2 protocol error: {e}")
                    break
                for event in events:
                    self._dispatch(event)
                self._flush()
                if self._closed:
                    return
        except asyncio.CancelledError:
            raise
        except OSError as e:
            err = H2ConnectionError(f"connection to {self.host}:{self.port} lost: {e}")
        self._shutdown(err)

    def _dispatch(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.ResponseReceived):
            stream = self._streams.get(ev.stream_id or 0)
            if stream is not None and not stream._head.done():
                stream._head.set_result(_head(ev.headers or []))
        elif isinstance(ev, h2.events.DataReceived):
            stream = self._streams.get(ev.stream_id or 0)
            flow_len = ev.flow_controlled_length or 0
            if stream is None:  # stream already forgotten: hand the window straight back
                self._ack(ev.stream_id or 0, flow_len)
            else:
                stream._push((ev.data or b"", flow_len))
        elif isinstance(ev, h2.events.TrailersReceived):
            stream = self._streams.get(ev.stream_id or 0)
            if stream is not None:
                stream.trailers = tuple(_pairs(ev.headers or []))
        elif isinstance(ev, h2.events.StreamEnded):
            stream = self._streams.get(ev.stream_id or 0)
            if stream is not None:
                if not stream._head.done():  # END_STREAM without headers: malformed
                    stream._fail(H2ConnectionError("stream ended without response headers"))
                stream._remote_closed = True
                stream._push(None)
                self._maybe_forget(stream)
        elif isinstance(ev, h2.events.StreamReset):
            stream = self._streams.get(ev.stream_id or 0)
            if stream is not None:
                code = int(ev.error_code or 0)
                stream._fail(H2StreamReset(stream.stream_id, code, remote=True))
                self._forget(stream.stream_id)
        elif isinstance(ev, h2.events.WindowUpdated):
            if not ev.stream_id:
                for s in self._streams.values():
                    s._window_open.set()
            elif (stream := self._streams.get(ev.stream_id)) is not None:
                stream._window_open.set()
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            self._settings_seen.set()
            # A new initial window or stream limit may unblock senders and openers.
            for s in self._streams.values():
                s._window_open.set()
            self._capacity.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self._on_goaway(int(ev.error_code or 0), ev.last_stream_id or 0)

    def _on_goaway(self, code: int, last: int) -> None:
        self._goaway = True
        self._capacity.set()
        if code != h2.errors.ErrorCodes.NO_ERROR:
            self._shutdown(H2ConnectionError(f"peer sent GOAWAY: {_error_name(code)}"))
            return
        for sid in [sid for sid in self._streams if sid > last]:
            refused = H2ConnectionError(f"stream {sid} refused by GOAWAY", refused=True)
            self._streams[sid]._fail(refused)
            self._forget(sid)
        if self._streams:
            # Graceful GOAWAY: streams <= last may still complete, but h2 refuses every frame
            # after GOAWAY; reopen its state machine so they can drain (we open no new ones).
            self._h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        else:
            self._loop.call_soon(self._close_drained)

    def _shutdown(self, err: H2ConnectionError) -> None:
        if self._closed:
            return
        self._closed = True
        if self._error is None:
            self._error = err
        for stream in list(self._streams.values()):
            stream._fail(err)
        self._streams.clear()
        self._capacity.set()
        self._settings_seen.set()
        self._writer.close()


def _pairs(headers: Iterable[tuple[bytes | str, bytes | str]]) -> Iterable[tuple[str, str]]:
    for k, v in headers:
        ks = k.decode() if isinstance(k, bytes) else k
        vs = v.decode() if isinstance(v, bytes) else v
        yield ks, vs


def _head(headers: Iterable[tuple[bytes | str, bytes | str]]) -> H2Response:
    status = 0
    rest: list[tuple[str, str]] = []
    for k, v in _pairs(headers):
        if k == ":status":
            status = int(v)
        elif not k.startswith(":"):
            rest.append((k, v))
    return H2Response(status, tuple(rest))


class H2Pool:
    """Connections keyed by (host, port); one multiplexed connection per peer, reopened when
    it is closed, failed or received GOAWAY."""

    def __init__(self) -> None:
        self._conns: dict[tuple[str, int], H2Connection] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def connection(self, host: str, port: int) -> H2Connection:
        key = (host, port)
        conn = self._conns.get(key)
        if conn is not None and conn.usable:
            return conn
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one connect per peer even under a burst of requests
            conn = self._conns.get(key)
            if conn is None or not conn.usable:
                # An old GOAWAY'd connection closes itself once its streams finish.
                conn = await H2Connection.connect(host, port)
                self._conns[key] = conn
            return conn

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        headers: Headers = (),
        *,
        end_stream: bool = False,
        never_index: frozenset[str] = frozenset(),
        flush: bool = True,
    ) -> H2Stream:
        """Open a stream on the pooled connection; retries once on a fresh connection when the
        pooled one turned out to be dead (the request was provably not processed)."""
        for attempt in (1, 2):
            conn = await self.connection(host, port)
            try:
                return await conn.request(method, path, headers, end_stream=end_stream,
                                          never_index=never_index, flush=flush)
            except H2ConnectionError as e:
                if attempt == 2 or not e.refused:
                    raise
        raise AssertionError("unreachable")

    async def evict_silent(self, url: str, silent_s: float) -> bool:
        """Close the pooled connection to `url`'s peer if nothing at all came from it for
        `silent_s` (a black hole: no FIN, no RST, so it would be reused for ever)."""
        host, port, _ = split_url(url)
        conn = self._conns.get((host, port))
        if conn is None or time.monotonic() - conn.last_received < silent_s:
            return False
        del self._conns[(host, port)]
        await conn.close()
        return True

    async def close(self) -> None:
        conns = list(self._conns.values())
        self._conns.clear()
        for conn in conns:
            await conn.close()


def split_url(url: str) -> tuple[str, int, str]:
    """`http://host:port/path?q` -> (host, port, '/path?q'); only cleartext http is supported."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise H2ConnectionError(f"unsupported URL scheme for h2c: {url!r}", refused=True)
    host = parts.hostname or "localhost"
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return host, port, path


async def get(
    url: str, headers: Headers = (), *, pool: H2Pool | None = None
) -> tuple[int, tuple[tuple[str, str], ...], bytes]:
    """GET `url` over h2c -> (status, headers, body). Uses a one-off connection without `pool`."""
    host, port, path = split_url(url)
    if pool is not None:
        for attempt in (1, 2, 3):
            try:
                stream = await pool.request(host, port, "GET", path, headers, end_stream=True)
                async with stream:
                    head = await stream.response_headers()
                    return head.status, head.headers, await stream.read()
            except H2ConnectionError as e:
                # e.g. raced a GOAWAY: unprocessed, so safe to resend on a fresh connection
                if not e.refused or attempt == 3:
                    raise
    async with await H2Connection.connect(host, port) as conn:
        stream = await conn.request("GET", path, headers, end_stream=True)
        head = await stream.response_headers()
        return head.status, head.headers, await stream.read()
