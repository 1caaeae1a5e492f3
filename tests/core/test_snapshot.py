"""Snapshot files: a full state round-trips through Arrow IPC, u64 keys included."""

from __future__ import annotations

from pathlib import Path

from rstq.core import commands as c
from rstq.core.apply import apply
from rstq.core.model import PartitionState, Status
from rstq.core.snapshot import load_latest, state_to_tables, write_snapshot

from .builders import T0, inv_id_on, invoke, sleep


def test_snapshot_file_roundtrip_with_high_partition_keys(tmp_path: Path) -> None:
    state = PartitionState(1, 2)  # partition 1 of 2: partition keys >= 2**63
    i = inv_id_on(1, 2, "Obj", None, 3)
    cmds = [invoke(i, service="Obj"), sleep(i, 1, 1, T0 + 99)]
    for lsn, cmd in enumerate(cmds, start=1):
        apply(state, c.Envelope(T0 + lsn, cmd), lsn)
    apply(state, c.Envelope(T0 + 5, c.StateMutation("Obj", "k", sets=[(b"a", b"1")])), 3)
    assert state.invocations[i].partition_key >= 2**63
    write_snapshot(tmp_path, state)
    loaded = load_latest(tmp_path)
    assert loaded is not None and loaded.applied_lsn == 3
    for name, table in state_to_tables(state).items():
        assert state_to_tables(loaded)[name].equals(table), name
    # Stored as text, loaded back as the enum (not a plain str equal to it).
    assert type(loaded.invocations[i].status) is Status


def test_no_snapshot_means_none(tmp_path: Path) -> None:
    assert load_latest(tmp_path) is None


def test_journal_events_roundtrip(tmp_path: Path) -> None:
    state = PartitionState(0, 1)
    i = inv_id_on(0, 1, "Svc", None, 1)
    cmds: list[c.Command] = [
        invoke(i),
        c.AttemptFailed(i, 1, 500, "boom", "Traceback\nValueError: boom", 0, "x", 1024,
                        then=c.AttemptOutcome.PAUSE, doc_code="RT0007"),
    ]
    for lsn, cmd in enumerate(cmds, start=1):
        apply(state, c.Envelope(T0 + lsn, cmd), lsn)
    assert len(state.invocations[i].events) == 2
    write_snapshot(tmp_path, state)
    loaded = load_latest(tmp_path)
    assert loaded is not None
    assert loaded.invocations[i].events == state.invocations[i].events
