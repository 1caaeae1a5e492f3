"""Exceptions of the handler API (names as in restate-sdk, so imports move unchanged)."""

from __future__ import annotations

from datetime import timedelta


class TerminalError(Exception):
    """Fails the invocation (or a ``ctx.run`` step) for good: recorded, never retried."""

    def __init__(self, message: str, status_code: int = 500,
                 metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.metadata = metadata


class RetryableError(Exception):
    """Fails the attempt; the runtime retries, after ``retry_after`` if given."""

    def __init__(self, message: str, status_code: int = 500,
                 retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after


class SdkInternalBaseException(BaseException):
    """Unwinds user code when the attempt ends early. A BaseException so that
    ``except Exception`` in handlers does not swallow it."""


class SuspendedException(SdkInternalBaseException):
    """The invocation waits for something the runtime will send on a later attempt."""

    def __init__(self) -> None:
        super().__init__("invocation suspended; Restate resumes it when progress can be made")


class AttemptFailed(SdkInternalBaseException):
    """The attempt already ended with an ErrorMessage (mismatch, run retry, ...)."""

    def __init__(self, message: str = "attempt failed") -> None:
        super().__init__(message)


def is_internal_exception(e: BaseException) -> bool:
    return isinstance(e, SdkInternalBaseException)
