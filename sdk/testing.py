"""Test helper: an rstq server on a temp data dir serving your services.

    from rstq.sdk.testing import serve

    with serve([greeter, counter]) as env:          # also: async with
        assert env.client.call(greet, "bob") == "Hello bob!"

Starts ``python -m rstq.cli.main server`` (a subprocess, killed on exit), serves the app with
hypercorn in a background thread (h2c: BIDI_STREAM; ``http2=False``: REQUEST_RESPONSE) and
registers it. As a pytest fixture::

    @pytest.fixture
    def env():
        with serve([greeter]) as e:
            yield e
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .asgi import RestateApp, app
from .client import AsyncClient, Client
from .service import AnyService


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), bytes(e.read())


class _Hypercorn:
    """hypercorn on its own event loop in a daemon thread."""

    def __init__(self, asgi: RestateApp, port: int) -> None:
        self.asgi = asgi
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="rstq-sdk-hypercorn")

    def _run(self) -> None:
        from hypercorn.asyncio import serve as hserve
        from hypercorn.config import Config

        cfg = Config()
        cfg.bind = [f"127.0.0.1:{self.port}"]
        cfg.h2_max_concurrent_streams = 2**31 - 1
        cfg.keep_alive_timeout = 3600
        cfg.graceful_timeout = 1
        cfg.accesslog = None
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        stop = self._stop
        self._loop.run_until_complete(hserve(self.asgi, cfg,  # type: ignore[arg-type]
                                             shutdown_trigger=stop.wait))

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("hypercorn did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


class TestEnv:
    """A running rstq server with the services registered."""

    __test__ = False  # not a pytest class

    def __init__(self, services: Iterable[AnyService] | RestateApp, *, http2: bool = True,
                 server_args: Iterable[str] = (), startup_timeout: float = 30.0) -> None:
        self.asgi = services if isinstance(services, RestateApp) else app(services)
        self.http2 = http2
        self.server_args = list(server_args)
        self.startup_timeout = startup_timeout
        self.base_dir = Path(tempfile.mkdtemp(prefix="rstq-sdk-test-"))
        self.ingress_port = _free_port()
        self.admin_port = _free_port()
        self.service_port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._hc: _Hypercorn | None = None
        self._client: Client | None = None
        self.deployment: dict[str, Any] = {}

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.ingress_url)
        return self._client

    def async_client(self) -> AsyncClient:
        return AsyncClient(self.ingress_url)

    def logs(self) -> str:
        p = self.base_dir / "rstq.log"
        return p.read_text(errors="replace")[-20000:] if p.exists() else ""

    def start(self) -> TestEnv:
        log = open(self.base_dir / "rstq.log", "wb")  # noqa: SIM115 (closed with the process)
        cmd = [sys.executable, "-m", "rstq.cli.main", "server",
               "--data-dir", str(self.base_dir / "data"),
               "--ingress", f"127.0.0.1:{self.ingress_port}",
               "--admin", f"127.0.0.1:{self.admin_port}", *self.server_args]
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()
        try:
            self._wait_healthy()
            self._hc = _Hypercorn(self.asgi, self.service_port)
            self._hc.start()
            status, body = _http("POST", f"{self.admin_url}/deployments",
                                 {"uri": f"http://127.0.0.1:{self.service_port}",
                                  "use_http_11": not self.http2, "force": True}, timeout=30)
            if status not in (200, 201):
                raise RuntimeError(f"registration failed: {status} {body[:500]!r}")
            self.deployment = json.loads(body)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        for url in (f"{self.admin_url}/health", f"{self.ingress_url}/restate/health"):
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"rstq server exited:\n{self.logs()}")
                try:
                    if _http("GET", url, timeout=1.0)[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"rstq server not healthy:\n{self.logs()}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._proc is not None:  # first: it closes its streams to our service
            try:
                os.killpg(self._proc.pid, signal.SIGTERM)
                self._proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
            self._proc = None
        if self._hc is not None:
            self._hc.stop()
            self._hc = None
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> TestEnv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> TestEnv:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


def serve(services: Iterable[AnyService] | RestateApp, *, http2: bool = True,
          server_args: Iterable[str] = ()) -> TestEnv:
    """A :class:`TestEnv`; use it as a (async) context manager."""
    return TestEnv(services, http2=http2, server_args=server_args)
