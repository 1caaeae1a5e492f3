"""The partition store's cost per applied batch (`StateWriter.write`), one command per batch:
the c=1 case, where every command is its own group commit. Run: python bench/store_write.py"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rstq.core import commands as c  # noqa: E402
from rstq.core.apply import apply  # noqa: E402
from rstq.core.model import PartitionState  # noqa: E402
from rstq.core.store import open_store  # noqa: E402
from rstq.core.store import state as stored  # noqa: E402

from tests.core.builders import T0, inv_id_on, invoke, output, set_state  # noqa: E402


def main(n: int = 3000) -> None:
    store = open_store(tempfile.mkdtemp(prefix="rstq-store-write-"))
    state = PartitionState(0, 1)
    writer = stored.StateWriter(store, state)
    feed = state.changes.subscribe()
    cmds: list[c.Command] = []
    for i in (inv_id_on(0, 1, n=k) for k in range(n)):
        cmds += [invoke(i, service="Obj", key=i[-6:], service_ty="virtual_object",
                        handler_ty="exclusive"),
                 set_state(i, 1, b"k", b"v"), output(i, 1), c.End(i, 1)]
    spent = 0.0
    for lsn, cmd in enumerate(cmds, start=1):
        apply(state, c.Envelope(T0, c.roundtrip(T0, cmd)), lsn)
        changes = feed.take()
        t0 = time.perf_counter()
        writer.write(state, changes)
        spent += time.perf_counter() - t0
    store.close()
    print(f"store write: {spent / len(cmds) * 1e6:.1f} µs per batch of one command "
          f"({len(cmds)} commands: invoke, set state, output, end per invocation)")


if __name__ == "__main__":
    main()
