"""Discovery manifest (endpoint manifest v2-v4), shaped like restate-sdk's."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from rstq.protocol import MAX_VERSION, MIN_VERSION

from .handler import Handler, HandlerOptions, json_schema
from .retry_policy import InvocationRetryPolicy
from .service import AnyService

_SERVICE_TYPES = {"service": "SERVICE", "object": "VIRTUAL_OBJECT", "workflow": "WORKFLOW"}
_HANDLER_TYPES = {"exclusive": "EXCLUSIVE", "shared": "SHARED", "workflow": "WORKFLOW"}
# Fields a manifest version may not carry (restate-sdk refuses rather than drops them).
_V3_FIELDS = ("inactivityTimeout", "abortTimeout", "journalRetention", "idempotencyRetention",
              "workflowCompletionRetention", "enableLazyState", "ingressPrivate")
_V4_FIELDS = ("retryPolicyInitialInterval", "retryPolicyMaxInterval", "retryPolicyMaxAttempts",
              "retryPolicyExponentiationFactor", "retryPolicyOnMaxAttempts")


def _ms(d: timedelta | None) -> int | None:
    return None if d is None else int(d.total_seconds() * 1000)


def _retry(p: InvocationRetryPolicy | None) -> dict[str, Any]:
    if p is None:
        return {}
    return {
        "retryPolicyInitialInterval": _ms(p.initial_interval) if p.initial_interval else None,
        "retryPolicyMaxInterval": _ms(p.max_interval) if p.max_interval else None,
        "retryPolicyMaxAttempts": p.max_attempts,
        "retryPolicyExponentiationFactor": (None if p.exponentiation_factor is None
                                            else float(p.exponentiation_factor)),
        "retryPolicyOnMaxAttempts": p.on_max_attempts.upper() if p.on_max_attempts else None,
    }


def _options(o: HandlerOptions) -> dict[str, Any]:
    return {
        "metadata": o.metadata,
        "inactivityTimeout": _ms(o.inactivity_timeout),
        "abortTimeout": _ms(o.abort_timeout),
        "journalRetention": _ms(o.journal_retention),
        "idempotencyRetention": _ms(o.idempotency_retention),
        "workflowCompletionRetention": _ms(o.workflow_retention),
        "enableLazyState": o.enable_lazy_state,
        "ingressPrivate": o.ingress_private,
        **_retry(o.invocation_retry_policy),
    }


def _handler(h: Handler) -> dict[str, Any]:
    inp: dict[str, Any]
    if h.arity == 1:
        inp = {}
    else:
        inp = {"required": False, "contentType": h.accept,
               "jsonSchema": json_schema(h.input_hint)}
    out: dict[str, Any] = {"setContentTypeIfEmpty": False}
    if not h.output_void:
        out = {"contentType": h.content_type, "setContentTypeIfEmpty": False,
               "jsonSchema": json_schema(h.output_hint)}
    return {"name": h.name, "ty": _HANDLER_TYPES[h.kind] if h.kind else None, "input": inp,
            "output": out, "documentation": h.description, **_options(h.options)}


def _service(s: AnyService) -> dict[str, Any]:
    lazy = s.enable_lazy_state if s.service_tag.kind != "service" else None
    return {
        "name": s.name, "ty": _SERVICE_TYPES[s.service_tag.kind],
        "handlers": [_handler(h) for h in s.handlers.values()],
        "documentation": s.service_tag.description, "metadata": s.service_tag.metadata,
        "inactivityTimeout": _ms(s.inactivity_timeout), "abortTimeout": _ms(s.abort_timeout),
        "journalRetention": _ms(s.journal_retention),
        "idempotencyRetention": _ms(s.idempotency_retention),
        "enableLazyState": lazy, "ingressPrivate": s.ingress_private,
        **_retry(s.invocation_retry_policy),
    }


def _strip_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def manifest(services: Iterable[AnyService], version: int, protocol_mode: str) -> dict[str, Any]:
    """The manifest for manifest ``version`` (2-4); raises ValueError if a service uses a
    field that version cannot carry."""
    svcs = []
    for s in services:
        sd = _strip_none(_service(s))
        sd["handlers"] = [_strip_none(h) for h in sd["handlers"]]
        for obj in [sd, *sd["handlers"]]:
            banned = (_V4_FIELDS if version <= 3 else ()) + (_V3_FIELDS if version <= 2 else ())
            for f in banned:
                if f in obj:
                    raise ValueError(f"{f} is only supported in discovery protocol version "
                                     f"{4 if f in _V4_FIELDS else 3}")
        svcs.append(sd)
    return {"protocolMode": protocol_mode, "minProtocolVersion": MIN_VERSION,
            "maxProtocolVersion": MAX_VERSION, "services": svcs}


def manifest_json(services: Iterable[AnyService], version: int, protocol_mode: str) -> bytes:
    return json.dumps(manifest(services, version, protocol_mode), allow_nan=False).encode()
