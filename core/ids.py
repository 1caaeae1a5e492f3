"""Invocation ids as the runtime uses them: strings, routed by their partition key.

Formats live in the shared codec (`rstq.protocol.ids`); this adds the runtime's choices:
keyed targets get the hash of (service, key) as partition key, deterministic ids for workflow
runs and idempotent requests are placed on their key's partition.
"""

from __future__ import annotations

import os

from rstq.core.partitioning import partition_key_for
from rstq.protocol.ids import (
    IdError,
    InvocationId,
    idempotent_request_uuid,
    new_ulid,
    parse_awakeable_id,
    workflow_uuid,
)

__all__ = [
    "IdError",
    "idempotent_invocation_id",
    "new_invocation_id",
    "parse_awakeable",
    "partition_key_of",
    "target_partition_key",
    "workflow_invocation_id",
]

_cache: dict[str, int] = {}
CACHE_MAX = 8192  # it keeps the id strings alive: small, or it grows with history


def partition_key_of(invocation_id: str) -> int:
    """The partition key inside an `inv_1…` id (cached: ids are routed many times)."""
    pk = _cache.get(invocation_id)
    if pk is None:
        pk = int(InvocationId.parse(invocation_id).partition_key)
        if len(_cache) > CACHE_MAX:
            _cache.clear()
        _cache[invocation_id] = pk
    return pk


def is_invocation_id(s: str) -> bool:
    try:
        partition_key_of(s)
    except IdError:
        return False
    return True


def target_partition_key(service: str, key: str | None) -> int:
    """Keyed targets hash to their key's partition; others get a random one."""
    if key is not None:
        return partition_key_for(service, key)
    return int.from_bytes(os.urandom(8), "big")


def new_invocation_id(service: str, key: str | None, now_ms: int | None = None) -> str:
    return str(InvocationId(target_partition_key(service, key), new_ulid(now_ms)))


def workflow_invocation_id(workflow: str, key: str) -> str:
    return str(InvocationId(partition_key_for(workflow, key), workflow_uuid(workflow, key)))


def idempotent_invocation_id(service: str, key: str | None, handler: str,
                             idempotency_key: str) -> str:
    pk = partition_key_for(service, key if key is not None else idempotency_key)
    uuid = idempotent_request_uuid(service, key, handler, idempotency_key)
    return str(InvocationId(pk, uuid))


def parse_awakeable(awakeable_id: str) -> tuple[str, int]:
    """(invocation id, signal index) of a `sign_1…` (or legacy `prom_1…`) awakeable id."""
    parsed = parse_awakeable_id(awakeable_id)
    return str(parsed.invocation_id), parsed.idx
