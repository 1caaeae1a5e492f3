"""sys_service: registered services, the latest revision of each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from rstq.query.api import TableDef
from rstq.query.tables.base import BOOL, STR, U64, Kind, Table, col, row_type, to_batch

if TYPE_CHECKING:
    from rstq.core.schema import Schema

SYS_SERVICE = TableDef(
    "sys_service",
    "Registered services (latest revision of each).",
    (
        col("name", STR, "Service name."),
        col("revision", U64, "Revision: bumped each time a deployment re-registers it."),
        col("public", BOOL, "Reachable through ingress."),
        col("ty", STR, "`service`, `virtual_object` or `workflow`."),
        col("deployment_id", STR, "Deployment serving the latest revision."),
    ),
)

ServiceRow = row_type("ServiceRow", SYS_SERVICE.columns)


def batch(schema: Schema | None) -> pa.RecordBatch:
    services = [] if schema is None else sorted(schema.services.values(), key=lambda s: s.name)
    rows = [ServiceRow(name=s.name, revision=s.revision, public=s.public, ty=s.ty,
                       deployment_id=s.deployment_id) for s in services]
    return to_batch(SYS_SERVICE.schema, rows)


TABLES = (Table(SYS_SERVICE, Kind.SMALL),)
