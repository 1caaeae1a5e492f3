"""The threaded socket shell around `Session`: an accept thread and one thread per client, so a
slow client or a long query never touches the runtime's event loop. Queries run on a small
thread pool (DataFusion releases the GIL), which is what makes cancel requests possible."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from rstq.pgwire import codec as m
from rstq.pgwire.catalog import Catalog
from rstq.pgwire.session import DEFAULT_SETTINGS, PgError, Session, WireConfig
from rstq.query.api import QueryEngine, QueryObserver

log = logging.getLogger(__name__)

WRITE_BUFFER = 64 * 1024
MAX_CONNECTIONS = 64


def parse_bind(bind: str, default_port: int = 9071) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host:
        return port or "127.0.0.1", default_port
    return host.strip("[]"), int(port)


class _SocketOutput:
    """Buffered writes; big Arrow buffers go straight to the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def write(self, data: bytes | pa.Buffer) -> None:
        if isinstance(data, bytes | bytearray) and len(data) < WRITE_BUFFER:
            self.buf += data
            if len(self.buf) >= WRITE_BUFFER:
                self.flush()
            return
        self.flush()
        self.sock.sendall(memoryview(data))

    def flush(self) -> None:
        if self.buf:
            self.sock.sendall(self.buf)
            self.buf.clear()


def _is_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return addr in ("", "localhost")  # unix sockets
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


class PgWireServer:
    """`start()` binds and serves in background threads; `stop()` closes everything.

    `on_query` is told of every statement a session runs; `open_sessions` and
    `sessions_total` count the client connections (open now, and since the start)."""

    def __init__(self, engine: QueryEngine, bind: str = "127.0.0.1:9071", *,
                 config: WireConfig | None = None, max_workers: int = 4,
                 on_query: QueryObserver | None = None) -> None:
        self.engine = engine
        self.on_query = on_query
        self.sessions_total = 0
        self.host, self._port = parse_bind(bind)
        self.config = config or WireConfig()
        self.catalog = Catalog(engine, self.config.database, DEFAULT_SETTINGS)
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="pgwire-query")
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._sessions: dict[int, Session] = {}
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._pids = itertools.count(os.getpid() * 1000 % 2_000_000_000 + 1)
        self._stopping = False

    @property
    def open_sessions(self) -> int:
        with self._lock:
            return len(self._conns)

    @property
    def port(self) -> int:
        if self._listener is not None:
            return int(self._listener.getsockname()[1])
        return self._port

    def start(self, listener: socket.socket | None = None) -> None:
        """Bind and serve; `listener`: an already bound, listening socket to serve instead."""
        if listener is not None:
            s = listener
            s.setblocking(True)
        else:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((self.host, self._port))
                s.listen(128)
            except OSError:
                s.close()
                self._executor.shutdown(wait=False)
                raise
        self._listener = s
        self._accept_thread = threading.Thread(target=self._accept_loop, name="pgwire-accept",
                                               daemon=True)
        self._accept_thread.start()
        log.info("pgwire listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self._stopping = True
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
            sessions = list(self._sessions.values())
        for sess in sessions:
            sess.cancel()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PgWireServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- connections -----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                conn, addr = self._listener.accept()
            except OSError:
                if self._stopping:
                    return
                continue
            t = threading.Thread(target=self._serve, args=(conn, str(addr[0])),
                                 name="pgwire-conn", daemon=True)
            t.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            too_many = len(self._conns) >= MAX_CONNECTIONS
            self._conns.add(sock)
            self.sessions_total += 1
        out = _SocketOutput(sock)
        pid = next(self._pids)
        session = Session(self.engine, self.catalog, self.config, out, self._executor,
                          pid=pid, loopback=_is_loopback(peer), on_query=self.on_query)
        parser = m.Parser()
        try:
            if too_many:
                out.write(m.error_response("53300", "sorry, too many clients already",
                                           severity="FATAL"))
                out.flush()
                return
            while True:
                data = sock.recv(256 * 1024)
                if not data:
                    return
                for msg in parser.feed(data):
                    if isinstance(msg, m.SSLRequest | m.GSSENCRequest):
                        sock.sendall(b"N")
                        continue
                    if isinstance(msg, m.CancelRequest):
                        self._cancel(msg)
                        return
                    if not self._handle(session, msg):
                        return
        except m.ProtocolViolation as e:
            self._fatal(out, "08P01", str(e))
        except (ConnectionError, OSError):
            pass
        except Exception as e:  # never let one client take the server down
            log.exception("pgwire: connection from %s failed", peer)
            self._fatal(out, "XX000", f"internal error: {e}")
        finally:
            with self._lock:
                self._conns.discard(sock)
                self._sessions.pop(pid, None)
            session.cancel()
            try:
                out.flush()
            except OSError:
                pass
            sock.close()

    def _handle(self, session: Session, msg: m.FrontendMessage) -> bool:
        ok = session.handle(msg)
        if session.state == "ready":
            with self._lock:
                self._sessions.setdefault(session.pid, session)
        return ok

    def _cancel(self, msg: m.CancelRequest) -> None:
        with self._lock:
            target = self._sessions.get(msg.pid)
        if target is not None and target.secret == msg.secret:
            target.cancel()

    @staticmethod
    def _fatal(out: _SocketOutput, code: str, message: str) -> None:
        try:
            out.write(m.error_response(code, message, severity="FATAL"))
            out.flush()
        except OSError:
            pass


__all__ = ["PgError", "PgWireServer", "WireConfig", "parse_bind"]
