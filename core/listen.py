"""Listening sockets taken before anything else at start, with errors a person can act on.

`rstq server` binds every port it serves (ingress, admin, Postgres wire) before it opens the
data dir, so a port that is taken fails the start at once, without touching any data, with one
line naming the port and the option that changes it.
"""

from __future__ import annotations

import errno
import socket


class BindError(OSError):
    """A listener could not be opened; the message is the one line to show."""


def listen(host: str, port: int, *, what: str, option: str, backlog: int = 1024
           ) -> socket.socket:
    """A bound, listening, non-blocking TCP socket on `host:port` (port 0: a free one).

    `what` names the listener ("ingress"), `option` the command-line option that moves it
    (`--ingress`), for the error message."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BindError(f"cannot listen on {host}:{port} ({what}): {e.strerror}; change it "
                        f"with {option} HOST:PORT") from None
    family, type_, proto, _, addr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        # As aiohttp and asyncio do on Unix: a restart may rebind while old connections
        # linger in TIME_WAIT. It never lets two live listeners share the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} is already in use ({what} on {host}:{port}); stop "
                            f"whatever listens there (another rstq or restate-server?) or "
                            f"change it with {option} HOST:PORT") from None
        if e.errno == errno.EACCES:
            raise BindError(f"no permission to listen on port {port} ({what}); change it with "
                            f"{option} HOST:PORT") from None
        raise BindError(f"cannot listen on {host}:{port} ({what}): {e.strerror}; change it "
                        f"with {option} HOST:PORT") from None
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
