"""sys_partition (rstq's own): one row per partition, with its log positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from rstq.core.partitioning import MAX_PARTITION_KEY
from rstq.query.api import TableDef
from rstq.query.tables.base import STR, U32, U64, Kind, Table, col, row_type, to_batch

if TYPE_CHECKING:
    from rstq.query.source import PartitionSource

SYS_PARTITION = TableDef(
    "sys_partition",
    "rstq: one row per partition, with its log positions.",
    (
        col("partition_id", U32, "Partition number."),
        col("start_partition_key", U64, "First partition key it owns."),
        col("end_partition_key", U64, "Last partition key it owns."),
        col("applied_lsn", U64, "Last log position applied to the state."),
        col("durable_lsn", U64, "Last log position durable (fsynced)."),
        col("first_lsn", U64, "First log position still in the log (below: trimmed)."),
        col("snapshot_lsn", U64, "Log position of the latest snapshot."),
        col("leader_epoch", U64, "Leader epoch (single node: always 1)."),
        col("leader", STR, "Node leading the partition."),
        col("invocations", U64, "Invocations held (live and retained)."),
        col("state_version", U64, "Applied batches since start (the views' change counter)."),
    ),
)

PartitionRow = row_type("PartitionRow", SYS_PARTITION.columns)


def batch(parts: Sequence[PartitionSource], versions: Sequence[int | None]) -> pa.RecordBatch:
    """`versions`: each partition's view version (state_version), when it has views."""
    n = len(parts)
    rows = []
    for i, src in enumerate(parts):
        rows.append(PartitionRow(
            partition_id=i,
            start_partition_key=-(-(i << 64) // n),  # ceil: partition_of(pk) = (pk * n) >> 64
            end_partition_key=min(-(-((i + 1) << 64) // n) - 1, MAX_PARTITION_KEY),
            applied_lsn=src.state.applied_lsn, durable_lsn=src.durable_lsn,
            first_lsn=src.first_lsn, snapshot_lsn=src.snapshot_lsn, leader_epoch=1,
            leader="local", invocations=len(src.state.invocations),
            state_version=versions[i] if i < len(versions) else None))
    return to_batch(SYS_PARTITION.schema, rows)


TABLES = (Table(SYS_PARTITION, Kind.SMALL),)
