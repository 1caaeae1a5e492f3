"""Service definitions: Service, VirtualObject, Workflow and their handler decorators.

Same constructor and decorator signatures as restate-sdk. The decorators return the
function itself (still an ``async def``, steppable in a debugger), tagged with its
:class:`~.handler.Handler` so calls can target it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from .handler import (
    Handler,
    HandlerKind,
    HandlerOptions,
    ServiceKind,
    ServiceTag,
    make_handler,
)
from .retry_policy import InvocationRetryPolicy
from .serde import DEFAULT_SERDE, Serde

T = TypeVar("T")


class _Definition:
    """Common part of the three service kinds."""

    _KIND: ServiceKind = "service"

    def __init__(self, name: str, description: str | None = None,
                 metadata: dict[str, str] | None = None,
                 inactivity_timeout: timedelta | None = None,
                 abort_timeout: timedelta | None = None,
                 journal_retention: timedelta | None = None,
                 idempotency_retention: timedelta | None = None,
                 enable_lazy_state: bool | None = None,
                 ingress_private: bool | None = None,
                 invocation_retry_policy: InvocationRetryPolicy | None = None,
                 invocation_context_managers: list[Any] | None = None) -> None:
        self.service_tag = ServiceTag(self._KIND, name, description, metadata)
        self.handlers: dict[str, Handler] = {}
        self.inactivity_timeout = inactivity_timeout
        self.abort_timeout = abort_timeout
        self.journal_retention = journal_retention
        self.idempotency_retention = idempotency_retention
        self.enable_lazy_state = enable_lazy_state
        self.ingress_private = ingress_private
        self.invocation_retry_policy = invocation_retry_policy
        self.context_managers = invocation_context_managers

    @property
    def name(self) -> str:
        return self.service_tag.name

    def _add(self, name: str | None, kind: HandlerKind | None, accept: str, content_type: str,
             input_serde: Serde[Any], output_serde: Serde[Any],
             options: HandlerOptions) -> Callable[[T], T]:
        def deco(fn: T) -> T:
            h = make_handler(self.service_tag, fn, name, kind, accept,  # type: ignore[arg-type]
                             content_type, input_serde, output_serde, options)
            if h.name in self.handlers:
                raise ValueError(f"Handler {h.name} already exists in {self.name}")
            self.handlers[h.name] = h
            return fn
        return deco


class Service(_Definition):
    """A stateless service."""

    _KIND = "service"

    def __init__(self, name: str, description: str | None = None,
                 metadata: dict[str, str] | None = None,
                 inactivity_timeout: timedelta | None = None,
                 abort_timeout: timedelta | None = None,
                 journal_retention: timedelta | None = None,
                 idempotency_retention: timedelta | None = None,
                 ingress_private: bool | None = None,
                 invocation_retry_policy: InvocationRetryPolicy | None = None,
                 invocation_context_managers: list[Any] | None = None) -> None:
        super().__init__(name, description, metadata, inactivity_timeout, abort_timeout,
                         journal_retention, idempotency_retention, None, ingress_private,
                         invocation_retry_policy, invocation_context_managers)

    def handler(self, name: str | None = None, accept: str = "application/json",
                content_type: str = "application/json",
                input_serde: Serde[Any] = DEFAULT_SERDE,
                output_serde: Serde[Any] = DEFAULT_SERDE,
                metadata: dict[str, str] | None = None,
                inactivity_timeout: timedelta | None = None,
                abort_timeout: timedelta | None = None,
                journal_retention: timedelta | None = None,
                idempotency_retention: timedelta | None = None,
                ingress_private: bool | None = None,
                invocation_retry_policy: InvocationRetryPolicy | None = None,
                invocation_context_managers: list[Any] | None = None) -> Callable[[T], T]:
        opts = HandlerOptions(metadata, inactivity_timeout, abort_timeout, journal_retention,
                              idempotency_retention, None, None, ingress_private,
                              invocation_retry_policy)
        return self._add(name, None, accept, content_type, input_serde, output_serde, opts)


class VirtualObject(_Definition):
    """A keyed service with state; exclusive handlers run one at a time per key."""

    _KIND = "object"

    def handler(self, name: str | None = None, kind: HandlerKind | None = "exclusive",
                accept: str = "application/json", content_type: str = "application/json",
                input_serde: Serde[Any] = DEFAULT_SERDE,
                output_serde: Serde[Any] = DEFAULT_SERDE,
                metadata: dict[str, str] | None = None,
                inactivity_timeout: timedelta | None = None,
                abort_timeout: timedelta | None = None,
                journal_retention: timedelta | None = None,
                idempotency_retention: timedelta | None = None,
                enable_lazy_state: bool | None = None,
                ingress_private: bool | None = None,
                invocation_retry_policy: InvocationRetryPolicy | None = None,
                invocation_context_managers: list[Any] | None = None) -> Callable[[T], T]:
        opts = HandlerOptions(metadata, inactivity_timeout, abort_timeout, journal_retention,
                              idempotency_retention, None, enable_lazy_state, ingress_private,
                              invocation_retry_policy)
        return self._add(name, kind, accept, content_type, input_serde, output_serde, opts)


class Workflow(_Definition):
    """A keyed service whose ``main`` handler runs once per key, with durable promises."""

    _KIND = "workflow"

    def main(self, name: str | None = None, accept: str = "application/json",
             content_type: str = "application/json",
             input_serde: Serde[Any] = DEFAULT_SERDE,
             output_serde: Serde[Any] = DEFAULT_SERDE,
             metadata: dict[str, str] | None = None,
             inactivity_timeout: timedelta | None = None,
             abort_timeout: timedelta | None = None,
             journal_retention: timedelta | None = None,
             workflow_retention: timedelta | None = None,
             enable_lazy_state: bool | None = None,
             ingress_private: bool | None = None,
             invocation_retry_policy: InvocationRetryPolicy | None = None,
             invocation_context_managers: list[Any] | None = None) -> Callable[[T], T]:
        opts = HandlerOptions(metadata, inactivity_timeout, abort_timeout, journal_retention,
                              None, workflow_retention, enable_lazy_state, ingress_private,
                              invocation_retry_policy)
        return self._add(name, "workflow", accept, content_type, input_serde, output_serde,
                         opts)

    def handler(self, name: str | None = None, accept: str = "application/json",
                content_type: str = "application/json",
                input_serde: Serde[Any] = DEFAULT_SERDE,
                output_serde: Serde[Any] = DEFAULT_SERDE,
                metadata: dict[str, str] | None = None,
                inactivity_timeout: timedelta | None = None,
                abort_timeout: timedelta | None = None,
                journal_retention: timedelta | None = None,
                idempotency_retention: timedelta | None = None,
                enable_lazy_state: bool | None = None,
                ingress_private: bool | None = None,
                invocation_retry_policy: InvocationRetryPolicy | None = None,
                invocation_context_managers: list[Any] | None = None) -> Callable[[T], T]:
        opts = HandlerOptions(metadata, inactivity_timeout, abort_timeout, journal_retention,
                              idempotency_retention, None, enable_lazy_state, ingress_private,
                              invocation_retry_policy)
        return self._add(name, "shared", accept, content_type, input_serde, output_serde, opts)


AnyService = Service | VirtualObject | Workflow
