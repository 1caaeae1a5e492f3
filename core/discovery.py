"""Deployment discovery: `GET {uri}/discover` and the typed endpoint manifest (v1..v4).

The manifest keeps what the deployment declared (optional fields stay None) so that persisting
it with `to_json`/`from_json` round-trips exactly; server defaults are applied on read by
`effective_settings`, as restate-server does (restate-protocol.md section 2). The one
resolution done at parse time is the handler type (missing = EXCLUSIVE in objects, WORKFLOW in
workflows), because every consumer needs it and it is not a tunable default.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import aiohttp
from rstq.core import h2c

__all__ = [
    "DEFAULT_RETRY_POLICY",
    "MANIFEST_CONTENT_TYPES",
    "DiscoveryError",
    "EffectiveSettings",
    "HandlerDef",
    "HandlerType",
    "InputSpec",
    "Manifest",
    "OnMaxAttempts",
    "OutputSpec",
    "ProtocolMode",
    "RetryPolicy",
    "SERVER_DEFAULTS",
    "ServerDefaults",
    "ServiceDef",
    "ServiceType",
    "check_manifest",
    "discover",
    "effective_settings",
    "from_json",
    "parse_manifest",
    "pick_protocol_version",
    "to_json",
]

MANIFEST_CONTENT_TYPES: Final = tuple(
    f"application/vnd.restate.endpointmanifest.v{n}+json" for n in (1, 2, 3, 4)
)
# Service protocol versions a deployment may be registered with, as restate-server 1.7.
MIN_DISCOVERABLE_VERSION: Final = 5
MAX_DISCOVERABLE_VERSION: Final = 7
DEFAULT_MAX_PROTOCOL_VERSION: Final = 6  # v7 only behind a flag, like experimental-enable-v7

MINUTE_MS: Final = 60_000
DAY_MS: Final = 24 * 60 * MINUTE_MS
# restate-server's built-in defaults; a server's own are its `ServerDefaults` (rstq server
# --default-journal-retention ..., or its config file).
DEFAULT_INACTIVITY_TIMEOUT_MS: Final = MINUTE_MS
DEFAULT_ABORT_TIMEOUT_MS: Final = 10 * MINUTE_MS
DEFAULT_RETENTION_MS: Final = DAY_MS
BODY_EXCERPT = 500
T = TypeVar("T")
E = TypeVar("E", bound=enum.StrEnum)


class DiscoveryError(Exception):
    """Discovery failed; the message says why. `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProtocolMode(enum.StrEnum):
    BIDI_STREAM = "BIDI_STREAM"
    REQUEST_RESPONSE = "REQUEST_RESPONSE"


class ServiceType(enum.StrEnum):
    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerType(enum.StrEnum):
    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"


class OnMaxAttempts(enum.StrEnum):
    PAUSE = "PAUSE"
    KILL = "KILL"


@dataclass(frozen=True)
class RetryPolicy:
    """Invocation retry policy. In a manifest, None fields mean "not set here"."""

    initial_interval_ms: int | None = None
    max_interval_ms: int | None = None
    max_attempts: int | None = None
    exponentiation_factor: float | None = None
    on_max_attempts: OnMaxAttempts | None = None

    def or_else(self, other: RetryPolicy) -> RetryPolicy:
        """Field-wise fallback: our value where set, else `other`'s."""

        return RetryPolicy(
            _pick(self.initial_interval_ms, other.initial_interval_ms),
            _pick(self.max_interval_ms, other.max_interval_ms),
            _pick(self.max_attempts, other.max_attempts),
            _pick(self.exponentiation_factor, other.exponentiation_factor),
            _pick(self.on_max_attempts, other.on_max_attempts),
        )


DEFAULT_RETRY_POLICY: Final = RetryPolicy(
    initial_interval_ms=500,
    max_interval_ms=MINUTE_MS,
    max_attempts=70,
    exponentiation_factor=2.0,
    on_max_attempts=OnMaxAttempts.PAUSE,
)


@dataclass(frozen=True)
class ServerDefaults:
    """What a handler gets where neither it nor its service sets a value: restate-server's
    `default-journal-retention`, `default-idempotency-retention`,
    `default-workflow-completion-retention`, `worker.invoker.inactivity-timeout` /
    `abort-timeout` and `[default-retry-policy]`. One per server (`ServerConfig.defaults`).

    `retry_policy.max_attempts` None means unlimited attempts; its other fields are all set."""

    inactivity_timeout_ms: int = DEFAULT_INACTIVITY_TIMEOUT_MS
    abort_timeout_ms: int = DEFAULT_ABORT_TIMEOUT_MS
    journal_retention_ms: int = DEFAULT_RETENTION_MS
    idempotency_retention_ms: int = DEFAULT_RETENTION_MS
    workflow_completion_retention_ms: int = DEFAULT_RETENTION_MS
    retry_policy: RetryPolicy = DEFAULT_RETRY_POLICY

    def __post_init__(self) -> None:
        r = self.retry_policy
        if None in (r.initial_interval_ms, r.max_interval_ms, r.exponentiation_factor,
                    r.on_max_attempts):
            raise ValueError(f"a default retry policy sets every field but max_attempts: {r}")


SERVER_DEFAULTS: Final = ServerDefaults()


@dataclass(frozen=True)
class InputSpec:
    """Handler input. `content_type` None (the `{}` form) means the handler takes no input;
    otherwise it is an Accept-style pattern (wildcards allowed). `json_schema` is canonical
    JSON text (immutable, hashable); see `json_schema_value`."""

    required: bool | None = None
    content_type: str | None = None
    json_schema: str | None = None

    @property
    def json_schema_value(self) -> Any:
        return None if self.json_schema is None else json.loads(self.json_schema)


@dataclass(frozen=True)
class OutputSpec:
    content_type: str | None = None
    set_content_type_if_empty: bool | None = None
    json_schema: str | None = None

    @property
    def json_schema_value(self) -> Any:
        return None if self.json_schema is None else json.loads(self.json_schema)


def _pick(a: T | None, b: T | None) -> T | None:
    return a if a is not None else b


@dataclass(frozen=True, kw_only=True)
class _Options:
    """Options a service and a handler may both set (ms, as in the manifest)."""

    documentation: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    inactivity_timeout_ms: int | None = None
    abort_timeout_ms: int | None = None
    journal_retention_ms: int | None = None
    idempotency_retention_ms: int | None = None
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    retry_policy: RetryPolicy | None = None


@dataclass(frozen=True, kw_only=True)
class HandlerDef(_Options):
    name: str
    ty: HandlerType | None = None  # None only in SERVICEs
    input: InputSpec | None = None  # None: field absent
    output: OutputSpec | None = None
    workflow_completion_retention_ms: int | None = None


@dataclass(frozen=True, kw_only=True)
class ServiceDef(_Options):
    name: str
    ty: ServiceType = ServiceType.SERVICE
    handlers: tuple[HandlerDef, ...] = ()

    def handler(self, name: str) -> HandlerDef | None:
        return next((h for h in self.handlers if h.name == name), None)


@dataclass(frozen=True)
class Manifest:
    protocol_mode: ProtocolMode
    min_protocol_version: int
    max_protocol_version: int
    services: tuple[ServiceDef, ...]
    lambda_compression: str | None = None
    manifest_version: int = 4  # from the response content type

    def service(self, name: str) -> ServiceDef | None:
        return next((s for s in self.services if s.name == name), None)


@dataclass(frozen=True)
class EffectiveSettings:
    """Handler options after handler > service > server-default resolution."""

    inactivity_timeout_ms: int
    abort_timeout_ms: int
    journal_retention_ms: int
    idempotency_retention_ms: int
    workflow_completion_retention_ms: int
    enable_lazy_state: bool
    ingress_private: bool
    retry_policy: RetryPolicy = field(default=DEFAULT_RETRY_POLICY)


_Inputs = tuple[ServiceDef, HandlerDef | None, ServerDefaults]
# (id(service), id(handler), id(defaults)) -> (inputs, settings): the inputs are frozen, so the
# result is a pure function of them; keeping them referenced keeps their ids unique.
_settings_cache: dict[tuple[int, int, int], tuple[_Inputs, EffectiveSettings]] = {}


def effective_settings(service: ServiceDef, handler: HandlerDef | None = None,
                       defaults: ServerDefaults = SERVER_DEFAULTS) -> EffectiveSettings:
    """Resolved settings, handler > service > `defaults` (the server's); memoized per
    definition, as it is called per invocation."""
    key = (id(service), id(handler), id(defaults))
    hit = _settings_cache.get(key)
    if (hit is not None and hit[0][0] is service and hit[0][1] is handler
            and hit[0][2] is defaults):
        return hit[1]
    settings = _effective_settings(service, handler, defaults)
    if len(_settings_cache) >= 4096:
        _settings_cache.clear()
    _settings_cache[key] = ((service, handler, defaults), settings)
    return settings


def _effective_settings(service: ServiceDef, handler: HandlerDef | None,
                        d: ServerDefaults) -> EffectiveSettings:
    h = handler if handler is not None else HandlerDef(name="")

    def ms(a: int | None, b: int | None, default: int) -> int:
        return a if a is not None else b if b is not None else default

    retry = (h.retry_policy or RetryPolicy()).or_else(service.retry_policy or RetryPolicy())
    return EffectiveSettings(
        inactivity_timeout_ms=ms(
            h.inactivity_timeout_ms, service.inactivity_timeout_ms, d.inactivity_timeout_ms
        ),
        abort_timeout_ms=ms(h.abort_timeout_ms, service.abort_timeout_ms, d.abort_timeout_ms),
        journal_retention_ms=ms(
            h.journal_retention_ms, service.journal_retention_ms, d.journal_retention_ms
        ),
        idempotency_retention_ms=ms(
            h.idempotency_retention_ms, service.idempotency_retention_ms,
            d.idempotency_retention_ms
        ),
        workflow_completion_retention_ms=ms(
            h.workflow_completion_retention_ms, None, d.workflow_completion_retention_ms
        ),
        enable_lazy_state=bool(
            h.enable_lazy_state if h.enable_lazy_state is not None else service.enable_lazy_state
        ),
        ingress_private=bool(
            h.ingress_private if h.ingress_private is not None else service.ingress_private
        ),
        retry_policy=retry.or_else(d.retry_policy),
    )


def pick_protocol_version(manifest: Manifest, *, enable_v7: bool = False) -> int:
    """Service protocol version to invoke with: min(max, 6), or min(max, 7) with v7 enabled."""
    cap = MAX_DISCOVERABLE_VERSION if enable_v7 else DEFAULT_MAX_PROTOCOL_VERSION
    v = min(manifest.max_protocol_version, cap)
    if v < MIN_DISCOVERABLE_VERSION or v < manifest.min_protocol_version:
        raise DiscoveryError(
            f"no usable service protocol version: deployment supports "
            f"[{manifest.min_protocol_version}, {manifest.max_protocol_version}], "
            f"this server [{MIN_DISCOVERABLE_VERSION}, {cap}]"
        )
    return v


# -- parsing --------------------------------------------------------------------------------------


class _Schema(DiscoveryError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"invalid manifest: {path}: {problem}")


class _Obj:
    """A JSON object with its path, for typed field access and precise error messages."""

    def __init__(self, value: object, path: str) -> None:
        if not isinstance(value, dict):
            raise _Schema(path, f"expected an object, got {_kind(value)}")
        self.d: dict[str, Any] = value
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str, *, required: bool = False) -> str | None:
        v = self.d.get(key)
        if v is None:
            if required:
                raise _Schema(self.at(key), "missing")
            return None
        if not isinstance(v, str):
            raise _Schema(self.at(key), f"expected a string, got {_kind(v)}")
        return v

    def name(self, key: str) -> str:
        v = self.text(key, required=True)
        assert v is not None
        if not v:
            raise _Schema(self.at(key), "must not be empty")
        return v

    def integer(self, key: str, *, required: bool = False, minimum: int = 0) -> int | None:
        v = self.d.get(key)
        if v is None:
            if required:
                raise _Schema(self.at(key), "missing")
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Schema(self.at(key), f"expected an integer, got {_kind(v)}")
        if v < minimum:
            raise _Schema(self.at(key), f"must be >= {minimum}, got {v}")
        return v

    def flag(self, key: str) -> bool | None:
        v = self.d.get(key)
        if v is not None and not isinstance(v, bool):
            raise _Schema(self.at(key), f"expected a boolean, got {_kind(v)}")
        return v

    def number(self, key: str) -> float | None:
        v = self.d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise _Schema(self.at(key), f"expected a positive number, got {v!r}")
        return float(v)

    def enum(self, key: str, cls: type[E], *, required: bool = False) -> E | None:
        v = self.text(key, required=required)
        if v is None:
            return None
        try:
            return cls(v)
        except ValueError:
            allowed = "|".join(m.value for m in cls)
            raise _Schema(self.at(key), f"expected {allowed}, got {v!r}") from None

    def schema(self, key: str) -> str | None:
        v = self.d.get(key)
        return None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"))

    def metadata(self, key: str) -> tuple[tuple[str, str], ...]:
        v = self.d.get(key)
        if v is None:
            return ()
        m = _Obj(v, self.at(key))
        for k, x in m.d.items():
            if not isinstance(x, str):
                raise _Schema(m.at(k), f"expected a string, got {_kind(x)}")
        return tuple(sorted(m.d.items()))  # a map: canonical order makes equality exact


def _kind(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _options(o: _Obj) -> dict[str, Any]:
    retry = RetryPolicy(
        initial_interval_ms=o.integer("retryPolicyInitialInterval"),
        max_interval_ms=o.integer("retryPolicyMaxInterval"),
        max_attempts=o.integer("retryPolicyMaxAttempts", minimum=1),
        exponentiation_factor=o.number("retryPolicyExponentiationFactor"),
        on_max_attempts=o.enum("retryPolicyOnMaxAttempts", OnMaxAttempts),
    )
    return {
        "documentation": o.text("documentation"),
        "metadata": o.metadata("metadata"),
        "inactivity_timeout_ms": o.integer("inactivityTimeout"),
        "abort_timeout_ms": o.integer("abortTimeout"),
        "journal_retention_ms": o.integer("journalRetention"),
        "idempotency_retention_ms": o.integer("idempotencyRetention"),
        "enable_lazy_state": o.flag("enableLazyState"),
        "ingress_private": o.flag("ingressPrivate"),
        "retry_policy": None if retry == RetryPolicy() else retry,
    }


# Handler types each service type allows; the first entry is the default when `ty` is absent.
_HANDLER_TYPES: Final[dict[ServiceType, tuple[HandlerType | None, ...]]] = {
    ServiceType.SERVICE: (None, HandlerType.SHARED),
    ServiceType.VIRTUAL_OBJECT: (HandlerType.EXCLUSIVE, HandlerType.SHARED),
    ServiceType.WORKFLOW: (HandlerType.WORKFLOW, HandlerType.SHARED),
}


def _handler(o: _Obj, svc_ty: ServiceType) -> HandlerDef:
    allowed = _HANDLER_TYPES[svc_ty]
    ty = o.enum("ty", HandlerType)
    if ty is None:
        ty = allowed[0]
    elif ty not in allowed:
        raise _Schema(o.at("ty"), f"{ty} handlers are not allowed in a {svc_ty}")
    inp = out = None
    if o.d.get("input") is not None:
        i = _Obj(o.d["input"], o.at("input"))
        inp = InputSpec(i.flag("required"), i.text("contentType"), i.schema("jsonSchema"))
    if o.d.get("output") is not None:
        p = _Obj(o.d["output"], o.at("output"))
        out = OutputSpec(
            p.text("contentType"), p.flag("setContentTypeIfEmpty"), p.schema("jsonSchema")
        )
    return HandlerDef(
        name=o.name("name"),
        ty=ty,
        input=inp,
        output=out,
        workflow_completion_retention_ms=o.integer("workflowCompletionRetention"),
        **_options(o),
    )


def _service(o: _Obj) -> ServiceDef:
    name = o.name("name")
    ty = o.enum("ty", ServiceType, required=True)
    assert ty is not None
    raw = o.d.get("handlers")
    if not isinstance(raw, list):
        raise _Schema(o.at("handlers"), f"expected an array, got {_kind(raw)}")
    handlers = tuple(_handler(_Obj(h, f"{o.at('handlers')}[{i}]"), ty) for i, h in enumerate(raw))
    _unique([h.name for h in handlers], o.at("handlers"))
    if sum(h.ty is HandlerType.WORKFLOW for h in handlers) > 1:
        raise _Schema(o.at("handlers"), "a workflow has at most one WORKFLOW handler")
    return ServiceDef(name=name, ty=ty, handlers=handlers, **_options(o))


def _unique(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise _Schema(path, f"duplicate name {n!r}")
        seen.add(n)


def parse_manifest(data: object, manifest_version: int = 4) -> Manifest:
    """Schema-check a decoded manifest document (any of v1..v4; unknown fields are ignored)."""
    o = _Obj(data, "")
    mode = o.enum("protocolMode", ProtocolMode, required=True)
    lo = o.integer("minProtocolVersion", required=True, minimum=1)
    hi = o.integer("maxProtocolVersion", required=True, minimum=1)
    assert mode is not None and lo is not None and hi is not None
    if lo > hi:
        raise _Schema("minProtocolVersion", f"{lo} is greater than maxProtocolVersion {hi}")
    raw = o.d.get("services")
    if not isinstance(raw, list):
        raise _Schema("services", f"expected an array, got {_kind(raw)}")
    services = tuple(_service(_Obj(s, f"services[{i}]")) for i, s in enumerate(raw))
    _unique([s.name for s in services], "services")
    return Manifest(
        protocol_mode=mode,
        min_protocol_version=lo,
        max_protocol_version=hi,
        services=services,
        lambda_compression=o.text("lambdaCompression"),
        manifest_version=manifest_version,
    )


def check_manifest(manifest: Manifest, *, http_11: bool) -> None:
    """The registration-time checks of restate-server beyond the schema."""
    lo, hi = manifest.min_protocol_version, manifest.max_protocol_version
    if hi < MIN_DISCOVERABLE_VERSION or lo > MAX_DISCOVERABLE_VERSION:
        raise DiscoveryError(
            f"deployment supports service protocol versions [{lo}, {hi}], which do not overlap "
            f"the supported range [{MIN_DISCOVERABLE_VERSION}, {MAX_DISCOVERABLE_VERSION}]"
        )
    if http_11 and manifest.protocol_mode is ProtocolMode.BIDI_STREAM:
        raise DiscoveryError(
            "deployment announced BIDI_STREAM but was discovered over HTTP/1.1, which cannot "
            "stream in both directions; serve it in REQUEST_RESPONSE mode or use HTTP/2"
        )


# -- serialization ---------------------------------------------------------------------------------


def _options_json(x: _Options) -> dict[str, Any]:
    d: dict[str, Any] = {
        "documentation": x.documentation,
        "metadata": dict(x.metadata) if x.metadata else None,
        "inactivityTimeout": x.inactivity_timeout_ms,
        "abortTimeout": x.abort_timeout_ms,
        "journalRetention": x.journal_retention_ms,
        "idempotencyRetention": x.idempotency_retention_ms,
        "enableLazyState": x.enable_lazy_state,
        "ingressPrivate": x.ingress_private,
    }
    r = x.retry_policy
    if r is not None:
        d["retryPolicyInitialInterval"] = r.initial_interval_ms
        d["retryPolicyMaxInterval"] = r.max_interval_ms
        d["retryPolicyMaxAttempts"] = r.max_attempts
        d["retryPolicyExponentiationFactor"] = r.exponentiation_factor
        d["retryPolicyOnMaxAttempts"] = r.on_max_attempts
    return d


def _schema_json(s: str | None) -> Any:
    return None if s is None else json.loads(s)


def _strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _handler_json(h: HandlerDef) -> dict[str, Any]:
    d = {"name": h.name, "ty": h.ty, **_options_json(h)}
    d["workflowCompletionRetention"] = h.workflow_completion_retention_ms
    if h.input is not None:
        i = h.input
        d["input"] = _strip(
            {
                "required": i.required,
                "contentType": i.content_type,
                "jsonSchema": _schema_json(i.json_schema),
            }
        )
    if h.output is not None:
        p = h.output
        d["output"] = _strip(
            {
                "contentType": p.content_type,
                "setContentTypeIfEmpty": p.set_content_type_if_empty,
                "jsonSchema": _schema_json(p.json_schema),
            }
        )
    return _strip(d)


def manifest_document(m: Manifest) -> dict[str, Any]:
    """The manifest as a v4-style JSON document (camelCase, unset fields omitted)."""
    services = [
        _strip(
            {
                "name": s.name,
                "ty": s.ty,
                "handlers": [_handler_json(h) for h in s.handlers],
                **_options_json(s),
            }
        )
        for s in m.services
    ]
    return _strip(
        {
            "protocolMode": m.protocol_mode,
            "minProtocolVersion": m.min_protocol_version,
            "maxProtocolVersion": m.max_protocol_version,
            "services": services,
            "lambdaCompression": m.lambda_compression,
        }
    )


def to_json(m: Manifest) -> str:
    """Deterministic JSON for persisting a manifest; `from_json(to_json(m)) == m`."""
    doc = {"manifestVersion": m.manifest_version, "manifest": manifest_document(m)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


def from_json(text: str | bytes) -> Manifest:
    """Inverse of `to_json`. Schema-checked, but not range-checked: a stored deployment stays
    loadable even if the supported protocol range moves on."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise DiscoveryError(f"stored manifest is not valid JSON: {e}") from e
    o = _Obj(doc, "")
    version = o.integer("manifestVersion", required=True, minimum=1)
    assert version is not None
    return parse_manifest(doc.get("manifest"), version)


# -- the discovery request -------------------------------------------------------------------------


def _manifest_version(content_type: str | None) -> int:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in MANIFEST_CONTENT_TYPES:
        raise DiscoveryError(
            f"unexpected discovery response content-type {content_type!r}; expected one of "
            + ", ".join(MANIFEST_CONTENT_TYPES)
        )
    return MANIFEST_CONTENT_TYPES.index(media) + 1


# A GET: (url, headers) -> (status, content-type, body).
Fetch = Callable[[str, dict[str, str]], Awaitable[tuple[int, str | None, bytes]]]


async def _get_h2c(url: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    status, resp_headers, body = await h2c.get(url, headers)
    ctype = next((v for k, v in resp_headers if k == "content-type"), None)
    return status, ctype, body


async def _get_http11(url: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers, allow_redirects=False) as resp,
    ):
        return resp.status, resp.headers.get("content-type"), await resp.read()


async def discover(
    uri: str,
    use_http_11: bool = False,
    additional_headers: Mapping[str, str] | None = None,
    *,
    cluster_name: str | None = None,
    timeout: float = 30.0,
    fetch: Fetch | None = None,
) -> Manifest:
    """Discover the deployment at `uri` and return its checked manifest.

    h2c (HTTP/2 prior knowledge) by default, as restate-server does for plain http; HTTP/1.1
    (aiohttp) with `use_http_11`. https is only supported with HTTP/1.1 (no ALPN h2 client yet).
    `fetch` replaces the HTTP client (e.g. an in-memory ASGI app's `AsgiTransport.get`).
    """
    base = uri.rstrip("/")
    url = f"{base}/discover"
    scheme = base.split("://", 1)[0].lower() if "://" in base else ""
    if scheme not in ("http", "https"):
        raise DiscoveryError(f"deployment URI must be http:// or https://, got {uri!r}")
    if scheme == "https" and not use_http_11:
        raise DiscoveryError("https deployments need use_http_11 (no HTTP/2 over TLS client yet)")
    headers = {k.lower(): v for k, v in (additional_headers or {}).items()}
    headers["accept"] = ", ".join(MANIFEST_CONTENT_TYPES)
    if cluster_name is not None:
        headers["x-restate-cluster-name"] = cluster_name
    fetch = fetch or (_get_http11 if use_http_11 else _get_h2c)
    try:
        status, ctype, body = await asyncio.wait_for(fetch(url, headers), timeout)
    except TimeoutError as e:
        raise DiscoveryError(f"discovery at {url} timed out after {timeout:g}s") from e
    except (h2c.H2ConnectionError, aiohttp.ClientError, OSError) as e:
        raise DiscoveryError(f"cannot reach deployment at {url}: {e}") from e
    if status != 200:
        excerpt = body[:BODY_EXCERPT].decode("utf-8", "replace")
        raise DiscoveryError(f"discovery at {url} returned HTTP {status}: {excerpt}", status=status)
    version = _manifest_version(ctype)
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise DiscoveryError(f"discovery at {url} returned invalid JSON: {e}") from e
    manifest = parse_manifest(doc, version)
    check_manifest(manifest, http_11=use_http_11)
    return manifest
