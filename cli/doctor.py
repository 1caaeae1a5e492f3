"""`rstq doctor [--data-dir D] [--repair]`: check a data dir; repair a damaged log on request.

Reads only, unless `--repair` is given (then it takes the data dir's lock, so no server can
start meanwhile, and refuses while a server holds it). Exit codes: 0 healthy (or repaired),
1 damage found (and not repaired), 4 no data dir there, 5 `--repair` while a server runs.
"""

from __future__ import annotations

from pathlib import Path

import click
from rstq.cli.admin_client import EXIT_CONFLICT, EXIT_NOT_FOUND
from rstq.core import doctor as d
from rstq.core.datadir import DataDirError, DataDirLock, DataDirLocked


def _log_line(lg: d.LogReport) -> str:
    if lg.segments == 0:
        return f"{lg.name} log: ok, empty"
    span = (f"lsn {lg.first_lsn}..{lg.last_good_lsn}" if lg.records else
            f"next lsn {lg.last_good_lsn + 1}")
    if lg.damage is None:
        line = f"{lg.name} log: ok, {lg.records} records ({span}), {lg.segments} segment(s)"
        if lg.torn_tail_bytes:
            line += (f"; torn tail of {lg.torn_tail_bytes} bytes (an unfinished write, never "
                     "acknowledged: the next start cuts it, normal after a crash)")
        return line
    dm = lg.damage
    return (f"{lg.name} log: DAMAGED at offset {dm.offset} of {dm.path}: {dm.reason}\n"
            f"  last good record: lsn {lg.last_good_lsn} ({lg.records} good records before "
            "the damage)")


def _loss_lines(lg: d.LogReport, snapshot_lsn: int) -> list[str]:
    dm = lg.damage
    assert dm is not None
    after = (f"{dm.found_after} record(s) that look intact follow the damage (up to lsn "
             f"{dm.highest_after})" if dm.found_after else "no intact record follows it")
    what = (f"truncate {dm.path.name} to {dm.cut_offset} bytes" if dm.cut_offset
            else f"remove {dm.path.name}")
    if dm.later_segments:
        what += f" and remove {len(dm.later_segments)} later segment(s)"
    lines = [f"  repair: {what}: {dm.lost_bytes} bytes, everything after lsn "
             f"{lg.last_good_lsn}; {after}."]
    if snapshot_lsn > lg.last_good_lsn:
        lines.append(f"  the newest snapshot holds every record up to lsn {snapshot_lsn}: "
                     f"only records after lsn {snapshot_lsn} are lost, and the log restarts "
                     f"at lsn {snapshot_lsn + 1}.")
    else:
        lines.append(f"  lost: the effects of every record after lsn {lg.last_good_lsn} "
                     "(invocations, journal entries, state changes written after it).")
    return lines


def render(rep: d.Report) -> list[str]:
    lines = [f"data dir {rep.root}: {rep.partitions} partitions"]
    if rep.holder is None:
        lines.append("lock: free (no server is using this data dir)")
    else:
        who = f"pid {rep.holder}" if rep.holder else "another process"
        lines.append(f"lock: held by {who} (a server is running; its logs are read as they are "
                     "now, a write in flight may show as a torn tail)")
    for lg, snapshot_lsn in rep.logs:
        lines.append(_log_line(lg))
        if lg.damage is not None:
            lines += _loss_lines(lg, snapshot_lsn)
    for p in rep.parts:
        if not p.snapshots:
            continue
        bad = [s for s in p.snapshots if s.error is not None]
        good = len(p.snapshots) - len(bad)
        line = (f"partition {p.index} snapshots: {good} of {len(p.snapshots)} load"
                + (f" (newest at lsn {p.snapshot_lsn})" if good else ""))
        lines.append(line)
        for s in bad:
            lines.append(f"  snapshot {s.path.name} does not load ({s.error}); the server "
                         "skips it for an older one")
        if p.gap:
            lines.append(f"  CANNOT RECOVER: {p.gap} (no repair can bring them back)")
    return lines


@click.command("doctor")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("./rstq-data"),
              show_default=True, help="The data dir to check.")
@click.option("--repair", is_flag=True,
              help="Truncate each damaged log after its last good record (removed bytes are "
                   "kept under DATA_DIR/doctor/). Refused while a server uses the data dir.")
def doctor(data_dir: Path, repair: bool) -> None:
    """Check a data dir: lock holder, log checksums, snapshots; repair a damaged log."""
    try:
        rep = d.examine(data_dir)
    except DataDirError as e:
        click.echo(f"Error: {e}", err=True)
        raise SystemExit(EXIT_NOT_FOUND) from None
    for line in render(rep):
        click.echo(line)
    damaged = [lg for lg, _ in rep.logs if lg.damage is not None]
    if rep.healthy:
        click.echo("healthy: a server can start on this data dir")
        return
    if not damaged:  # a gap: nothing to repair
        raise SystemExit(1)
    if not repair:
        click.echo(f"{len(damaged)} damaged log(s): the server refuses to start. To repair "
                   f"(stop the server first): rstq doctor --data-dir {data_dir} --repair")
        raise SystemExit(1)
    try:
        lock = DataDirLock.acquire(data_dir)
    except DataDirLocked as e:
        click.echo(f"Error: {e}; not repairing while it runs", err=True)
        raise SystemExit(EXIT_CONFLICT) from None
    try:
        rep = d.examine(data_dir)  # again, under the lock: nothing changes it now
        for line in d.repair(rep):
            click.echo(f"repaired: {line}")
        after = d.examine(data_dir)
    finally:
        lock.release()
    if not after.healthy:
        for line in render(after):
            click.echo(line)
        click.echo("still damaged after the repair", err=True)
        raise SystemExit(1)
    click.echo("healthy: a server can start on this data dir")
