"""Protocol versions, content types, negotiation helpers and protocol constants."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "AWAITING_TWO_ASYNC_RESULTS",
    "CANCEL_SIGNAL_IDX",
    "DEFAULT_VERSION",
    "FIRST_COMPLETION_ID",
    "FIRST_USER_SIGNAL_IDX",
    "JOURNAL_MISMATCH",
    "MAX_VERSION",
    "MIN_VERSION",
    "PROTOCOL_VIOLATION",
    "SERVER_HEADER",
    "SUPPORTED_MANIFEST_VERSIONS",
    "SUPPORTED_VERSIONS",
    "UNSUPPORTED_FEATURE",
    "ErrorCode",
    "ProtocolVersion",
    "invocation_content_type",
    "manifest_accept_header",
    "manifest_content_type",
    "negotiate_version",
    "parse_invocation_content_type",
    "parse_manifest_content_type",
    "pick_manifest_version",
    "pick_version",
]


class ProtocolVersion(enum.IntEnum):
    V5 = 5
    V6 = 6
    V7 = 7


SUPPORTED_VERSIONS: Final = (5, 6, 7)
MIN_VERSION: Final = 5
MAX_VERSION: Final = 7
#: What a default restate-server 1.7 negotiates.
DEFAULT_VERSION: Final = 6
SUPPORTED_MANIFEST_VERSIONS: Final = (1, 2, 3, 4)

_INVOCATION_PREFIX: Final = "application/vnd.restate.invocation.v"
_INVOCATION_RE: Final = re.compile(
    r"^\s*application/vnd\.restate\.invocation\.v(\d{1,4})\s*(?:;.*)?$", re.IGNORECASE)
_MANIFEST_RE: Final = re.compile(
    r"^\s*application/vnd\.restate\.endpointmanifest\.v(\d{1,4})\+json\s*(?:;.*)?$", re.IGNORECASE
)

#: Header name an SDK may use to identify itself in responses.
SERVER_HEADER: Final = "x-restate-server"


def invocation_content_type(version: int) -> str:
    """``application/vnd.restate.invocation.v{N}``."""
    return f"{_INVOCATION_PREFIX}{int(version)}"


def parse_invocation_content_type(content_type: str | None) -> int | None:
    """The N of an ``application/vnd.restate.invocation.vN`` content type, else None."""
    if not content_type:
        return None
    m = _INVOCATION_RE.match(content_type)
    return int(m.group(1)) if m else None


def negotiate_version(
    content_type: str | None, supported: Iterable[int] = SUPPORTED_VERSIONS
) -> int | None:
    """SDK side: the protocol version requested by an invocation ``content-type`` if we
    support it, else None (answer 415)."""
    v = parse_invocation_content_type(content_type)
    return v if v is not None and v in tuple(supported) else None


def pick_version(
    deployment_min: int, deployment_max: int, *, enable_v7: bool = False,
    supported: Iterable[int] = SUPPORTED_VERSIONS,
) -> int | None:
    """Runtime side: the version to use with a deployment advertising ``[min, max]``.

    Like restate-server 1.7: the highest common version, capped at 6 unless v7 is
    enabled. None if there is no overlap.
    """
    cap = 7 if enable_v7 else 6
    common = [v for v in supported if deployment_min <= v <= deployment_max and v <= cap]
    return max(common) if common else None


def manifest_content_type(version: int) -> str:
    """``application/vnd.restate.endpointmanifest.v{N}+json``."""
    return f"application/vnd.restate.endpointmanifest.v{int(version)}+json"


def parse_manifest_content_type(content_type: str | None) -> int | None:
    if not content_type:
        return None
    m = _MANIFEST_RE.match(content_type)
    return int(m.group(1)) if m else None


def manifest_accept_header(versions: Iterable[int] = SUPPORTED_MANIFEST_VERSIONS) -> str:
    """Runtime side: the ``accept`` header sent on discovery (all versions we read)."""
    return ", ".join(manifest_content_type(v) for v in versions)


def pick_manifest_version(
    accept: str | None, supported: Iterable[int] = (2, 3, 4)
) -> int | None:
    """SDK side: choose the discovery manifest version as restate-sdk 1.2.0 does.

    No ``Accept`` header -> the lowest supported version (v2 by default). Otherwise the
    highest supported version whose content type occurs in the header (substring
    match); None if none does (answer 415; note ``*/*`` gets None).
    """
    sup = sorted(set(supported))
    if not sup:
        return None
    if accept is None:
        return sup[0]
    lowered = accept.lower()
    for v in reversed(sup):
        if manifest_content_type(v) in lowered:
            return v
    return None


class ErrorCode(enum.IntEnum):
    JOURNAL_MISMATCH = 570
    PROTOCOL_VIOLATION = 571
    AWAITING_TWO_ASYNC_RESULTS = 572
    UNSUPPORTED_FEATURE = 573


JOURNAL_MISMATCH: Final = ErrorCode.JOURNAL_MISMATCH
PROTOCOL_VIOLATION: Final = ErrorCode.PROTOCOL_VIOLATION
AWAITING_TWO_ASYNC_RESULTS: Final = ErrorCode.AWAITING_TWO_ASYNC_RESULTS
UNSUPPORTED_FEATURE: Final = ErrorCode.UNSUPPORTED_FEATURE

#: Built-in signal index for cancellation.
CANCEL_SIGNAL_IDX: Final = 1
#: Signal indexes 1-16 are reserved; awakeables/user signals start here.
FIRST_USER_SIGNAL_IDX: Final = 17
#: Completion ids are allocated from 1.
FIRST_COMPLETION_ID: Final = 1
