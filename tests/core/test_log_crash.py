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

import pytest
from rstq.core.log.local import LocalLog

CHILD = Path(__file__).with_name("crash_log_child.py")
SEED = int(os.environ.get("RSTQ_CRASH_SEED", "20240611"))
ROUNDS = 24
APPENDERS = 32
SEGMENT_BYTES = 64 * 1024  # small, so kills also land around segment rolls


def run_and_kill(directory: Path, round_no: int, delay: float) -> list[tuple[int, str]]:
    """Start the child, SIGKILL it after `delay` s; returns the acknowledged (lsn, id)."""
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
    chunks: list[bytes] = []
    # Drain stdout continuously so the child never blocks on a full pipe.
    drain = threading.Thread(target=lambda: chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
    drain.start()
    time.sleep(delay)  # the random kill moment, not a wait for some condition
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    drain.join()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL, f"child ended on its own: {stderr}"
    text = b"".join(chunks).decode()
    complete = text[: text.rfind("\n") + 1]  # a line cut by the kill was never seen
    acked = []
    for line in complete.splitlines():
        lsn, ident = line.split()
        acked.append((int(lsn), ident))
    return acked


@pytest.mark.slow
def test_sigkill_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acked: dict[int, str] = {}
    total_rounds_with_acks = 0
    for round_no in range(ROUNDS):
        delay = rng.uniform(0.05, 0.6)  # sometimes during the child's own recovery
        new = run_and_kill(tmp_path, round_no, delay)
        total_rounds_with_acks += bool(new)
        for lsn, ident in new:
            assert acked.setdefault(lsn, ident) == ident, f"lsn {lsn} acknowledged twice"

        log = LocalLog.open_sync(tmp_path, segment_bytes=SEGMENT_BYTES)
        records = list(log.read(1))
        log.close_sync()
        lsns = [lsn for lsn, _ in records]
        context = f"seed {SEED} round {round_no} delay {delay:.3f}"
        assert lsns == list(range(1, len(lsns) + 1)), f"LSNs not dense ({context})"
        assert max(acked, default=0) <= len(lsns), f"acknowledged record lost ({context})"
        for lsn, ident in acked.items():
            assert records[lsn - 1][1].startswith(ident.encode() + b"|"), context
        for _, data in records:  # unacknowledged survivors must still be whole records
            assert data.startswith(b"r") and b"|" in data
    assert total_rounds_with_acks >= ROUNDS // 2  # the kills really hit a busy writer
