"""SIGKILL a busy writer at random moments: every acknowledged record must survive.

Seeded, so a failing round can be replayed: RSTQ_CRASH_SEED overrides the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest
from rstq.core.log.local import LocalLog

CHILD = Path(__file__).with_name("crash_log_child.py")
SEED = int(os.environ.get("RSTQ_CRASH_SEED", "20240611"))
ROUNDS = 24
APPENDERS = 32
SEGMENT_BYTES = 64 * 1024  # small, so kills also land around segment rolls


def run_and_kill(
    directory: Path, round_no: int, after_first_ack: bool, delay: float
) -> list[tuple[int, str]]:
    """Run the child and SIGKILL it `delay` s after its start or after its first
    acknowledgement; returns the acknowledged (lsn, id)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            str(directory),
            str(round_no),
            str(APPENDERS),
            str(SEGMENT_BYTES),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[bytes] = []
    first_ack = threading.Event()

    def drain(stdout: IO[bytes]) -> None:  # keeps the pipe empty so the child never blocks
        for line in stdout:
            lines.append(line)
            first_ack.set()
        first_ack.set()

    drainer = threading.Thread(target=drain, args=(proc.stdout,))
    drainer.start()
    if after_first_ack:
        first_ack.wait(timeout=30)
    time.sleep(delay)  # the random kill moment, not a wait for some condition
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    drainer.join()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL, f"child ended on its own: {stderr}"
    acked = []
    for line in lines:
        if line.endswith(b"\n"):  # a line cut by the kill was never seen
            lsn, ident = line.split()
            acked.append((int(lsn), ident.decode()))
    return acked


@pytest.mark.slow
def test_sigkill_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acked: dict[int, str] = {}
    for round_no in range(ROUNDS):
        # Mostly under load; sometimes at any moment, e.g. during the child's own recovery.
        after_first_ack = rng.random() < 0.8
        delay = rng.uniform(0, 0.3) if after_first_ack else rng.uniform(0, 0.5)
        new = run_and_kill(tmp_path, round_no, after_first_ack, delay)
        context = f"seed {SEED} round {round_no} delay {delay:.3f}"
        assert new or not after_first_ack, f"the child never acknowledged ({context})"
        for lsn, ident in new:
            assert acked.setdefault(lsn, ident) == ident, f"lsn {lsn} acknowledged twice"

        log = LocalLog.open_sync(tmp_path, segment_bytes=SEGMENT_BYTES)
        records = list(log.read(1))
        log.close_sync()
        lsns = [lsn for lsn, _ in records]
        assert lsns == list(range(1, len(lsns) + 1)), f"LSNs not dense ({context})"
        assert max(acked, default=0) <= len(lsns), f"acknowledged record lost ({context})"
        for lsn, ident in acked.items():
            assert records[lsn - 1][1].startswith(ident.encode() + b"|"), context
        for _, data in records:  # unacknowledged survivors must still be whole records
            assert data.startswith(b"r") and b"|" in data
