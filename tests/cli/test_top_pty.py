"""Drive `rstq top` in a pseudo-terminal (stdlib pty, bounded deadlines) against a live server:
it draws, filters by service, opens the selected invocation's journal and trace, goes back and
quits cleanly on `q`."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import pytest

from tests.support.harness.example_traffic import ExampleEnv, example_env

pytestmark = pytest.mark.slow

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1b[=>78]|\x1b\][^\x07]*\x07")


@pytest.fixture(scope="module")
def env() -> Iterator[ExampleEnv]:
    with example_env(partitions=2) as e:
        yield e


class Pty:
    def __init__(self, args: list[str], env: dict[str, str], rows: int = 42,
                 cols: int = 150) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        self.buf = ""

    def read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                return
            self.buf += ANSI.sub("", data.decode(errors="replace"))

    def expect(self, *needles: str, timeout: float = 20.0) -> str:
        """Wait until every needle appeared since the last expect(); return that output."""
        deadline = time.monotonic() + timeout
        while True:
            if all(n in self.buf for n in needles):
                out, self.buf = self.buf, ""
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not on screen within {timeout}s: {needles}\n"
                                     f"--- screen output ---\n{self.buf[-3000:]}")
            if self.proc.poll() is not None:
                self.read(0.05)
                if not all(n in self.buf for n in needles):
                    raise AssertionError(f"rstq top exited ({self.proc.returncode}):\n"
                                         f"{self.buf[-3000:]}")
            self.read(min(left, 0.2))

    def send(self, keys: str) -> None:
        self.buf = ""
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


def test_top_in_a_terminal(env: ExampleEnv) -> None:
    penv = {k: v for k, v in os.environ.items() if not k.startswith("RSTQ_")}
    penv |= {"TERM": "xterm-256color", "RSTQ_ADMIN_URL": env.server.admin_url,
             "COLUMNS": "150", "LINES": "42"}
    t = Pty([sys.executable, "-m", "rstq.cli.main", "top", "--interval", "0.5"], penv)
    try:
        sleeping = env.ids["sleeping"]
        t.expect("rstq top", "longest waiting", "partitions", sleeping, "recent failures",
                 "a payment needs a user_id")
        # filter: / PaymentProvider enter
        t.send("/")
        t.expect("service filter:")
        t.send("PaymentProvider\r")
        t.expect("service: PaymentProvider", sleeping)
        # the only waiting PaymentProvider invocation is selected: open its journal
        t.send("\r")
        t.expect(f"journal of {sleeping}", "Command: Sleep", "Waiting for")
        t.send("t")
        t.expect(f"trace of {sleeping}")
        t.send("\x1b")
        t.expect("longest waiting", "service: PaymentProvider")
        t.send("a")
        t.expect("service: all")
        t.send("q")
        deadline = time.monotonic() + 10
        while t.proc.poll() is None and time.monotonic() < deadline:
            t.read(0.1)
        assert t.proc.returncode == 0, t.buf[-2000:]
    finally:
        t.close()
