"""Restate-compatible identifiers: invocation ids, awakeable (signal) ids, deployment ids.

String forms are ``<prefix>_1<payload>`` (scheme version 1). Integers are base62-encoded
(alphabet ``0-9a-z A-Z``) at a fixed width after a byte swap: the base62 value is the
integer read from the big-endian bytes as *little-endian* (what restate's
``to_be()``-then-encode does on little-endian hosts).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
import time
from typing import Final, NamedTuple

from .wire import ProtocolError

__all__ = [
    "BASE62_ALPHABET",
    "INVOCATION_ID_RAW_LEN",
    "INVOCATION_ID_STR_LEN",
    "AwakeableId",
    "DeploymentId",
    "IdError",
    "InvocationId",
    "awakeable_id",
    "base62_decode",
    "base62_encode",
    "idempotent_request_uuid",
    "new_ulid",
    "parse_awakeable_id",
    "workflow_uuid",
]

BASE62_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_B62_INDEX: Final = {c: i for i, c in enumerate(BASE62_ALPHABET)}

INVOCATION_ID_RAW_LEN: Final = 24
INVOCATION_ID_STR_LEN: Final = 38  # "inv_1" + 11 + 22
_U64_WIDTH: Final = 11
_U128_WIDTH: Final = 22
_INV_PREFIX: Final = "inv_1"
_SIGN_PREFIX: Final = "sign_1"
_PROM_PREFIX: Final = "prom_1"
_DP_PREFIX: Final = "dp_1"
_MAX_U64: Final = (1 << 64) - 1
_MAX_U128: Final = (1 << 128) - 1


class IdError(ProtocolError, ValueError):
    """A malformed identifier."""


def base62_encode(n: int, width: int) -> str:
    """Base62 of ``n``, left-padded with ``0`` to ``width``."""
    if n < 0:
        raise ValueError("negative")
    chars: list[str] = []
    while n:
        n, r = divmod(n, 62)
        chars.append(BASE62_ALPHABET[r])
    s = "".join(reversed(chars))
    if len(s) > width:
        raise ValueError("value too large for width")
    return s.rjust(width, "0")


def base62_decode(s: str) -> int:
    n = 0
    idx = _B62_INDEX
    try:
        for c in s:
            n = n * 62 + idx[c]
    except KeyError:
        raise IdError(f"invalid base62 character in {s!r}") from None
    return n


def _swap(n: int, size: int) -> int:
    """Reinterpret the big-endian bytes of ``n`` as a little-endian integer."""
    return int.from_bytes(n.to_bytes(size, "big"), "little")


def new_ulid(now_ms: int | None = None) -> int:
    """A random ULID as u128: 48-bit millisecond timestamp + 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return ((ms & ((1 << 48) - 1)) << 80) | int.from_bytes(os.urandom(10), "big")


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class InvocationId:
    """Invocation id: u64 partition key + u128 invocation uuid.

    Raw form (``StartMessage.id``): 24 bytes, both big-endian.
    String form: ``inv_1`` + base62(pk, 11) + base62(uuid, 22) = 38 chars.
    """

    partition_key: int
    uuid: int

    def __post_init__(self) -> None:
        if not 0 <= self.partition_key <= _MAX_U64 or not 0 <= self.uuid <= _MAX_U128:
            raise IdError("invocation id component out of range")

    @classmethod
    def new(cls, partition_key: int) -> InvocationId:
        """A fresh invocation id with a random ULID uuid."""
        return cls(partition_key, new_ulid())

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview) -> InvocationId:
        if len(raw) != INVOCATION_ID_RAW_LEN:
            raise IdError(f"invocation id must be 24 bytes, got {len(raw)}")
        b = bytes(raw)
        return cls(int.from_bytes(b[:8], "big"), int.from_bytes(b[8:], "big"))

    def to_bytes(self) -> bytes:
        return self.partition_key.to_bytes(8, "big") + self.uuid.to_bytes(16, "big")

    @classmethod
    def parse(cls, s: str) -> InvocationId:
        if len(s) != INVOCATION_ID_STR_LEN or not s.startswith(_INV_PREFIX):
            raise IdError(f"not an invocation id: {s!r}")
        pk = base62_decode(s[5:16])
        uuid = base62_decode(s[16:])
        if pk > _MAX_U64 or uuid > _MAX_U128:
            raise IdError(f"invocation id out of range: {s!r}")
        return cls(_swap(pk, 8), _swap(uuid, 16))

    def __str__(self) -> str:
        return (
            _INV_PREFIX
            + base62_encode(_swap(self.partition_key, 8), _U64_WIDTH)
            + base62_encode(_swap(self.uuid, 16), _U128_WIDTH)
        )


class AwakeableId(NamedTuple):
    invocation_id: InvocationId
    #: signal index for ``sign_1`` ids; journal entry index for legacy ``prom_1`` ids
    idx: int
    legacy: bool


def _raw_id(invocation_id: InvocationId | bytes) -> bytes:
    if isinstance(invocation_id, InvocationId):
        return invocation_id.to_bytes()
    if len(invocation_id) != INVOCATION_ID_RAW_LEN:
        raise IdError("invocation id must be 24 bytes")
    return bytes(invocation_id)


def awakeable_id(invocation_id: InvocationId | bytes, signal_idx: int) -> str:
    """``sign_1`` + base64url-nopad(raw invocation id || u32 BE signal idx) (44 chars)."""
    if not 0 <= signal_idx <= 0xFFFF_FFFF:
        raise ValueError("signal index out of u32 range")
    raw = _raw_id(invocation_id) + signal_idx.to_bytes(4, "big")
    return _SIGN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_awakeable_id(s: str) -> AwakeableId:
    """Parse a ``sign_1...`` id (or a legacy ``prom_1...`` id)."""
    if s.startswith(_SIGN_PREFIX):
        legacy = False
    elif s.startswith(_PROM_PREFIX):
        legacy = True
    else:
        raise IdError(f"not an awakeable id: {s!r}")
    body = s[6:]
    if len(body) != 38 or not body.isascii():
        raise IdError(f"bad awakeable id length: {s!r}")
    try:
        raw = base64.urlsafe_b64decode(body + "==")
    except (binascii.Error, ValueError):
        raise IdError(f"bad awakeable id encoding: {s!r}") from None
    if len(raw) != INVOCATION_ID_RAW_LEN + 4 or base64.urlsafe_b64encode(raw).decode()[:38] != body:
        raise IdError(f"bad awakeable id payload: {s!r}")
    return AwakeableId(InvocationId.from_bytes(raw[:24]), int.from_bytes(raw[24:], "big"), legacy)


def _hash_uuid(prefix: bytes, parts: list[str], scope: str | None) -> int:
    h = hashlib.sha256(prefix)
    if scope is not None:
        h.update(b",")
        h.update(scope.encode())
    for p in parts:
        h.update(b",")
        h.update(p.encode())
    return int.from_bytes(h.digest()[:16], "big")


def workflow_uuid(workflow_name: str, workflow_key: str, scope: str | None = None) -> int:
    """Deterministic invocation uuid of a workflow ``run``:
    ``sha256("wf" , "," [scope ","] name "," key)[:16]``."""
    return _hash_uuid(b"wf", [workflow_name, workflow_key], scope)


def idempotent_request_uuid(
    service_name: str,
    service_key: str | None,
    handler_name: str,
    idempotency_key: str,
    scope: str | None = None,
) -> int:
    """Deterministic invocation uuid of an idempotent request:
    ``sha256("ik" "," [scope ","] service ["," key] "," handler "," idem_key)[:16]``."""
    parts = [service_name]
    if service_key is not None:
        parts.append(service_key)
    parts += [handler_name, idempotency_key]
    return _hash_uuid(b"ik", parts, scope)


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class DeploymentId:
    """Deployment id: a u128 (ULID), string form ``dp_1`` + base62(22), e.g.
    ``dp_13yVuQBD7jSrk5yfI8ELx85``."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= _MAX_U128:
            raise IdError("deployment id out of range")

    @classmethod
    def new(cls) -> DeploymentId:
        return cls(new_ulid())

    @classmethod
    def from_random_bytes(cls, raw: bytes) -> DeploymentId:
        if len(raw) != 16:
            raise IdError("deployment id needs 16 bytes")
        return cls(int.from_bytes(raw, "big"))

    @classmethod
    def parse(cls, s: str) -> DeploymentId:
        if len(s) != len(_DP_PREFIX) + _U128_WIDTH or not s.startswith(_DP_PREFIX):
            raise IdError(f"not a deployment id: {s!r}")
        v = base62_decode(s[len(_DP_PREFIX):])
        if v > _MAX_U128:
            raise IdError(f"deployment id out of range: {s!r}")
        return cls(_swap(v, 16))

    def __str__(self) -> str:
        return _DP_PREFIX + base62_encode(_swap(self.value, 16), _U128_WIDTH)
