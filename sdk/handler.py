"""Handler definitions: what the decorators record about a handler function."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from .retry_policy import InvocationRetryPolicy
from .serde import DefaultSerde, Serde

ServiceKind = Literal["service", "object", "workflow"]
HandlerKind = Literal["exclusive", "shared", "workflow"]

#: attribute set on decorated functions, so ``ctx.service_call(fn, ...)`` finds the target
HANDLER_ATTR = "__rstq_handler__"


@dataclass
class ServiceTag:
    kind: ServiceKind
    name: str
    description: str | None = None
    metadata: dict[str, str] | None = None


def core_type(annotation: Any) -> tuple[bool, Any]:
    """(is_optional, T) for ``T | None`` / ``Optional[T]``, else (False, annotation)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return True, args[0]
    return False, annotation


def json_schema(annotation: Any) -> Any:
    """JSON schema for a type hint, as restate-sdk derives it (``True`` = anything)."""
    optional, tp = core_type(annotation)
    from .serde import is_pydantic
    if is_pydantic(tp):
        schema: Any = tp.model_json_schema(mode="serialization")
    else:
        origin = typing.get_origin(tp) or tp
        args = typing.get_args(tp)
        if origin is str:
            schema = {"type": "string"}
        elif origin is bool:
            schema = {"type": "boolean"}
        elif origin is int:
            schema = {"type": "integer"}
        elif origin is float:
            schema = {"type": "number"}
        elif origin is list:
            schema = {"type": "array", "items": json_schema(args[0] if args else Any)}
        elif origin is dict:
            schema = {"type": "object"}
        elif origin is None:
            schema = {"type": "null"}
        else:
            return True
    # like restate-sdk: only model schemas say "null" for optional types
    if optional and is_pydantic(tp) and isinstance(schema, dict):
        t = schema.get("type")
        if t is None:
            schema["type"] = ["null"]
        elif isinstance(t, list):
            if "null" not in t:
                t.append("null")
        elif t != "null":
            schema["type"] = [t, "null"]
    return schema


@dataclass
class HandlerOptions:
    """Per-handler manifest options (all optional; ms in the manifest)."""

    metadata: dict[str, str] | None = None
    inactivity_timeout: timedelta | None = None
    abort_timeout: timedelta | None = None
    journal_retention: timedelta | None = None
    idempotency_retention: timedelta | None = None
    workflow_retention: timedelta | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    invocation_retry_policy: InvocationRetryPolicy | None = None


@dataclass
class Handler:
    """One handler of a service: the function plus its I/O contract."""

    service_tag: ServiceTag
    name: str
    kind: HandlerKind | None
    fn: Callable[..., Awaitable[Any]]
    arity: int
    accept: str
    content_type: str
    input_serde: Serde[Any]
    output_serde: Serde[Any]
    input_hint: Any = None  # None with arity 1: no input
    output_void: bool = False
    output_hint: Any = None
    description: str | None = None
    options: HandlerOptions = field(default_factory=HandlerOptions)

    @property
    def service_name(self) -> str:
        return self.service_tag.name


def make_handler(tag: ServiceTag, fn: Callable[..., Any], name: str | None,
                 kind: HandlerKind | None, accept: str, content_type: str,
                 input_serde: Serde[Any], output_serde: Serde[Any],
                 options: HandlerOptions) -> Handler:
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())
    if not params:
        raise ValueError("Handler must have at least one parameter (the context)")
    if len(params) > 2:
        raise ValueError("Handler takes the context and at most one input argument")
    in_hint = params[1].annotation if len(params) == 2 else None
    if in_hint is inspect.Parameter.empty:
        in_hint = Any
    ret = sig.return_annotation
    void = ret is None or ret is inspect.Signature.empty
    # A typed DefaultSerde rebuilds dataclasses / pydantic models from the JSON.
    if isinstance(input_serde, DefaultSerde) and in_hint is not None:
        input_serde = DefaultSerde(core_type(in_hint)[1])
    if isinstance(output_serde, DefaultSerde) and not void:
        output_serde = DefaultSerde(core_type(ret)[1])
    h = Handler(tag, name or fn.__name__, kind, fn, len(params), accept, content_type,
                input_serde, output_serde, in_hint, void, None if void else ret,
                inspect.getdoc(fn), options)
    setattr(fn, HANDLER_ATTR, h)
    return h


def handler_from_callable(fn: Any) -> Handler:
    h = getattr(fn, HANDLER_ATTR, None)
    if not isinstance(h, Handler):
        raise ValueError(f"{fn!r} is not a handler (decorate it with @service.handler())")
    return h
