"""Run an ASGI app under hypercorn in a subprocess on a free loopback port (tests only).

Plain binds serve HTTP/1.1 and h2c (prior knowledge) on the same port; the client picks.
Startup waits until the port accepts connections, bounded by a deadline (no blind sleeps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.support.net.ports import free_port, port_open

REPO_ROOT = Path(__file__).resolve().parents[3]


class HypercornProcess:
    """`with HypercornProcess("tests.support.apps.echo_app:app") as hc: hc.url ...`

    `config` holds extra hypercorn TOML settings (e.g. keep_alive_max_requests).
    """

    def __init__(
        self,
        app: str,
        *,
        config: dict[str, int | str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.config = dict(config or {})
        self.startup_timeout = startup_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="rstq-hc-"))
        self.log_path = self._dir / "hypercorn.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def replacement(self) -> HypercornProcess:
        """A new, unstarted process of the same app and config on this one's port: an
        endpoint that comes back (after `kill`) where its callers expect it."""
        out = HypercornProcess(self.app, config=self.config,
                               startup_timeout=self.startup_timeout)
        out.port = self.port
        return out

    def start(self) -> Self:
        self.port = self.port or free_port()
        # workers = 0: serve in this one process (no spawned workers), so kill() really
        # drops the connections.
        cfg = {"bind": f"127.0.0.1:{self.port}", "workers": 0, **self.config}
        cfg_path = self._dir / "hypercorn.toml"
        cfg_path.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in cfg.items()))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hypercorn", "--config", str(cfg_path), self.app],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"hypercorn exited ({self.proc.returncode}): {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"hypercorn not listening on {self.port}: {self.log_tail()}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """Hard-kill (SIGKILL): connections drop without GOAWAY."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what we started
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            # hypercorn sometimes lingers after SIGTERM once a restate-sdk app served a
            # request; a test server needs no graceful exit, so do not wait long.
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
