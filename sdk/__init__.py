"""rstq.sdk: write Restate handlers in pure Python.

Mirrors the public API of the official ``restate-sdk`` (change the import, keep the code);
see :mod:`.context` for the handler API and :func:`app` for serving.
"""

from .asgi import RestateApp, app
from .client import AsyncClient, Client, NotReady, SendResult
from .combinators import as_completed, gather, select, wait_completed
from .context import (
    Context,
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    Request,
    RunOptions,
    WorkflowContext,
    WorkflowSharedContext,
)
from .exceptions import (
    RetryableError,
    SdkInternalBaseException,
    TerminalError,
    is_internal_exception,
)
from .futures import (
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableSleepFuture,
    SendHandle,
)
from .log import getLogger
from .retry_policy import InvocationRetryPolicy
from .serde import BytesSerde, DefaultSerde, JsonSerde, Serde
from .service import Service, VirtualObject, Workflow

__all__ = [
    "AsyncClient",
    "Client",
    "NotReady",
    "SendResult",
    "BytesSerde",
    "Context",
    "DefaultSerde",
    "DurablePromise",
    "InvocationRetryPolicy",
    "JsonSerde",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "RestateApp",
    "RestateDurableCallFuture",
    "RestateDurableFuture",
    "RestateDurableSleepFuture",
    "RetryableError",
    "RunOptions",
    "SdkInternalBaseException",
    "SendHandle",
    "Serde",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "app",
    "as_completed",
    "gather",
    "getLogger",
    "is_internal_exception",
    "select",
    "wait_completed",
]
