"""Run rstq itself as a separate process (`rstq server`) for end-to-end, compat and crash tests.

Same surface as `RestateServer` (start/stop, ingress_url, admin_url, register), plus `kill()`
(SIGKILL, no clean shutdown) and `start()` again on the same data dir and ports.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import urllib.error
from pathlib import Path
from typing import Any

from tests.support.harness.restate_server import (
    PORT_ATTEMPTS,
    RestateServerError,
    _http,
    free_port,
    register_deployment,
    spawn,
    stop_process_group,
    tail,
)


class RstqServer:
    def __init__(self, *, data_dir: Path | None = None, partitions: int = 4,
                 fsync: str = "batch", extra_args: list[str] | None = None,
                 startup_timeout: float = 30.0) -> None:
        self._own_dir = data_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="rstq-srv-"))
        self.data_dir = data_dir or self.base_dir / "data"
        self.partitions = partitions
        self.fsync = fsync
        self.extra_args = list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.ingress_port = free_port()
        self.admin_port = free_port()
        self.pgwire_port = free_port()
        self.proc: Any = None
        self.startup_seconds = 0.0
        self._started = False  # after a first start, clients know the ports: keep them

    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "rstq.log"

    def start(self) -> RstqServer:
        first = not self._started
        for attempt in range(PORT_ATTEMPTS):
            try:
                return self._start()
            except RestateServerError as e:
                # Another process took a port between free_port() and our bind: on a first
                # start (nobody knows our URLs yet) try again on new ports.
                busy = "in use" in str(e).lower() or "errno 98" in str(e).lower()
                if not (first and busy) or attempt + 1 == PORT_ATTEMPTS:
                    raise
                if self.proc is not None:
                    stop_process_group(self.proc)
                    self.proc = None
                self.ingress_port, self.admin_port, self.pgwire_port = (
                    free_port(), free_port(), free_port())
        raise AssertionError("unreachable")

    def _start(self) -> RstqServer:
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "rstq.cli.main", "server", "--data-dir", str(self.data_dir),
               "--partitions", str(self.partitions), "--fsync", self.fsync,
               "--ingress", f"127.0.0.1:{self.ingress_port}",
               "--admin", f"127.0.0.1:{self.admin_port}",
               "--pgwire", f"127.0.0.1:{self.pgwire_port}", *self.extra_args]
        self.proc = spawn(cmd, log_path=self.log_path)
        deadline = time.monotonic() + self.startup_timeout
        for url in (f"{self.admin_url}/health", f"{self.ingress_url}/restate/health"):
            self._wait_ok(url, deadline)
        self.startup_seconds = time.monotonic() - t0
        self._started = True
        return self

    def _wait_ok(self, url: str, deadline: float) -> None:
        delay = 0.02
        while True:
            if self.proc.poll() is not None:
                raise RestateServerError(
                    f"rstq exited with {self.proc.returncode} during startup:\n"
                    f"{tail(self.log_path)}")
            try:
                status, _ = _http("GET", url, timeout=1.0)
            except (OSError, urllib.error.URLError):
                status = 0
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise RestateServerError(f"rstq not healthy ({url} -> {status}):\n"
                                         f"{tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def kill(self) -> None:
        """SIGKILL: no flush, no snapshot; the next start must recover from the log."""
        if self.proc is not None:
            import os
            import signal

            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> RstqServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def register(self, uri: str, use_http_11: bool = False, *, force: bool = True,
                 timeout: float = 30.0) -> dict[str, Any]:
        return register_deployment(self.admin_url, uri, use_http_11, force=force,
                                   timeout=timeout)
