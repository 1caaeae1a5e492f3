"""Serve an ASGI app (``module:attr``) under hypercorn in a subprocess on a free loopback port.

Two flavours, matching the two Restate deployment modes:

* ``http2=True`` (default): h2c with prior knowledge; register the URI normally and the server
  uses BIDI_STREAM.
* ``http2=False``: REQUEST_RESPONSE; register with ``use_http_11=True``. (hypercorn has no switch
  to refuse h2c on cleartext; the protocol actually used is chosen by the client, i.e. by the
  ``use_http_11`` flag of the deployment.)

Usage::

    with ServiceProcess("tests.support.apps.compat_services:app", http2=False) as svc:
        rs.register(svc.url, use_http_11=not svc.http2)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.harness.restate_server import (
    REPO_ROOT,
    free_port,
    spawn,
    stop_process_group,
    tail,
)


class ServiceProcessError(RuntimeError):
    pass


class ServiceProcess:
    def __init__(self, app: str, *, http2: bool = True, port: int | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 30.0) -> None:
        self.app = app
        self.http2 = http2
        self.port = port or 0
        self.extra_env = env or {}
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir: Path | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "hypercorn.log"

    def start(self) -> ServiceProcess:
        t0 = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="rstq-svc-"))
        self.port = self.port or free_port()
        cfg = self.workdir / "hypercorn.toml"
        cfg.write_text(
            f'bind = "127.0.0.1:{self.port}"\n'
            "workers = 0\n"  # serve in this process: no orphanable worker children

            "h2_max_concurrent_streams = 2147483647\n"
            "keep_alive_max_requests = 2147483647\n"
            "keep_alive_timeout = 2147483647\n"
            "graceful_timeout = 1\n"
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        self.proc = spawn([sys.executable, "-m", "hypercorn", "--config", str(cfg), self.app],
                          log_path=self.log_path, env=env, cwd=REPO_ROOT)
        try:
            self._wait_port(time.monotonic() + self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_port(self, deadline: float) -> None:
        delay = 0.02
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise ServiceProcessError(
                    f"hypercorn {self.app} exited with {self.proc.returncode}:\n"
                    f"{tail(self.log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServiceProcessError(
                    f"hypercorn {self.app} not listening on {self.port} after "
                    f"{self.startup_timeout}s:\n{tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self, keep_logs: bool = False) -> None:
        if self.proc is not None:
            stop_process_group(self.proc, grace=1.0)
            self.proc = None
        if self.workdir is not None and not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        return tail(self.log_path, 20000) if self.workdir else ""

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
