"""The admin HTTP API (default 127.0.0.1:9070), in restate-server 1.7's shapes.

- `POST /deployments` discovers an endpoint and registers it (metadata log); `GET /deployments`,
  `GET|DELETE /deployments/{id}`;
- `GET /services`, `GET /services/{name}`, `GET /services/{name}/handlers[/{handler}]`,
  `POST /services/{name}/state` (replace an object's state, for `rstq state set`);
- `PATCH /invocations/{id}/cancel|kill|purge|pause|resume`, deprecated
  `DELETE /invocations/{id}?mode=cancel|kill|purge`;
- `GET /health`, `GET /version`;
- `GET /metrics` (Prometheus text exposition, rstq.core.metrics; needs the token when one is set);
- `POST /query` (SQL, Restate-compatible), added by the SQL plugin (rstq.app).

Every route (core's and the plugins') also answers under the admin API version prefixes
`/v2` … `/v4` (what restate-server 1.7.12 advertises in `/version` and what the `restate` CLI
calls, e.g. `GET /v4/deployments`); `/v1/...` answers 400 in plain text, as restate-server.

Errors are `{"message", "restate_code"}` as restate's MetaApiError; request-shape errors are
plain text, as axum's extractors answer them. With `RSTQ_ADMIN_TOKEN` (or the server config's
`extra["admin_token"]`) set, every route but `/health` needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import model as m
from rstq.core.clock import Clock
from rstq.core.discovery import (
    DiscoveryError,
    EffectiveSettings,
    HandlerDef,
    Manifest,
    OutputSpec,
    RetryPolicy,
    discover,
    pick_protocol_version,
    to_json,
)
from rstq.core.ingress import (
    bound_port,
    friendly_duration,
    id_decode_error,
    input_rules,
    invocation_id_error,
    rfc3339_nanos,
    start_runner,
)
from rstq.core.metrics import CONTENT_TYPE, Metrics
from rstq.core.partitioning import partition_key_for
from rstq.core.ports import Limits, Metadata, Partitions
from rstq.core.processor import Refused
from rstq.core.schema import SERVICE_TY, Deployment, Service
from rstq.protocol.ids import DeploymentId

if TYPE_CHECKING:
    from rstq.core.plugins import Plugin

__all__ = ["Admin", "admin_token", "make_admin_app", "start_admin"]

log = logging.getLogger(__name__)

VERSION: Final = "rstq 0.1.0"
JSON_ONLY: Final = "Expected request with `Content-Type: application/json`"
# Admin API versions served under `/v<N>/...` (and unprefixed), as restate-server 1.7.12.
MIN_API_VERSION: Final = 2
MAX_API_VERSION: Final = 4
_HEALTH_PATHS: Final = frozenset(
    ["/health", *(f"/v{n}/health" for n in range(MIN_API_VERSION, MAX_API_VERSION + 1))])
_SERVICE_TY_JSON: Final = {"service": "Service", "virtual_object": "VirtualObject",
                           "workflow": "Workflow"}
_HANDLER_TY_JSON: Final = {"exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow"}

JsonObj = dict[str, Any]


# --- responses -----------------------------------------------------------------------------------


def _json(doc: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return web.Response(status=status, body=body,
                        headers={"content-type": "application/json", **(headers or {})})


def meta_error(status: int, message: str, restate_code: str | None = None) -> web.Response:
    return _json({"message": message, "restate_code": restate_code}, status)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


class AdminError(Exception):
    """Answer the request with `response` (raised from helpers deep in a handler)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def _json_body(request: web.Request) -> JsonObj:
    """The JSON object body, or the error axum's Json extractor would answer."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise AdminError(_text(415, JSON_ONLY))
    raw = await request.read()
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise AdminError(_text(400, f"Failed to parse the request body as JSON: {e}")) from None
    if not isinstance(doc, dict):
        raise AdminError(_text(422, "Failed to deserialize the JSON body into the target type: "
                                    "expected a JSON object"))
    return doc


def _field(doc: JsonObj, name: str, ty: type | tuple[type, ...], default: Any = None,
           required: bool = False) -> Any:
    if name not in doc or doc[name] is None:
        if required:
            raise AdminError(_text(422, "Failed to deserialize the JSON body into the target "
                                        f"type: missing field `{name}`"))
        return default
    value = doc[name]
    if not isinstance(value, ty) or (ty is not bool and isinstance(value, bool)):
        raise AdminError(_text(422, "Failed to deserialize the JSON body into the target "
                                    f"type: {name}: invalid type"))
    return value


def _normalize_uri(uri: str) -> str:
    """`http://host:port` -> `http://host:port/`, as restate stores (and shows) it."""
    scheme, sep, rest = uri.partition("://")
    return uri + "/" if sep and rest and "/" not in rest else uri


# --- service and deployment documents (restate's ServiceMetadata, DeploymentResponse) ------------


def _retry_json(r: RetryPolicy) -> JsonObj:
    return {
        "initial_interval": friendly_duration(r.initial_interval_ms or 0),
        "exponentiation_factor": float(r.exponentiation_factor or 0.0),
        "max_attempts": r.max_attempts,
        "max_interval": friendly_duration(r.max_interval_ms or 0),
        "on_max_attempts": (r.on_max_attempts or "PAUSE").capitalize(),
    }


def _handler_retry_json(r: RetryPolicy | None) -> JsonObj:
    """Only what the handler itself overrides; max_attempts always (null = inherited)."""
    r = r or RetryPolicy()
    doc: JsonObj = {}
    if r.initial_interval_ms is not None:
        doc["initial_interval"] = friendly_duration(r.initial_interval_ms)
    if r.exponentiation_factor is not None:
        doc["exponentiation_factor"] = float(r.exponentiation_factor)
    doc["max_attempts"] = r.max_attempts
    if r.max_interval_ms is not None:
        doc["max_interval"] = friendly_duration(r.max_interval_ms)
    if r.on_max_attempts is not None:
        doc["on_max_attempts"] = r.on_max_attempts.capitalize()
    return doc


def _describe_schema(schema: object, default: str) -> str:
    if isinstance(schema, dict):
        if isinstance(schema.get("title"), str):
            return f"JSON '{schema['title']}'"
        if isinstance(schema.get("type"), str):
            return f"JSON {schema['type']}"
    return default


def input_description(h: HandlerDef) -> str:
    """restate's InputRules Display: `none`, `*/*`, `JSON string`, `one of [...]`."""
    rules = input_rules(h.input)
    schema = h.input.json_schema_value if h.input is not None else None
    shown = ["none" if r.kind == "none" else
             _describe_schema(schema, r.content_type) if r.kind == "json" else r.content_type
             for r in rules]
    if not shown:
        return "<invalid rules>"
    if len(shown) == 1:
        return shown[0]
    if len(shown) == 2 and rules[0].kind == "none":
        return shown[1]
    return "one of [" + ", ".join(f'"{s}"' for s in shown) + "]"


def output_description(out: OutputSpec | None) -> str:
    if out is None:
        return "application/json"
    if out.content_type is None:
        return "none"
    prefix = "optional " if out.set_content_type_if_empty else ""
    return _describe_schema(out.json_schema_value, prefix + out.content_type)


def handler_json(svc: Service, h: HandlerDef, request_response: bool) -> JsonObj:
    doc: JsonObj = {"name": h.name}
    if svc.ty != "service":
        doc["ty"] = _HANDLER_TY_JSON[svc.handler_ty(h.name)]
    if h.documentation is not None:
        doc["documentation"] = h.documentation
    if h.metadata:
        doc["metadata"] = dict(h.metadata)
    for name, ms in (("idempotency_retention", h.idempotency_retention_ms),
                     ("journal_retention", h.journal_retention_ms),
                     ("inactivity_timeout", None if request_response else h.inactivity_timeout_ms),
                     ("abort_timeout", h.abort_timeout_ms)):
        if ms is not None:
            doc[name] = friendly_duration(ms)
    if h.enable_lazy_state is not None:
        doc["enable_lazy_state"] = h.enable_lazy_state
    doc["public"] = svc.public if h.ingress_private is None else not h.ingress_private
    doc["input_description"] = input_description(h)
    doc["output_description"] = output_description(h.output)
    in_schema = h.input.json_schema_value if h.input is not None else None
    out_schema = h.output.json_schema_value if h.output is not None else None
    if in_schema is not None and h.input is not None and h.input.content_type is not None:
        doc["input_json_schema"] = in_schema
    if out_schema is not None and h.output is not None and h.output.content_type is not None:
        doc["output_json_schema"] = out_schema
    doc["retry_policy"] = _handler_retry_json(h.retry_policy)
    return doc


def service_json(svc: Service, dep: Deployment | None) -> JsonObj:
    """restate's ServiceMetadata: effective service-level settings, handler-level overrides."""
    sdef = svc.definition
    rr = dep is not None and not dep.bidi  # restate shows no inactivity timeout then
    eff: EffectiveSettings = svc.settings()
    doc: JsonObj = {"name": svc.name, "ty": _SERVICE_TY_JSON[svc.ty],
                    "handlers": [handler_json(svc, h, rr) for h in sdef.handlers]}
    if sdef.documentation is not None:
        doc["documentation"] = sdef.documentation
    if sdef.metadata:
        doc["metadata"] = dict(sdef.metadata)
    doc |= {"deployment_id": svc.deployment_id, "revision": svc.revision, "public": svc.public,
            "idempotency_retention": friendly_duration(eff.idempotency_retention_ms)}
    if svc.ty == "workflow":
        wf = next((h.workflow_completion_retention_ms for h in sdef.handlers
                   if h.workflow_completion_retention_ms is not None),
                  eff.workflow_completion_retention_ms)
        doc["workflow_completion_retention"] = friendly_duration(wf)
    doc |= {
        "journal_retention": friendly_duration(eff.journal_retention_ms),
        "inactivity_timeout": "0s" if rr else friendly_duration(eff.inactivity_timeout_ms),
        "abort_timeout": friendly_duration(eff.abort_timeout_ms),
        "enable_lazy_state": bool(sdef.enable_lazy_state),
        "retry_policy": _retry_json(eff.retry_policy),
    }
    return doc


def _deployment_head(dep: Deployment) -> JsonObj:
    return {
        "id": dep.deployment_id,
        "uri": dep.uri,
        "protocol_type": "BidiStream" if dep.bidi else "RequestResponse",
        "http_version": "HTTP/1.1" if dep.use_http_11 else "HTTP/2.0",
        "created_at": rfc3339_nanos(dep.created_at),
        "min_protocol_version": dep.manifest.min_protocol_version,
        "max_protocol_version": dep.manifest.max_protocol_version,
    }


# --- the handlers --------------------------------------------------------------------------------


class Admin:
    """The request handlers. `ingress_port`: where `/version` says the ingress listens."""

    def __init__(self, *, partitions: Partitions, meta: Metadata, clock: Clock, limits: Limits,
                 ingress_port: int | None, metrics: Metrics | None = None) -> None:
        self.partitions = partitions
        self.metrics = metrics
        self.meta = meta
        self.clock = clock
        self.limits = limits
        self.ingress_port = ingress_port

    # --- misc ------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return _empty(200)

    async def metrics_text(self, request: web.Request) -> web.Response:
        """Prometheus text exposition (version 0.0.4) of this server's registry."""
        body = self.metrics.exposition() if self.metrics is not None else b""
        resp = web.Response(body=body)
        resp.headers["content-type"] = CONTENT_TYPE
        return resp

    async def version(self, request: web.Request) -> web.Response:
        port = self.ingress_port
        doc: JsonObj = {"version": VERSION, "min_admin_api_version": MIN_API_VERSION,
                        "max_admin_api_version": MAX_API_VERSION}
        if port:
            doc["ingress_endpoint"] = f"http://127.0.0.1:{port}/"
        doc["features"] = {"protocol_v7": self.limits.enable_protocol_v7}
        return _json(doc)

    # --- deployments -----------------------------------------------------------------------------

    async def register_deployment(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        if "arn" in body:
            return meta_error(400, "Lambda deployments are not supported by rstq")
        uri = _normalize_uri(_field(body, "uri", str, required=True))
        headers = _field(body, "additional_headers", dict, {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise AdminError(_text(422, "Failed to deserialize the JSON body into the target "
                                        "type: additional_headers: invalid type"))
        use_http_11 = bool(_field(body, "use_http_11", bool, False))
        force = bool(_field(body, "force", bool, False))  # admin API v3+: no force by default
        breaking = bool(_field(body, "breaking", bool, False))
        dry_run = bool(_field(body, "dry_run", bool, False))
        try:
            manifest = await discover(uri, use_http_11, headers)
        except DiscoveryError as e:
            # restate 1.7 renders the code twice ("[META0003] [META0003] ..."); once is enough.
            return meta_error(500, f"[META0003] {e}", "META0003")
        try:  # checked here: the metadata log must never hold a deployment it cannot apply
            pick_protocol_version(manifest, enable_v7=self.limits.enable_protocol_v7)
        except DiscoveryError as e:
            return meta_error(400, str(e))
        schema = self.meta.schema
        existing = schema.deployment_for_uri(uri)
        if existing is not None and not force:  # restate: "Unchanged", the old deployment
            return self._registered(existing, 200)
        if not (force or breaking):
            self._check_service_types(manifest)
        dep_id = existing.deployment_id if existing is not None else str(DeploymentId.new())
        status = 200 if existing is not None else 201
        if dry_run:
            return self._dry_run(dep_id, uri, manifest, use_http_11, headers, status)
        await self.meta.propose(c.RegisterDeployment(
            dep_id, uri, to_json(manifest), use_http_11, sorted(headers.items())))
        return self._registered(self.meta.schema.deployments[dep_id], status)

    def _check_service_types(self, manifest: Manifest) -> None:
        for sdef in manifest.services:
            prev = self.meta.schema.services.get(sdef.name)
            if prev is not None and prev.ty != SERVICE_TY[sdef.ty]:
                raise AdminError(meta_error(
                    409, f"[META0006] detected a new service revision for '{sdef.name}' changing "
                         "the service type from previous revision. Service type cannot be "
                         "changed across revisions.", "META0006"))

    def _dry_run(self, dep_id: str, uri: str, manifest: Manifest, use_http_11: bool,
                 headers: dict[str, str], status: int) -> web.Response:
        dep = Deployment(dep_id, uri, manifest, self.clock.now_ms(), use_http_11,
                         tuple(sorted(headers.items())), 0)
        services = []
        for sdef in manifest.services:
            prev = self.meta.schema.services.get(sdef.name)
            services.append(Service(sdef.name, prev.revision + 1 if prev else 1, dep_id, sdef))
        return self._register_response(dep, services, status)

    def _registered(self, dep: Deployment, status: int) -> web.Response:
        services = [s for s in self.meta.schema.services.values()
                    if s.deployment_id == dep.deployment_id]
        return self._register_response(dep, services, status)

    @staticmethod
    def _register_response(dep: Deployment, services: list[Service], status: int) -> web.Response:
        doc = {"id": dep.deployment_id, "services": [service_json(s, dep) for s in services],
               "min_protocol_version": dep.manifest.min_protocol_version,
               "max_protocol_version": dep.manifest.max_protocol_version}
        return _json(doc, status, {"location": f"deployments/{dep.deployment_id}"})

    async def list_deployments(self, request: web.Request) -> web.Response:
        schema = self.meta.schema
        out = []
        for dep in schema.deployments.values():
            doc = _deployment_head(dep)
            doc["services"] = [{"name": s.name, "revision": s.revision}
                               for s in schema.services.values()
                               if s.deployment_id == dep.deployment_id]
            out.append(doc)
        return _json({"deployments": out})

    @staticmethod
    def _deployment_id(request: web.Request) -> str:
        raw = request.match_info["deployment"]
        reason = id_decode_error(raw, "dp", (22,))
        if reason is not None:
            raise AdminError(_text(400, f"Invalid URL: Cannot parse `deployment` with value "
                                        f"`{raw}`: {reason}"))
        return raw

    def _deployment(self, request: web.Request) -> Deployment:
        raw = self._deployment_id(request)
        dep = self.meta.schema.deployments.get(raw)
        if dep is None:
            raise AdminError(meta_error(404, f"The requested deployment '{raw}' does not exist"))
        return dep

    async def get_deployment(self, request: web.Request) -> web.Response:
        dep = self._deployment(request)
        doc = _deployment_head(dep)
        doc["services"] = [service_json(s, dep) for s in self.meta.schema.services.values()
                           if s.deployment_id == dep.deployment_id]
        return _json(doc)

    async def delete_deployment(self, request: web.Request) -> web.Response:
        self._deployment_id(request)
        if request.query.get("force", "").lower() != "true":
            return _empty(501)  # restate: graceful removal (force=false) is not implemented
        dep = self._deployment(request)
        await self.meta.propose(c.RemoveDeployment(dep.deployment_id))
        return _empty(202)

    # --- services --------------------------------------------------------------------------------

    def _service(self, name: str) -> Service:
        svc = self.meta.schema.services.get(name)
        if svc is None:
            raise AdminError(meta_error(404, f"The requested service '{name}' does not exist"))
        return svc

    def _service_doc(self, svc: Service) -> JsonObj:
        return service_json(svc, self.meta.schema.deployments.get(svc.deployment_id))

    async def list_services(self, request: web.Request) -> web.Response:
        return _json({"services": [self._service_doc(s)
                                   for s in self.meta.schema.services.values()]})

    async def get_service(self, request: web.Request) -> web.Response:
        return _json(self._service_doc(self._service(request.match_info["service"])))

    async def list_handlers(self, request: web.Request) -> web.Response:
        doc = self._service_doc(self._service(request.match_info["service"]))
        return _json({"handlers": doc["handlers"]})

    async def get_handler(self, request: web.Request) -> web.Response:
        svc = self._service(request.match_info["service"])
        name = request.match_info["handler"]
        for h in self._service_doc(svc)["handlers"]:
            if h["name"] == name:
                return _json(h)
        return meta_error(404, f"The requested handler '{name}' on service '{svc.name}' does "
                               "not exist")

    async def modify_state(self, request: web.Request) -> web.Response:
        name = request.match_info["service"]
        body = await _json_body(request)
        key = _field(body, "object_key", str, required=True)
        new_state = _field(body, "new_state", dict, required=True)
        sets = []
        for k, v in new_state.items():
            if not isinstance(v, list) or not all(isinstance(b, int) and 0 <= b < 256 for b in v):
                raise AdminError(_text(422, "Failed to deserialize the JSON body into the target "
                                            f"type: new_state.{k}: expected a list of bytes"))
            sets.append((k.encode(), bytes(v)))
        svc = self.meta.schema.services.get(name)
        if svc is not None and svc.ty == "service":
            return meta_error(400, "Cannot modify state for service type Service")
        if svc is None and sets:  # clearing a removed service's state stays possible
            return meta_error(404, f"The requested service '{name}' does not exist")
        # `version` (optimistic concurrency on the state's hash) is accepted but not checked.
        cmd = c.StateMutation(name, key, sets=sets, clear_all=True)
        await self.partitions.partition_for_key(partition_key_for(name, key)).propose(cmd)
        return _empty(202)

    # --- invocations -----------------------------------------------------------------------------

    @staticmethod
    def _invocation_id(request: web.Request) -> str:
        raw = request.match_info["invocation"]
        reason = invocation_id_error(raw)
        if reason is not None:
            raise AdminError(meta_error(
                400, f"The request field 'invocation_id' is invalid. Reason: {reason}"))
        return raw

    async def invocation_op(self, request: web.Request) -> web.Response:
        inv_id = self._invocation_id(request)
        op = request.match_info["op"]
        if op not in _OPS:
            return _empty(404)
        proc = self.partitions.partition_for_id(inv_id)
        decisions: list[_Decision] = []

        def precheck(state: m.PartitionState) -> str | None:
            # Decided on the state the command is appended against, so the answer and the
            # log agree; no-ops (already paused, ...) are not logged at all.
            d = _decide(op, inv_id, state.invocations.get(inv_id))
            decisions.append(d)
            return None if d.append else "nothing to do"

        try:
            actions = await proc.propose(_OPS[op](inv_id), precheck)
        except Refused:
            if not decisions:
                return meta_error(503, "Error when routing the request internally.")
            return decisions[-1].response()
        if any(isinstance(act, a.Rejected) for act in actions):
            # An earlier command of the same batch changed the invocation: judge it again.
            return _decide(op, inv_id, proc.state.invocations.get(inv_id)).response()
        return decisions[-1].response()

    async def delete_invocation(self, request: web.Request) -> web.Response:
        inv_id = self._invocation_id(request)
        mode = request.query.get("mode", "cancel")
        if mode.lower() not in ("cancel", "kill", "purge") or (mode != mode.lower()
                                                              and mode != mode.capitalize()):
            return _text(400, f"Failed to deserialize query string: mode: unknown variant "
                              f"`{mode}`, expected one of `Cancel`, `cancel`, `Kill`, `kill`, "
                              "`Purge`, `purge`")
        # Deprecated API: fire and forget, 202 whatever the invocation's state (as restate).
        await self.partitions.propose_to(inv_id, _OPS[mode.lower()](inv_id))
        return _empty(202)


_OPS: Final[dict[str, Callable[[str], c.Command]]] = {
    "cancel": c.Cancel, "kill": c.Kill, "purge": c.Purge, "pause": c.Pause, "resume": c.Resume,
}


@dataclasses.dataclass(frozen=True)
class _Decision:
    status: int
    message: str | None = None  # an error answer
    append: bool = False  # the command has an effect: log it

    def response(self) -> web.Response:
        if self.message is not None:
            return meta_error(self.status, self.message)
        return _empty(self.status)


_LIVE: Final = (m.INVOKED, m.SUSPENDED, m.BACKING_OFF, m.PAUSED)


def _decide(op: str, inv_id: str, inv: m.Invocation | None) -> _Decision:
    """restate's answer to `op` on an invocation in this state (lifecycle/*.rs in restate)."""
    if inv is None:
        return _Decision(404, f"The requested invocation '{inv_id}' does not exist")
    st = inv.status
    completed = _Decision(409, f"The invocation '{inv_id}' was already completed.")
    if op == "cancel":
        if st == m.COMPLETED:
            return completed
        # Not started yet: ends at once (200); running: the cancel signal is appended (202).
        return _Decision(200 if st in (m.SCHEDULED, m.INBOXED) else 202, append=True)
    if op == "kill":
        return completed if st == m.COMPLETED else _Decision(200, append=True)
    if op == "purge":
        if st != m.COMPLETED:
            return _Decision(409, f"The invocation '{inv_id}' is not yet completed.")
        return _Decision(200, append=True)
    if op == "pause":
        if st == m.PAUSED:
            return _Decision(200)
        if st in (m.INVOKED, m.SUSPENDED, m.BACKING_OFF):
            return _Decision(202, append=True)
        return _Decision(409, f"The invocation '{inv_id}' is not running, cannot be paused.")
    # resume
    if st in (m.PAUSED, m.BACKING_OFF):
        return _Decision(200, append=True)
    if st in _LIVE:  # running or suspended: restate answers Ok (it re-invokes a suspended one)
        return _Decision(200)
    if st == m.COMPLETED:
        return _Decision(409, f"The invocation '{inv_id}' is completed, cannot be resumed.")
    return _Decision(425, f"The invocation '{inv_id}' is either inboxed or scheduled, cannot "
                          "be resumed.")


# --- app -----------------------------------------------------------------------------------------


def admin_token(extra: Mapping[str, str]) -> str | None:
    """The bearer token the admin API asks for: `RSTQ_ADMIN_TOKEN`, else the server config's
    `extra["admin_token"]`; None: no token asked."""
    return os.environ.get("RSTQ_ADMIN_TOKEN") or extra.get("admin_token") or None


def _middleware(token: str | None) -> Any:
    @web.middleware
    async def middleware(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
        if token is not None and request.path not in _HEALTH_PATHS:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                resp = meta_error(401, "missing or invalid credentials: "
                                       "expected 'Authorization: Bearer <token>'")
                resp.headers["www-authenticate"] = "Bearer"
                return resp
        try:
            return await handler(request)
        except AdminError as e:
            return e.response
        except web.HTTPException as e:  # unknown route or method: an empty body, as restate
            if e.status in (404, 405):
                return _empty(e.status)
            raise
        except Exception:  # a bug must cost one request, not the listener
            log.exception("admin request %s %s failed", request.method, request.path)
            return meta_error(500, "internal server error")

    return middleware


def make_admin_app(admin: Admin, *, token: str | None,
                   plugins: Sequence[Plugin] = ()) -> web.Application:
    app = web.Application(middlewares=[_middleware(token)])
    r = app.router
    r.add_get("/health", admin.health, allow_head=False)
    r.add_get("/version", admin.version, allow_head=False)
    r.add_get("/metrics", admin.metrics_text, allow_head=False)
    r.add_post("/deployments", admin.register_deployment)
    r.add_get("/deployments", admin.list_deployments, allow_head=False)
    r.add_get("/deployments/{deployment}", admin.get_deployment, allow_head=False)
    r.add_delete("/deployments/{deployment}", admin.delete_deployment)
    r.add_get("/services", admin.list_services, allow_head=False)
    r.add_get("/services/{service}", admin.get_service, allow_head=False)
    r.add_get("/services/{service}/handlers", admin.list_handlers, allow_head=False)
    r.add_get("/services/{service}/handlers/{handler}", admin.get_handler, allow_head=False)
    r.add_post("/services/{service}/state", admin.modify_state)
    r.add_patch("/invocations/{invocation}/{op}", admin.invocation_op)
    r.add_delete("/invocations/{invocation}", admin.delete_invocation)
    for plugin in plugins:  # e.g. POST /query (rstq.query), GET /traces/{id}
        plugin.admin_routes(app)
    _add_versioned_routes(app)
    return app


def _add_versioned_routes(app: web.Application) -> None:
    """Every route registered so far also under `/v2` … `/v4`; `/v1/...` is refused (400)."""
    routes = [(route.method, route.resource.canonical, route.handler)
              for route in app.router.routes() if route.resource is not None]
    for n in range(MIN_API_VERSION, MAX_API_VERSION + 1):
        for method, path, handler in routes:
            app.router.add_route(method, f"/v{n}{path}", handler)

    async def unsupported(request: web.Request) -> web.Response:
        return web.Response(status=400, text=(
            f"Unsupported Admin API version V1. This server supports versions between "
            f"V{MIN_API_VERSION} and V{MAX_API_VERSION}."))

    app.router.add_route("*", "/v1/{tail:.*}", unsupported)  # /v0/...: 404, as restate-server


async def start_admin(admin: Admin, bind: str, *, token: str | None,
                      plugins: Sequence[Plugin] = (),
                      sock: socket.socket | None = None) -> web.AppRunner:
    runner = await start_runner(make_admin_app(admin, token=token, plugins=plugins), bind,
                                sock)
    log.info("admin API listening on %s (port %d)", bind, bound_port(runner))
    return runner
