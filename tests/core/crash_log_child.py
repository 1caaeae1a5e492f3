"""Crash-test child: appends under concurrent load until killed.

Usage: crash_log_child.py DIR ROUND APPENDERS SEGMENT_BYTES

Prints `<lsn> <id>` (flushed) for every record only after its append returned, i.e. after it
was acknowledged as durable; `append_batch` prints one line per record of the batch. The payload
of a record starts with `<id>|` so the parent can match it.
"""

from __future__ import annotations

import asyncio
import random
import sys

from rstq.core.log.api import FsyncPolicy
from rstq.core.log.local import LocalLog


def make_payload(ident: str, rng: random.Random) -> bytes:
    return ident.encode() + b"|" + rng.randbytes(rng.randrange(0, 300))


async def appender(log: LocalLog, round_no: int, k: int) -> None:
    rng = random.Random(round_no * 1000 + k)
    out = sys.stdout
    i = 0
    while True:
        if rng.random() < 0.2:
            ids = [f"r{round_no}.a{k}.{i + j}" for j in range(rng.randrange(2, 6))]
            last = await log.append_batch([make_payload(x, rng) for x in ids])
            lines = [f"{last - len(ids) + 1 + j} {x}\n" for j, x in enumerate(ids)]
            out.write("".join(lines))
            i += len(ids)
        else:
            ident = f"r{round_no}.a{k}.{i}"
            lsn = await log.append(make_payload(ident, rng))
            out.write(f"{lsn} {ident}\n")
            i += 1
        out.flush()


async def main() -> None:
    directory, round_no, appenders, segment_bytes = sys.argv[1:5]
    log = await LocalLog.open(directory, FsyncPolicy.BATCH, int(segment_bytes))
    await asyncio.gather(*(appender(log, int(round_no), k) for k in range(int(appenders))))


if __name__ == "__main__":
    asyncio.run(main())
