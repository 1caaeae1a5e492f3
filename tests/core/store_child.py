"""Child process for tests/core/test_store.py: opens a store and acts, reporting on stdout.

Usage: store_child.py DIR ENGINE MODE

- `hold`: open the store, print `open`, wait for stdin to close (or the kill).
- `before`: build a batch of ROWS puts, print `built`, wait (killed before write).
- `after-nosync` / `after-sync`: write one batch of ROWS puts (sync off/on), print `written`
  once `write` returned, wait (killed right after).
- `loop`: write batches 0, 1, 2, ... of ROWS rows each (row `b<n>/<i>`, plus `last` = n)
  without sync, printing `w<n>` just before each write and `<n>` after it returned, until
  killed.
"""

from __future__ import annotations

import sys

from rstq.core.store import open_store

ROWS = 5000


def batch_rows(n: int) -> list[tuple[bytes, bytes]]:
    return [(b"b%06d/%05d" % (n, i), b"v" * 50 + b"%d" % n) for i in range(ROWS)]


def main() -> None:
    directory, engine, mode = sys.argv[1:4]
    store = open_store(directory, engine)
    out = sys.stdout
    if mode == "hold":
        out.write("open\n")
        out.flush()
        sys.stdin.read()
        return
    if mode == "loop":
        n = 0
        while True:
            batch = store.batch()
            for k, v in batch_rows(n):
                batch.put(k, v)
            batch.put(b"last", b"%d" % n)
            out.write(f"w{n}\n")
            out.flush()
            store.write(batch)
            out.write(f"{n}\n")
            out.flush()
            n += 1
    batch = store.batch()
    for k, v in batch_rows(0):
        batch.put(k, v)
    if mode == "before":
        out.write("built\n")
    else:
        store.write(batch, sync=mode == "after-sync")
        out.write("written\n")
    out.flush()
    sys.stdin.read()


if __name__ == "__main__":
    main()
