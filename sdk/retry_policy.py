"""Invocation retry policy, advertised in the discovery manifest (v4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal


@dataclass
class InvocationRetryPolicy:
    """How the runtime retries failed attempts of a handler (restate-server >= 1.5).

    ``max_attempts`` counts the first attempt; ``on_max_attempts`` is "pause" or "kill".
    """

    initial_interval: timedelta | None = None
    exponentiation_factor: float | None = None
    max_interval: timedelta | None = None
    max_attempts: int | None = None
    on_max_attempts: Literal["pause", "kill"] | None = None
