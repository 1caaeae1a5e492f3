"""The `rstq` command."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
from rstq.cli.server_config import config_option, default_options, server_defaults
from rstq.cli.trace import requested_tracing, tracing_options
from rstq.core.datadir import DataDirError
from rstq.core.listen import BindError
from rstq.core.log.api import FsyncPolicy, LogCorruption


@click.group()
@click.version_option("0.1.0", prog_name="rstq")
def main() -> None:
    """rstq: durable execution with a SQL-queryable state store."""


@main.command()
@config_option
@tracing_options
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("./rstq-data"),
              show_default=True, help="Embedded local storage.")
@click.option("--partitions", type=int, default=None,
              help="Partition count, fixed when the data dir is created (default 8).")
@click.option("--fsync", type=click.Choice(["batch", "none"]), default="batch",
              show_default=True,
              help="batch: acknowledge appends after fsync. none: UNSAFE, tests/benchmarks only.")
@click.option("--store", "store", type=click.Choice(["rocksdb", "lmdb", "snapshot"]),
              default="rocksdb", show_default=True,
              help="Where partition state persists: an embedded store written after every "
                   "batch (rocksdb, lmdb), or whole-state snapshots (the format before the "
                   "store). A snapshot data dir migrates to the store on its first start.")
@click.option("--store-cache", "store_cache", type=int, default=None,
              help="RocksDB block cache in bytes, shared by all partitions (default 64 MiB).")
@click.option("--cache-size", "cache_size", type=click.IntRange(min=0), default=None,
              help="Completed invocations kept in memory per partition (default 1000); the "
                   "rest of the history is read from disk when asked for.")
@click.option("--segment-rows", type=click.IntRange(min=1), default=None,
              help="Completed invocations that move together into a history segment "
                   "(default 4096).")
@click.option("--snapshot-every", type=int, default=None,
              help="Applied commands between restart points: store checkpoints (default "
                   "20000) or, with --store snapshot, snapshots (default: auto, at least 20000 "
                   "and 4 per invocation or object key held).")
@click.option("--ingress", "ingress_bind", default="127.0.0.1:8080", show_default=True,
              help="Ingress HTTP listener (host:port).")
@click.option("--admin", "admin_bind", default="127.0.0.1:9070", show_default=True,
              help="Admin HTTP listener (host:port).")
@click.option("--pgwire", "pgwire_bind", default="127.0.0.1:9071", show_default=True,
              help="Postgres wire endpoint for psql/psycopg (host:port, or 'off').")
@click.option("--pgwire-user", default=None, help="With --pgwire-password: the only user.")
@click.option("--pgwire-password", default=None, envvar="RSTQ_PGWIRE_PASSWORD",
              help="Require SCRAM-SHA-256 with this password (default: trust, loopback only).")
@click.option("--enable-protocol-v7", is_flag=True,
              help="Negotiate service protocol v7 with deployments that support it.")
@click.option("--max-body", type=int, default=10 * 1024 * 1024, show_default=True,
              help="Largest ingress request body in bytes (larger: 413).")
@click.option("--max-journal-entry", type=int, default=32 * 1024 * 1024, show_default=True,
              help="Largest message a service may send (journal entry) in bytes.")
@click.option("--max-state-value", type=int, default=16 * 1024 * 1024, show_default=True,
              help="Largest state value a handler may set, in bytes.")
@click.option("--max-inbox", type=int, default=100_000, show_default=True,
              help="Invocations queued per object key; beyond it ingress answers 429.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--loop", "loop_impl", type=click.Choice(["uvloop", "asyncio"]), default="uvloop",
              show_default=True, help="Event loop (uvloop: same semantics, less CPU).")
@default_options
def server(data_dir: Path, partitions: int | None, fsync: str, store: str,
           store_cache: int | None, cache_size: int | None, segment_rows: int | None,
           snapshot_every: int | None,
           ingress_bind: str,
           admin_bind: str, enable_protocol_v7: bool, max_body: int,
           pgwire_bind: str, pgwire_user: str | None, pgwire_password: str | None,
           max_journal_entry: int, max_state_value: int, max_inbox: int,
           log_level: str, loop_impl: str, **defaults: Any) -> None:
    """Run the server on DATA_DIR until SIGTERM/SIGINT (clean shutdown: flush, fsync, close).

    Options can also come from a TOML file (--config FILE, every option a key named like its
    flag; the flags win): see the README's "Server defaults and the config file"."""
    from rstq.app import AppConfig, build
    from rstq.core.server import ServerConfig

    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if fsync == "none":
        logging.warning("--fsync none: acknowledged writes can be lost on a crash (UNSAFE)")
    cfg = ServerConfig(data_dir=data_dir, partitions=partitions, fsync=FsyncPolicy(fsync),
                       store=store, store_cache_bytes=store_cache, cache_size=cache_size,
                       segment_rows=segment_rows,
                       snapshot_every=snapshot_every, ingress_bind=ingress_bind,
                       admin_bind=admin_bind, enable_protocol_v7=enable_protocol_v7,
                       max_body_bytes=max_body, max_journal_entry_bytes=max_journal_entry,
                       max_state_value_bytes=max_state_value, max_inbox=max_inbox,
                       defaults=server_defaults(**defaults))
    around = AppConfig(
        pgwire_bind=None if pgwire_bind.lower() in ("off", "none", "") else pgwire_bind,
        pgwire_user=pgwire_user, pgwire_password=pgwire_password, tracing=requested_tracing())

    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        # The system allocator gives freed memory back: with jemalloc the peak of each
        # history move stayed as the process's floor (bench/history.py: 342 vs 301 MB RSS
        # at 14k invocations, same throughput and CPU within noise).
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())

    async def run() -> None:
        app = build(cfg, around)
        srv = app.server
        await app.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        click.echo(f"rstq server ready: data dir {data_dir} ({srv.partitions} partitions), "
                   f"ingress http://{_host(ingress_bind, srv.ingress_port)}, "
                   f"admin http://{_host(admin_bind, srv.admin_port)}"
                   + (f", pgwire {_host(pgwire_bind, app.pgwire_port)}" if app.pgwire_port
                      else ""), err=True)
        await stop.wait()
        click.echo("rstq server stopping", err=True)
        await app.stop()
        click.echo("rstq server stopped cleanly", err=True)

    profile_path = os.environ.get("RSTQ_PROFILE")  # benchmarks: cProfile the event loop thread
    try:
        if not profile_path:
            _run_loop(run(), loop_impl)
            return
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            _run_loop(run(), loop_impl)
        finally:
            prof.disable()
            prof.dump_stats(profile_path)
    except (BindError, DataDirError) as e:  # a taken port, a data dir in use: one line
        raise click.ClickException(str(e)) from None
    except LogCorruption as e:
        raise click.ClickException(
            f"{e}. The server does not start on a damaged log; `rstq doctor --data-dir "
            f"{data_dir}` tells what is damaged and what a repair would remove") from None


def _run_loop(main: Coroutine[Any, Any, None], loop_impl: str) -> None:
    # The server keeps many long-lived objects (invocations, journals, views): full (gen-2)
    # collections over them pause every request. Collect the young generation less often and
    # the old one rarely; reference counting frees almost everything anyway.
    gc.set_threshold(50_000, 50, 1000)
    if loop_impl == "uvloop":
        try:
            import uvloop
        except ImportError:  # not installed (e.g. an unsupported platform): plain asyncio
            logging.warning("uvloop is not installed; running on the asyncio event loop")
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


def _host(bind: str, port: int | None) -> str:
    host = bind.rsplit(":", 1)[0]
    return f"{host}:{port}" if port is not None else bind


from rstq.cli.sql import sql  # noqa: E402
from rstq.cli.trace import trace  # noqa: E402

main.add_command(sql)
main.add_command(trace)

from rstq.cli.deployments import deployments  # noqa: E402
from rstq.cli.doctor import doctor  # noqa: E402
from rstq.cli.invocations import invocations  # noqa: E402
from rstq.cli.services import services  # noqa: E402
from rstq.cli.state import state  # noqa: E402
from rstq.cli.top import top  # noqa: E402

main.add_command(deployments)
main.add_command(services)
main.add_command(invocations)
main.add_command(invocations, "inv")
main.add_command(state)
main.add_command(top)
main.add_command(doctor)

if __name__ == "__main__":
    main()
