"""sys_deployment: registered deployments (service endpoints).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from rstq.query.api import TableDef
from rstq.query.tables.base import STR, STR_LIST, TS, U32, Kind, Table, col, row_type, to_batch

if TYPE_CHECKING:
    from rstq.core.schema import Schema

SYS_DEPLOYMENT = TableDef(
    "sys_deployment",
    "Registered deployments (service endpoints).",
    (
        col("id", STR, "Deployment id (`dp_…`)."),
        col("ty", STR, "Endpoint kind: `http`."),
        col("endpoint", STR, "Endpoint URI."),
        col("created_at", TS, "When it was registered."),
        col("min_service_protocol_version", U32, "Lowest protocol version it speaks."),
        col("max_service_protocol_version", U32, "Highest protocol version it speaks."),
        col("services", STR_LIST, "Services it serves."),
    ),
)

DeploymentRow = row_type("DeploymentRow", SYS_DEPLOYMENT.columns)


def batch(schema: Schema | None) -> pa.RecordBatch:
    deps = [] if schema is None else sorted(schema.deployments.values(),
                                            key=lambda d: d.created_at)
    rows = [DeploymentRow(id=d.deployment_id, ty="http", endpoint=d.uri,
                          created_at=d.created_at,
                          min_service_protocol_version=d.manifest.min_protocol_version,
                          max_service_protocol_version=d.manifest.max_protocol_version,
                          services=d.services) for d in deps]
    return to_batch(SYS_DEPLOYMENT.schema, rows)


TABLES = (Table(SYS_DEPLOYMENT, Kind.SMALL),)
