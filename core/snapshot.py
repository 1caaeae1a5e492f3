"""Partition snapshots: the state tables written as Arrow IPC files, tagged with their LSN.

Layout: `<partition dir>/snapshots/<lsn:020d>/` holds one `.arrow` file per table and a
`MANIFEST.json` written last. A snapshot is written into a temporary directory, fsynced, and
renamed into place, so a crash while writing leaves the previous snapshot as the newest valid
one. Loading picks the newest directory whose manifest and files check out.

Scalar fields become typed Arrow columns; nested fields (lists, sets, pairs) are stored as
msgpack in a binary column: they are small and read only on restart.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import shutil
import types
import typing
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgpack
import pyarrow as pa
from crc32c import crc32c
from pyarrow import ipc
from rstq.core.log.segment import fsync_dir
from rstq.core.model import (
    Invocation,
    JournalEntry,
    OutboxMessage,
    PartitionState,
    Promise,
    Timer,
)

log = logging.getLogger(__name__)
SNAPSHOT_FORMAT = 1
_SCALARS: dict[Any, pa.DataType] = {
    str: pa.large_string(),
    int: pa.int64(),
    bytes: pa.large_binary(),
    bool: pa.bool_(),
}


class SnapshotError(Exception):
    pass


_UINT64_FIELDS = {"partition_key"}  # u64 values do not fit int64


def _base(hint: Any) -> Any:
    """`X | None` -> X; any other hint as it is."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
    return next((x for x in args if x is not type(None)), hint) if args else hint


def _str_enum(hint: Any) -> type[enum.StrEnum] | None:
    """The StrEnum a field holds (stored as its text, loaded back as the enum), if any."""
    base = _base(hint)
    return base if isinstance(base, type) and issubclass(base, enum.StrEnum) else None


def _column_types(cls: type[Any]) -> list[tuple[str, pa.DataType | None]]:
    """(field, Arrow type) per dataclass field; None marks a msgpack-encoded nested field."""
    hints = typing.get_type_hints(cls)
    cols: list[tuple[str, pa.DataType | None]] = []
    for f in dataclasses.fields(cls):
        base = str if _str_enum(hints[f.name]) else _base(hints[f.name])
        typ = pa.uint64() if f.name in _UINT64_FIELDS else _SCALARS.get(base)
        cols.append((f.name, typ))
    return cols


def _pack(v: Any) -> bytes:
    if isinstance(v, (set, frozenset)):
        v = sorted(v)
    elif isinstance(v, deque):
        v = list(v)
    return msgpack.packb(v, use_bin_type=True)


def rows_to_table(cls: type[Any], rows: Iterable[Any], extra: dict[str, list[Any]] | None = None,
                  skip: Iterable[str] = ()) -> pa.Table:
    rows = list(rows)
    skip = set(skip)
    arrays: list[pa.Array[Any]] = []
    names: list[str] = []
    for name, typ in _column_types(cls):
        if name in skip:
            continue
        values = [getattr(r, name) for r in rows]
        if typ is None:
            arrays.append(pa.array([_pack(v) for v in values], pa.large_binary()))
        else:
            arrays.append(pa.array(values, typ))
        names.append(name)
    for name, values in (extra or {}).items():
        arrays.append(pa.array([_pack(v) for v in values], pa.large_binary()))
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def table_to_rows(cls: type[Any], table: pa.Table, skip: Iterable[str] = ()) -> list[Any]:
    skip = set(skip)
    hints = typing.get_type_hints(cls)
    cols: dict[str, list[Any]] = {}
    for name, typ in _column_types(cls):
        if name in skip or name not in table.column_names:  # a newer field: its default
            continue
        values = table.column(name).to_pylist()
        if typ is None:
            values = [_unpack_as(hints[name], v) for v in values]
        elif (as_enum := _str_enum(hints[name])) is not None:
            values = [None if v is None else as_enum(v) for v in values]
        cols[name] = values
    return [cls(**{k: v[i] for k, v in cols.items()}) for i in range(table.num_rows)]


def _unpack_as(hint: Any, raw: Any) -> Any:
    v = msgpack.unpackb(raw, raw=False, use_list=True)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if v is None:
        return None
    if origin is set:
        return set(v)
    if origin is list and args and typing.get_origin(args[0]) is tuple:
        return [tuple(x) for x in v]
    if origin is tuple:
        return tuple(v)
    if isinstance(hint, types.UnionType):  # e.g. tuple[int, str] | None
        inner = next(x for x in typing.get_args(hint) if x is not type(None))
        return _unpack_as(inner, raw)
    return v


# --- whole partition ---------------------------------------------------------------------------


def state_to_tables(state: PartitionState) -> dict[str, pa.Table]:
    invs = list(state.invocations.values())
    journal_rows = [
        (inv.invocation_id, i, e) for inv in invs for i, e in enumerate(inv.journal)
    ]
    journal = rows_to_table(JournalEntry, [e for _, _, e in journal_rows]).append_column(
        "invocation_id", pa.array([r[0] for r in journal_rows], pa.large_string())
    ).append_column("index", pa.array([r[1] for r in journal_rows], pa.int64()))
    kv_rows = [(s, k, sk, v) for (s, k), kv in state.kv.items() for sk, v in kv.items()]
    promises = list(state.promises.items())
    meta = {
        "format": SNAPSHOT_FORMAT,
        "partition_id": state.partition_id,
        "partitions": state.partitions,
        "applied_lsn": state.applied_lsn,
        "inbox_seq": state.inbox_seq,
        "outbox_next_seq": state.outbox_next_seq,
    }
    return {
        "invocations": _without_journal(invs),
        "journal": journal,
        "kv": pa.table({
            "service": pa.array([r[0] for r in kv_rows], pa.large_string()),
            "service_key": pa.array([r[1] for r in kv_rows], pa.large_string()),
            "key": pa.array([r[2] for r in kv_rows], pa.large_binary()),
            "value": pa.array([r[3] for r in kv_rows], pa.large_binary()),
        }),
        "locks": _pairs_table("lock", [(list(k), v) for k, v in state.locks.items()]),
        "inboxes": _pairs_table("inbox", [(list(k), list(q)) for k, q in state.inboxes.items()]),
        "inbox_seqs": _pairs_table("inbox_seq", list(state.inbox_seqs.items())),
        "timers": rows_to_table(Timer, state.timers.values()),
        "outbox": rows_to_table(OutboxMessage, state.outbox.values()),
        "inbound_seq": _pairs_table("inbound", list(state.inbound_seq.items())),
        "promises": rows_to_table(Promise, [p for _, p in promises],
                                  extra={"pkey": [list(k) for k, _ in promises]}),
        "idempotency": _pairs_table("idem", [(list(k), v) for k, v in state.idempotency.items()]),
        "meta": pa.table({"json": pa.array([json.dumps(meta)], pa.large_string())}),
    }


def _without_journal(invs: list[Invocation]) -> pa.Table:
    return rows_to_table(Invocation, invs, skip=("journal",))


def _pairs_table(name: str, pairs: list[tuple[Any, Any]]) -> pa.Table:
    return pa.table({name: pa.array([_pack(list(p)) for p in pairs], pa.large_binary())})


def _pairs(table: pa.Table, name: str) -> list[tuple[Any, Any]]:
    out = []
    for raw in table.column(name).to_pylist():
        k, v = msgpack.unpackb(raw or b"", raw=False, use_list=True)
        out.append((k, v))
    return out


def tables_to_state(tables: dict[str, pa.Table]) -> PartitionState:
    meta = json.loads(tables["meta"].column("json")[0].as_py())
    if meta["format"] != SNAPSHOT_FORMAT:
        raise SnapshotError(f"unknown snapshot format {meta['format']}")
    state = PartitionState(meta["partition_id"], meta["partitions"])
    state.applied_lsn = meta["applied_lsn"]
    state.inbox_seq = meta["inbox_seq"]
    state.outbox_next_seq = meta["outbox_next_seq"]
    for inv in table_to_rows(Invocation, tables["invocations"], skip=("journal",)):
        state.invocations[inv.invocation_id] = inv
    jt = tables["journal"]
    entries = table_to_rows(JournalEntry, jt)
    for inv_id, entry in zip(jt.column("invocation_id").to_pylist(), entries, strict=False):
        state.invocations[str(inv_id)].journal.append(entry)  # rows are in index order
    kv = tables["kv"]
    for s, k, sk, v in zip(*(kv.column(n).to_pylist() for n in ("service", "service_key",
                                                                    "key", "value")), strict=False):
        state.kv.setdefault((s, k), {})[sk] = v
    state.locks = {(k[0], k[1]): v for k, v in _pairs(tables["locks"], "lock")}
    state.inboxes = {(k[0], k[1]): deque(v) for k, v in _pairs(tables["inboxes"], "inbox")}
    state.inbox_seqs = dict(_pairs(tables["inbox_seqs"], "inbox_seq"))
    state.timers = {t.timer_id: t for t in table_to_rows(Timer, tables["timers"])}
    state.outbox = {m.seq: m for m in table_to_rows(OutboxMessage, tables["outbox"])}
    state.inbound_seq = dict(_pairs(tables["inbound_seq"], "inbound"))
    pt = tables["promises"]
    keys = [msgpack.unpackb(r or b"", raw=False) for r in pt.column("pkey").to_pylist()]
    for key, promise in zip(keys, table_to_rows(Promise, pt.drop_columns(["pkey"])), strict=False):
        promise.waiters = [(w[0], w[1]) for w in promise.waiters]
        state.promises[(key[0], key[1], key[2])] = promise
    state.idempotency = {
        (k[0], k[1], k[2], k[3]): v for k, v in _pairs(tables["idempotency"], "idem")
    }
    return state


# --- files -------------------------------------------------------------------------------------


def write_snapshot(directory: Path, state: PartitionState, keep: int = 2) -> Path:
    """Write `state` as snapshot `<applied_lsn>`; keep the newest `keep` snapshots."""
    root = directory / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{state.applied_lsn:020d}"
    tmp = root / f".tmp-{state.applied_lsn:020d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _write_files(tmp, state)
    except BaseException:  # e.g. a full disk: free what was written
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)
    for old in sorted(p for p in root.iterdir() if not p.name.startswith("."))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_files(tmp: Path, state: PartitionState) -> None:
    files, sums = {}, {}
    for name, table in state_to_tables(state).items():
        path = tmp / f"{name}.arrow"
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
            sums[name] = crc32c(f.read())
        files[name] = path.stat().st_size
    manifest = {"format": SNAPSHOT_FORMAT, "lsn": state.applied_lsn, "files": files,
                "crc32c": sums}
    with open(tmp / "MANIFEST.json", "w") as f:
        json.dump(manifest, f)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)


def load_latest(directory: Path) -> PartitionState | None:
    """The newest snapshot that checks out, or None. Invalid ones are skipped, newest first."""
    root = directory / "snapshots"
    if not root.is_dir():
        return None
    for snap in sorted((p for p in root.iterdir() if not p.name.startswith(".")), reverse=True):
        try:
            return load_snapshot(snap)
        except (OSError, ValueError, KeyError, TypeError, SnapshotError, pa.ArrowException) as e:
            log.warning("snapshot %s skipped (%s); falling back to an older one", snap, e)
            continue
    return None


def load_snapshot(snap: Path) -> PartitionState:
    manifest = json.loads((snap / "MANIFEST.json").read_text())
    tables = {}
    for name, size in manifest["files"].items():
        path = snap / f"{name}.arrow"
        if path.stat().st_size != size:
            raise SnapshotError(f"{path}: size {path.stat().st_size}, manifest says {size}")
        crc = manifest.get("crc32c", {}).get(name)  # Arrow IPC has no checksum of its own
        if crc is not None and crc32c(path.read_bytes()) != crc:
            raise SnapshotError(f"{path}: checksum mismatch")
        with pa.memory_map(str(path)) as source:
            tables[name] = ipc.open_file(source).read_all()
    state = tables_to_state(tables)
    if state.applied_lsn != manifest["lsn"]:
        raise SnapshotError(f"{snap}: manifest lsn {manifest['lsn']} != {state.applied_lsn}")
    return state


def latest_snapshot_lsn(directory: Path) -> int:
    root = directory / "snapshots"
    if not root.is_dir():
        return 0
    names = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    return int(names[-1]) if names else 0


def oldest_snapshot_lsn(directory: Path) -> int:
    """LSN of the oldest snapshot kept (0 if none): the log is kept from there on."""
    root = directory / "snapshots"
    if not root.is_dir():
        return 0
    names = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    return int(names[0]) if names else 0
