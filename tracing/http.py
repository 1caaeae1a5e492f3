"""`GET /traces/{invocation_id}` on the admin API: the spans kept for an invocation's trace."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from rstq.protocol.ids import IdError

if TYPE_CHECKING:
    from rstq.core.ports import Partitions
    from rstq.tracing.runtime import Tracing


def add_routes(app: web.Application, partitions: Partitions,
               tracing_of: Callable[[], Tracing | None]) -> None:
    """`partitions`: where the invocation (its trace id) is looked up; `tracing_of()`: the
    server's tracing, None when it is off (the route answers anyway)."""

    async def get_trace(request: web.Request) -> web.Response:
        inv_id = request.match_info["invocation"]
        try:
            inv = partitions.partition_for_id(inv_id).state.invocations.get(inv_id)
        except IdError:
            return web.json_response({"message": f"bad invocation id {inv_id!r}"}, status=400)
        tracing = tracing_of()
        spans = tracing.store.trace_of(inv_id) if tracing is not None else []
        doc = {"invocation_id": inv_id, "tracing": tracing is not None,
               "trace_id": (inv.trace_id or None) if inv is not None else None,
               "spans": [s.to_json() for s in spans]}
        return web.Response(body=json.dumps(doc, separators=(",", ":")).encode(),
                            content_type="application/json")

    app.router.add_get("/traces/{invocation}", get_trace, allow_head=False)
