"""Replay-aware logging: `rstq.sdk.getLogger(name)` as in restate-sdk.

A handler re-runs from the top on every attempt; its log lines for the replayed part were
written by an earlier attempt already. The logger drops records while the current invocation
replays its journal, so each line appears once.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Protocol


class _Replaying(Protocol):
    @property
    def replaying(self) -> bool: ...


current_vm: contextvars.ContextVar[_Replaying | None] = contextvars.ContextVar(
    "rstq_sdk_current_vm", default=None)


class _DropWhileReplaying(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        vm = current_vm.get()
        return vm is None or not vm.replaying


_FILTER = _DropWhileReplaying()


def getLogger(name: str | None = None) -> logging.Logger:  # noqa: N802 - restate-sdk's name
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
