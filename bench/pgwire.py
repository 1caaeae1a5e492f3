"""Benchmark: rows/s through the Postgres wire endpoint into psycopg's fetchall.

    python bench/pgwire.py [--rows 1000000] [--repeat 3]

The server (PgWireServer over a DataFusion context holding one in-memory table of ROWS rows x 4
columns: text, text, bigint, double) runs in a child process, as it would in `rstq server`; the
client fetches `SELECT * FROM big` with psycopg in text and binary format. Target: >= 500k rows/s.
Also reports the server-side encode rate alone (Arrow -> DataRow bytes, no socket).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa

TARGET = 500_000


def make_table(n: int) -> pa.Table:
    return pa.table({
        "service": pa.array([f"svc{i % 100}" for i in range(n)]),
        "key": pa.array([f"key{i}" for i in range(n)]),
        "n": pa.array(range(n), pa.int64()),
        "value": pa.array([i * 0.25 for i in range(n)], pa.float64()),
    })


class BigEngine:
    def __init__(self, table: pa.Table) -> None:
        from datafusion import SessionContext
        from rstq.query.api import Column, TableDef

        self.ctx = SessionContext()
        self.ctx.register_record_batches("big", [table.to_batches()])
        self.defs = [TableDef("big", "bench", tuple(Column(f.name, f.type, "")
                                                    for f in table.schema))]

    def tables(self) -> Sequence[object]:
        return self.defs

    def sql(self, query: str, params: Sequence[object] | None = None,
            timeout_s: float | None = None) -> pa.Table:
        values = {str(i + 1): v for i, v in enumerate(params or [])} or None
        return self.ctx.sql(query, param_values=values).to_arrow_table()


def serve(rows: int, port_q: mp.Queue[int], stop: mp.Event) -> None:  # type: ignore[type-arg]
    from rstq.pgwire.server import PgWireServer

    srv = PgWireServer(BigEngine(make_table(rows)), "127.0.0.1:0")  # type: ignore[arg-type]
    srv.start()
    port_q.put(srv.port)
    stop.wait()
    srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import psycopg
    from rstq.pgwire import types as T

    table = make_table(args.rows)
    oids = [T.pg_type_of(c.type) for c in table.columns]
    for fmt in (0, 1):
        t0 = time.perf_counter()
        size = 0
        for b in table.to_batches(max_chunksize=65536):
            size += len(T.encode_data_rows(b.columns, oids, [fmt] * len(oids)))
        dt = time.perf_counter() - t0
        print(f"encode only ({'binary' if fmt else 'text'}): {args.rows / dt:,.0f} rows/s "
              f"({size / dt / 1e6:,.0f} MB/s)")

    ctx = mp.get_context("spawn")
    port_q: mp.Queue[int] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=serve, args=(args.rows, port_q, stop), daemon=True)
    proc.start()
    port = port_q.get(timeout=120)
    dsn = f"host=127.0.0.1 port={port} user=rstq dbname=rstq"
    worst = float("inf")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for binary in (False, True):
                rates = []
                for _ in range(args.repeat):
                    cur = conn.cursor(binary=binary)
                    t0 = time.perf_counter()
                    cur.execute("SELECT * FROM big")
                    got = len(cur.fetchall())
                    dt = time.perf_counter() - t0
                    assert got == args.rows, got
                    rates.append(args.rows / dt)
                med = statistics.median(rates)
                worst = min(worst, med)
                print(f"psycopg fetchall ({'binary' if binary else 'text'}), {args.rows:,} rows "
                      f"x 4 cols: median {med:,.0f} rows/s "
                      f"(runs: {', '.join(f'{r:,.0f}' for r in rates)})")
    finally:
        stop.set()
        proc.join(timeout=10)
    verdict = "OK" if worst >= TARGET else "BELOW TARGET"
    print(f"target >= {TARGET:,} rows/s: {verdict}")


if __name__ == "__main__":
    main()
