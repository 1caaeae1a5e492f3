"""Mapping of keys and invocations to partitions.

A partition key is a u64. Keyed targets (virtual objects, workflows) hash (service, key) so that
every invocation on one key lands on one partition, the key's single writer. Unkeyed invocations
get a random partition key, carried inside their invocation id (rstq.protocol.ids), so any
component can route by id alone. Partition i owns the key range [i * 2^64 / n, (i+1) * 2^64 / n).
"""

from __future__ import annotations

import hashlib

MAX_PARTITION_KEY = (1 << 64) - 1


def partition_key_for(service: str, key: str) -> int:
    """Stable hash of (service, key): the same on every run, machine and Python version."""
    digest = hashlib.blake2b(
        service.encode() + b"\x00" + key.encode(), digest_size=8, person=b"rstq-pk"
    ).digest()
    return int.from_bytes(digest, "big")


def partition_of(partition_key: int, partitions: int) -> int:
    """Which of `partitions` partitions owns this partition key."""
    return (partition_key * partitions) >> 64
