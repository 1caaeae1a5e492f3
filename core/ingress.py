"""The ingress HTTP API (default 127.0.0.1:8080), following restate-server 1.7 to the byte.

Routes (restate-protocol.md section 6.1; `crates/ingress-http/src/handler` in restate):

- `/{Service}/{handler}[/send]`, `/{Object|Workflow}/{key}/{handler}[/send]` (GET or POST):
  call (waits for the result) or send (202 with the invocation id; `?delay=` schedules it);
- `POST /restate/awakeables|a/{id}/resolve|reject`;
- `GET /restate/invocation/{id}/attach|output`,
  `GET /restate/invocation/{Svc}[/{key}]/{handler}/{idempotency-key}/attach|output`,
  `GET /restate/workflow/{Wf}/{key}/attach|output`, and the 1.7 verbs
  `/restate/call|send/{Svc}[/{key}]/{handler}`, `GET /restate/attach|output/{id}`;
- `GET /restate/health`.

Errors are JSON `{"code", "message", "source"}` with header `x-restate-error-source`; the
messages are restate's, so clients (and the compat suite) cannot tell the servers apart. Path
parsing mirrors restate's order of checks, which decides what an ambiguous request gets.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from rstq.core import actions as a
from rstq.core import commands as c
from rstq.core import journal
from rstq.core.clock import Clock
from rstq.core.discovery import HandlerDef, InputSpec
from rstq.core.ids import (
    idempotent_invocation_id,
    new_invocation_id,
    parse_awakeable,
    workflow_invocation_id,
)
from rstq.core.model import COMPLETED, SCHEDULED, Invocation, PartitionState
from rstq.core.plugins import TraceSource
from rstq.core.ports import Limits, Partitions, Result, SchemaSource, Waiters
from rstq.core.processor import Refused
from rstq.core.schema import Service, retention_ms
from rstq.protocol import trace_ids as tids
from rstq.protocol.ids import BASE62_ALPHABET, IdError

__all__ = [
    "Ingress",
    "friendly_duration",
    "id_decode_error",
    "make_ingress_app",
    "parse_bind",
    "parse_duration",
    "rfc3339_nanos",
    "start_ingress",
]

log = logging.getLogger(__name__)

APPLICATION_JSON: Final = "application/json"
X_RESTATE_ID: Final = "x-restate-id"
X_ERROR_SOURCE: Final = "x-restate-error-source"
IDEMPOTENCY_KEY: Final = "idempotency-key"
IDEMPOTENCY_EXPIRES: Final = "idempotency-expires"
LIMIT_KEY_HEADER: Final = "x-restate-limit-key"
# Not forwarded to the handler (restate's parse_headers); everything else is, as sent.
_DROPPED_HEADERS: Final = frozenset({"connection", "host", IDEMPOTENCY_KEY, IDEMPOTENCY_EXPIRES})
INBOX_FULL: Final = "inbox full"
NOT_READY: Final = 470  # restate's "the invocation exists but has not completed yet"
_REASONS: Final = {NOT_READY: "Not Ready"}

MSG_BAD_SERVICE_PATH: Final = (
    "bad path, expected either /:service-name/:handler or /:object-name/:object-key/:handler")
MSG_BAD_AWAKEABLES_PATH: Final = (
    "bad path, expected either /restate/awakeables/:id/resolve or /restate/awakeables/:id/reject")
MSG_BAD_INVOCATION_PATH: Final = (
    "bad path, expected either /restate/invocation/:invocation_id/output or "
    "/restate/invocation/:invocation_id/attach or "
    "/restate/invocation/:invocation_target/:idempotency_key/output or "
    "/restate/invocation/:invocation_target/:idempotency_key/attach")
MSG_BAD_WORKFLOW_PATH: Final = (
    "bad path, expected either /restate/workflow/:workflow_name/:workflow_key/output or "
    "/restate/workflow/:workflow_name/:workflow_key/attach")
MSG_BAD_RESTATE_API_PATH: Final = (
    "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler, "
    "/restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id, "
    "/restate/output/:invocation_id, or /restate/lookup")
MSG_WORKFLOW_ALREADY_INVOKED: Final = "the workflow method was already invoked"


# --- errors --------------------------------------------------------------------------------------


class IngressError(Exception):
    """A request the ingress answers with an error of source "ingress" (restate HandlerError)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found() -> IngressError:
    return IngressError(404, "not found")


def method_not_allowed() -> IngressError:
    return IngressError(405, "method not allowed")


def _json_bytes(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    # aiohttp has no reason phrase for 470; an explicit one keeps the status line valid.
    return web.Response(status=status, reason=_REASONS.get(status), body=body, headers=headers)


def error_response(status: int, message: str, source: str = "ingress",
                   headers: dict[str, str] | None = None) -> web.Response:
    hs = dict(headers or {})
    hs[X_ERROR_SOURCE] = source
    hs["content-type"] = APPLICATION_JSON
    body = _json_bytes({"code": status, "message": message, "source": source})
    return _response(status, body, hs)


def failure_response(code: int, message: str, headers: dict[str, str],
                     stacktrace: str = "") -> web.Response:
    """A terminal invocation failure: HTTP status = its code when that is a status, else 500."""
    status = code if 100 <= code <= 999 else 500
    hs = {**headers, X_ERROR_SOURCE: "invocation", "content-type": APPLICATION_JSON}
    doc: dict[str, object] = {"code": code, "message": message}
    if stacktrace:  # restate's InvocationError carries the last attempt's stacktrace
        doc["stacktrace"] = stacktrace
    doc["source"] = "invocation"
    return _response(status, _json_bytes(doc), hs)


# --- identifiers, durations, timestamps (restate's formats) --------------------------------------

_RESOURCE_TYPES: Final = frozenset({"inv", "dp", "sub", "prom", "sign", "snap", "mut", "vq"})
_B62: Final = frozenset(BASE62_ALPHABET)


def id_decode_error(s: str, resource: str, widths: tuple[int, ...]) -> str | None:
    """Why restate would refuse `s` as an id of `resource` (its IdDecodeError text), or None.

    `widths` are the base62 fields after the version ("inv": u64 then u128 = 11, 22 chars).
    Callers still parse with our codec; this only reproduces restate's reasons and order."""
    if not s:
        return "bad length"
    prefix, sep, rest = s.partition("_")
    if not sep:
        return "bad format"
    if prefix not in _RESOURCE_TYPES:
        return f"unrecognized resource type: {prefix}"
    if not rest:
        return "bad length"
    if rest[0] != "1":
        return "unrecognized codec version"
    if prefix != resource:
        return "id doesn't match the expected type"
    body = rest[1:]
    for i, width in enumerate(widths):
        chunk = body[:width]
        if len(chunk) < width:
            return "bad length"
        if not set(chunk) <= _B62 or _base62_overflows(chunk, 64 if i + 1 < len(widths) else 128):
            return "base62 decode error"
        body = body[width:]
    return "bad length" if body else None


def _base62_overflows(chunk: str, bits: int) -> bool:
    n = 0
    for ch in chunk:
        n = n * 62 + BASE62_ALPHABET.index(ch)
    return n >= 1 << bits


def invocation_id_error(s: str) -> str | None:
    return id_decode_error(s, "inv", (11, 22))


def rfc3339_nanos(ms: int) -> str:
    """`2026-11-25T15:13:33.541000000Z`: restate's humantime rendering (send executionTime)."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}000000Z"


def rfc3339_auto(ms: int) -> str:
    """`2026-11-26T15:13:23.556+00:00`: chrono's to_rfc3339 (the idempotency-expires header)."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    frac = f".{ms % 1000:03d}" if ms % 1000 else ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "+00:00"


_FRIENDLY_UNITS: Final = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                          ("ms", 1))


def friendly_duration(ms: int) -> str:
    """jiff's compact "friendly" span, largest unit days: `1d`, `1m 30s`, `500ms`, `0s`."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in _FRIENDLY_UNITS:
        n, ms = divmod(ms, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts)


_UNIT_MS: Final = {
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), 604_800_000.0),
    **dict.fromkeys(("d", "day", "days"), 86_400_000.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600_000.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000.0),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1000.0),
    **dict.fromkeys(("ms", "msec", "msecs", "millisecond", "milliseconds"), 1.0),
    **dict.fromkeys(("us", "µs", "usec", "usecs", "microsecond", "microseconds"), 1e-3),
    **dict.fromkeys(("ns", "nsec", "nsecs", "nanosecond", "nanoseconds"), 1e-6),
}
_FRIENDLY_TOKEN: Final = re.compile(r"\s*(\d+)(?:\.(\d+))?\s*([a-zµ]+)\s*,?", re.IGNORECASE)
_ISO: Final = re.compile(
    r"P(?:(\d+(?:[.,]\d+)?)W)?(?:(\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(\d+(?:[.,]\d+)?)H)?(?:(\d+(?:[.,]\d+)?)M)?(?:(\d+(?:[.,]\d+)?)S)?)?",
    re.IGNORECASE)
_ISO_MS: Final = (604_800_000, 86_400_000, 3_600_000, 60_000, 1000)
_FRIENDLY_ERR: Final = 'failed to parse input in the "friendly" duration format: '
_NO_UNIT: Final = "expected to find unit designator suffix (e.g., `years` or `secs`) after " \
    "parsing integer"


def parse_duration(text: str) -> int:
    """Milliseconds of a friendly (`1s`, `60 sec`, `1h 2m`) or ISO 8601 (`PT60S`) duration.

    Raises ValueError with jiff's wording for the cases restate users meet."""
    if not text:
        raise ValueError("an empty string is not a valid duration in either the ISO 8601 "
                         "format or Jiff's \"friendly\" format")
    sign, body = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    ms = _parse_iso(body) if body[:1] in ("P", "p") else _parse_friendly(body)
    if sign == "-" and ms > 0:
        raise ValueError("negative signed durations cannot be converted to an unsigned duration")
    return round(ms)


def _parse_iso(body: str) -> float:
    m = _ISO.match(body)
    if m is None or m.end() <= 1 or body[m.end() - 1:m.end()] in ("T", "t"):
        raise ValueError(f"failed to parse {body!r} as an ISO 8601 duration")
    if m.end() != len(body):
        raise ValueError(f"parsed value '{body[:m.end()]}', but unparsed input "
                         f"\"{body[m.end():]}\" remains (expected no unparsed input)")
    return sum(float(g.replace(",", ".")) * size
               for g, size in zip(m.groups(), _ISO_MS, strict=True) if g is not None)


def _parse_friendly(body: str) -> float:
    if not body[:1].isdigit():
        raise ValueError(_FRIENDLY_ERR + "expected duration to start with a unit value (a "
                         "decimal integer) after an optional sign, but no integer was found")
    total, pos = 0.0, 0
    while pos < len(body):
        m = _FRIENDLY_TOKEN.match(body, pos)
        if m is None:
            if re.match(r"\s*\d+(?:\.\d+)?\s*$", body[pos:]):
                raise ValueError(_FRIENDLY_ERR + _NO_UNIT)
            raise ValueError(_FRIENDLY_ERR + f"unparsed input {body[pos:]!r}")
        unit = _UNIT_MS.get(m.group(3).lower())
        if unit is None:
            raise ValueError(_FRIENDLY_ERR + _NO_UNIT)
        total += float(f"{m.group(1)}.{m.group(2) or 0}") * unit
        pos = m.end()
    return total


def _delay_ms(query: list[tuple[str, str]]) -> int | None:
    for k, v in query:
        if k.lower() == "delay":
            try:
                return parse_duration(v)
            except ValueError as e:
                raise IngressError(
                    400, f"bad delay query parameter, must be a ISO8601 duration: {e}") from None
    return None


def _decode_key(raw: str) -> str:
    """Percent-decode a path segment as restate's urlencoding::decode (UTF-8, no `+`)."""
    data = urllib.parse.unquote_to_bytes(raw)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        error_len = "None" if e.reason == "unexpected end of data" else f"Some({e.end - e.start})"
        raise IngressError(
            400, f"bad path, cannot decode key: FromUtf8Error {{ bytes: {list(data)}, error: "
                 f"Utf8Error {{ valid_up_to: {e.start}, error_len: {error_len} }} }}") from None


# --- input and output rules (restate's InputRules / OutputRules) ---------------------------------


@dataclass(frozen=True)
class _Rule:
    kind: str  # none | content_type | json
    content_type: str = "*/*"  # "*/*", "type/*" or "type/subtype"


def input_rules(spec: InputSpec | None) -> list[_Rule]:
    if spec is None:  # no "input" in the manifest: anything, or nothing
        return [_Rule("none"), _Rule("content_type")]
    rules = [] if spec.required else [_Rule("none")]
    if spec.content_type is not None:
        kind = "json" if spec.json_schema is not None else "content_type"
        rules.append(_Rule(kind, spec.content_type.strip()))
    return rules


def _check_rule(rule: _Rule, content_type: str | None, body: bytes) -> str | None:
    if rule.kind == "none":
        if body or content_type is not None:
            shown = "None" if content_type is None else f'Some("{content_type}")'
            return ("Expected body and content-type to be empty, but wasn't with "
                    f"content-type '{shown}'")
        return None
    if content_type is None:
        return "Empty content-type"
    if rule.content_type != "*/*":
        want_t, want_st = rule.content_type.split("/", 1)
        got = content_type.split(";", 1)[0].strip()
        got_t, slash, got_st = got.partition("/")
        if not slash or got_t != want_t or (want_st != "*" and got_st != want_st):
            return f"Content-type '{content_type}' does not match '{rule.content_type}'"
    if rule.kind == "json":
        if not body:
            return "Empty body not allowed"
        # Not in restate 1.7 (which hands the bytes to the SDK, whose parse error becomes a 500
        # from the invocation): a body that is not JSON is the caller's error, answered 400
        # here with the parser's message, before any invocation exists.
        try:
            json.loads(body)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            return f"the body is not valid JSON: {e}"
    return None


def validate_input(spec: InputSpec | None, content_type: str | None, body: bytes) -> None:
    error = "Bad configuration of the input validation rules"
    for rule in input_rules(spec):
        problem = _check_rule(rule, content_type, body)
        if problem is None:
            return
        error = problem
    raise IngressError(400, f"input validation error: {error}")


def output_content_type(handler: HandlerDef | None, empty: bool) -> str | None:
    out = handler.output if handler is not None else None
    if out is None:  # restate's default rule: JSON, but not on an empty body
        return None if empty else APPLICATION_JSON
    if out.content_type is None:
        return None
    if empty and not out.set_content_type_if_empty:
        return None
    return out.content_type


# --- request parsing -----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True)
class Target:
    service: Service
    handler_name: str
    key: str | None  # None for plain services


class Ingress:
    """The request handlers. `trace_source`: None when tracing is off (no trace ids)."""

    def __init__(self, *, partitions: Partitions, meta: SchemaSource, waiters: Waiters,
                 clock: Clock, limits: Limits, trace_source: TraceSource | None) -> None:
        self.partitions = partitions
        self.meta = meta
        self.waiters = waiters
        self.clock = clock
        self.limits = limits
        self.trace_source = trace_source

    # --- routing ---------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            response = _response(200, b"", _preflight_headers(request))
        else:
            response = await self._dispatch(request)
        response.headers.update(_cors_headers(request))
        return response

    async def _dispatch(self, request: web.Request) -> web.Response:
        try:
            route = self.route(request.rel_url.raw_path)
            return await route(request)
        except IngressError as e:
            return error_response(e.status, e.message)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "cannot read body: length limit exceeded")
        except Refused as e:  # the partition is stopping or failed: nothing was stored
            return error_response(503, f"internal routing error: {e}. You may safely retry "
                                       "the request.")
        except Exception:  # a bug must cost one request, not the listener
            log.exception("ingress request %s %s failed", request.method, request.path)
            return error_response(500, "internal server error")

    def route(self, path: str) -> Handler:
        """The handler for `path`, or IngressError, in restate's parse_path order."""
        if not 2 <= path.count("/") <= 7:
            raise IngressError(400, f"bad path: {path}")
        segments = path.split("/")[1:]
        first, rest = segments[0], segments[1:]
        if first == "restate":
            return self._route_restate(rest)
        if first == "openapi":
            raise not_found()  # restate does not serve it either (1.7)
        return self._service_route(first, rest, None)

    def _route_restate(self, parts: list[str]) -> Handler:
        verb, rest = parts[0], parts[1:]
        if verb == "health":
            return self.health
        if verb in ("awakeables", "a"):
            return self._awakeable_route(rest)
        if verb == "invocation":
            return self._invocation_route(rest)
        if verb == "workflow":
            return self._workflow_route(rest)
        if verb in ("call", "send"):
            if not rest:
                raise IngressError(400, MSG_BAD_RESTATE_API_PATH)
            return self._service_route(rest[0], rest[1:], verb)
        if verb == "scope":
            raise IngressError(400, "scoped invocations require vqueues to be enabled")
        if verb in ("attach", "output") and len(rest) == 1:
            inv_id = self._parse_invocation_id(rest[0])
            return self._query_route(verb, lambda: inv_id)
        if verb in ("attach", "output") and len(rest) > 1:
            raise IngressError(400, MSG_BAD_RESTATE_API_PATH)
        raise not_found()  # also attach/output by target body and lookup: not implemented

    def _service_route(self, name: str, parts: list[str], verb: str | None) -> Handler:
        service = self.meta.schema.services.get(name)
        if service is None:
            raise IngressError(404, f"service '{name}' not found, make sure to register the "
                                    "service before calling it.")
        bad = MSG_BAD_SERVICE_PATH if verb is None else MSG_BAD_RESTATE_API_PATH
        it = iter(parts)
        key = None
        if service.ty != "service":
            key = _decode_key(_next_or(it, bad))
        handler = _next_or(it, bad)
        last = next(it, None)
        if verb is None:
            if last not in (None, "send"):
                raise IngressError(400, bad)
            send = last == "send"
            if next(it, None) is not None:
                raise IngressError(400, bad)
        else:
            if last is not None:
                raise IngressError(400, bad)
            send = verb == "send"
        target = Target(service, handler, key)
        return lambda request: self.invoke(request, target, send)

    def _awakeable_route(self, parts: list[str]) -> Handler:
        if len(parts) < 2:
            raise IngressError(400, MSG_BAD_AWAKEABLES_PATH)
        awakeable_id, action = parts[0], parts[1]
        if action not in ("resolve", "reject"):
            raise not_found()
        return lambda request: self.complete_awakeable(request, awakeable_id, action)

    def _invocation_route(self, parts: list[str]) -> Handler:
        if len(parts) < 2:
            raise IngressError(400, MSG_BAD_INVOCATION_PATH)
        if len(parts) == 2:
            raw_id, last = parts
            if last not in ("attach", "output"):
                raise not_found()
            # restate parses the id only once it knows the verb
            inv_id = self._parse_invocation_id(raw_id)
            return self._query_route(last, lambda: inv_id)
        name = parts[0]
        service = self.meta.schema.services.get(name)
        if service is None:
            raise IngressError(404, f"service '{name}' not found, make sure to register the "
                                    "service before calling it.")
        it = iter(parts[1:])
        key = None
        if service.ty != "service":
            key = _decode_key(_next_or(it, MSG_BAD_INVOCATION_PATH))
        handler = _next_or(it, MSG_BAD_INVOCATION_PATH)
        idem = _next_or(it, MSG_BAD_INVOCATION_PATH)
        last = _next_or(it, MSG_BAD_INVOCATION_PATH)
        if last not in ("attach", "output"):
            raise not_found()
        return self._query_route(
            last, lambda: idempotent_invocation_id(name, key, handler, idem))

    def _workflow_route(self, parts: list[str]) -> Handler:
        if len(parts) < 3:
            raise IngressError(400, MSG_BAD_WORKFLOW_PATH)
        name, key, last = parts[0], _decode_key(parts[1]), parts[2]
        if last not in ("attach", "output"):
            raise not_found()
        return self._query_route(last, lambda: workflow_invocation_id(name, key))

    def _query_route(self, verb: str, target_id: Callable[[], str]) -> Handler:
        if verb == "attach":
            return lambda request: self.attach(request, target_id())
        return lambda request: self.output(request, target_id())

    @staticmethod
    def _parse_invocation_id(raw: str) -> str:
        reason = invocation_id_error(raw)
        if reason is not None:
            raise IngressError(400, f"bad invocation id '{raw}': {reason}")
        return raw

    # --- /restate/health -------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed()
        names = list(self.meta.schema.services)
        return _response(200, _json_bytes({"services": names}),
                         {"content-type": APPLICATION_JSON})

    # --- calls and sends -------------------------------------------------------------------------

    async def invoke(self, request: web.Request, target: Target, send: bool) -> web.Response:
        service, handler_name = target.service, target.handler_name
        handler = service.handler(handler_name)
        if handler is None:
            raise IngressError(404, f"the service '{service.name}' exists, but the handler "
                                    f"'{handler_name}' was not found, check that the handler "
                                    "exists in the latest registered service version.")
        settings = service.settings(handler_name)
        if settings.ingress_private:
            raise IngressError(400, "the invoked service is not public")
        idem = request.headers.get(IDEMPOTENCY_KEY)
        workflow_run = service.ty == "workflow" and service.handler_ty(handler_name) == "workflow"
        if idem is not None and workflow_run:
            raise IngressError(400, "cannot use the idempotency key with workflow handlers. The "
                                    "handler invocation will already be idempotent by the "
                                    "workflow key itself.")
        if request.method not in ("GET", "POST"):
            raise method_not_allowed()
        body = await request.read()
        validate_input(handler.input, request.headers.get("content-type"), body)
        query = urllib.parse.parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        delay = _delay_ms(query)
        if request.headers.get(LIMIT_KEY_HEADER) or any(k.lower() == "limit-key" and v
                                                        for k, v in query):
            raise IngressError(400, "limit-key requires a scope to be set")
        if delay is not None and not send:
            raise IngressError(400, "cannot use the delay query parameter with calls. The delay "
                                    "is supported only with sends")
        invoke = self._build_invoke(request, target, body, idem, workflow_run, delay)
        if send:
            return await self._send(invoke)
        return await self._call(invoke, workflow_run)

    def _build_invoke(self, request: web.Request, target: Target, body: bytes,
                      idem: str | None, workflow_run: bool, delay: int | None) -> c.Invoke:
        service, handler = target.service, target.handler_name
        now = self.clock.now_ms()
        if workflow_run:
            assert target.key is not None
            inv_id = workflow_invocation_id(service.name, target.key)
        elif idem is not None:
            inv_id = idempotent_invocation_id(service.name, target.key, handler, idem)
        else:
            inv_id = new_invocation_id(service.name, target.key, now)
        completion_ms, journal_ms = retention_ms(service, handler, idem is not None,
                                                 workflow_run)
        deployment = self.meta.schema.deployments.get(service.deployment_id)
        tracing = self.trace_source  # None: off, no ids
        trace = (tracing.invoke_trace(inv_id, request.headers.get("traceparent"))
                 if tracing is not None else tids.UNTRACED)
        return c.Invoke(
            invocation_id=inv_id,
            service=service.name,
            handler=handler,
            key=target.key or "",
            service_ty=service.ty,
            handler_ty=service.handler_ty(handler),
            input=body,
            headers=_forwarded_headers(request),
            idempotency_key=idem,
            execute_at_ms=now + delay if delay else 0,
            deployment_id=service.deployment_id,
            protocol_version=deployment.protocol_version if deployment is not None else 0,
            completion_retention_ms=completion_ms,
            journal_retention_ms=journal_ms,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            parent_span_id=trace.parent_span_id,
        )

    async def _propose_invoke(self, invoke: c.Invoke) -> bool:
        """Propose; True when the id already existed (a duplicate)."""
        limit, lock = self.limits.max_inbox, (invoke.service, invoke.key)

        def inbox_room(state: PartitionState) -> str | None:  # exclusive targets queue per key
            queue = state.inboxes.get(lock)
            if (queue is not None and len(queue) >= limit and invoke.handler_ty != "shared"
                    and invoke.invocation_id not in state.invocations):
                return f"{INBOX_FULL} for {invoke.service}/{invoke.key} ({limit} invocations)"
            return None

        try:
            actions = await self.partitions.partition_for_id(invoke.invocation_id).propose(
                invoke, inbox_room)
        except Refused as e:
            if str(e).startswith(INBOX_FULL):
                raise IngressError(429, f"{e}; retry later") from None
            raise IngressError(503, f"internal routing error: {e}. If the request has an "
                                    "'idempotency-key', it can be safely retried, otherwise "
                                    "submitting it again may result in executing the "
                                    "invocation twice.") from None
        return any(isinstance(act, a.InvokeOutcome) and act.duplicate for act in actions)

    async def _send(self, invoke: c.Invoke) -> web.Response:
        inv_id = invoke.invocation_id
        duplicate = await self._propose_invoke(invoke)
        doc: dict[str, str] = {"invocationId": inv_id}
        execute_at = invoke.execute_at_ms or None
        if duplicate:
            inv = self._invocation(inv_id)
            execute_at = inv.execute_at if inv is not None and inv.status == SCHEDULED else None
        if execute_at:
            doc["executionTime"] = rfc3339_nanos(execute_at)
        doc["status"] = "PreviouslyAccepted" if duplicate else "Accepted"
        return _response(202, _json_bytes(doc),
                         {"content-type": APPLICATION_JSON, X_RESTATE_ID: inv_id})

    async def _call(self, invoke: c.Invoke, workflow_run: bool) -> web.Response:
        inv_id = invoke.invocation_id
        fut = self.waiters.wait_result(inv_id)  # before proposing: the result may come at once
        try:
            if await self._propose_invoke(invoke):
                if workflow_run:  # restate answers a second run with a failure, not the result
                    return failure_response(409, MSG_WORKFLOW_ALREADY_INVOKED,
                                            {X_RESTATE_ID: inv_id})
                inv = self._invocation(inv_id)
                if inv is not None and inv.status == COMPLETED:
                    return self._stored_result(inv)
            return self._live_result(inv_id, await self._await(fut))
        finally:
            self.waiters.forget_waiter(inv_id, fut)

    # --- awakeables ------------------------------------------------------------------------------

    async def complete_awakeable(self, request: web.Request, awakeable_id: str,
                                 action: str) -> web.Response:
        if request.method != "POST":
            raise method_not_allowed()
        body = await request.read()
        inv_id, idx = _parse_signal_id(awakeable_id)
        if action == "resolve":
            entry_type, raw = journal.awakeable_resolution(idx, body, None)
        else:
            failure = (500, body.decode("utf-8", "replace"))
            entry_type, raw = journal.awakeable_resolution(idx, None, failure)
        try:
            # An unknown or finished target is not an error here (restate answers 202 too).
            await self.partitions.propose_to(inv_id, c.Notify(inv_id, entry_type, raw))
        except Refused as e:
            raise IngressError(503, f"internal routing error: {e}. Submitting the request "
                                    "again may result in executing the operation twice.") from None
        return _response(202, b"", {})

    # --- attach and output -----------------------------------------------------------------------

    async def attach(self, request: web.Request, inv_id: str) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed()
        inv = self._invocation(inv_id)
        if inv is None:  # restate answers this as the invocation's own (404) failure
            return failure_response(404, "not found", {X_RESTATE_ID: inv_id})
        if inv.status == COMPLETED:
            return self._stored_result(inv)
        # No await since the look-up: the completion cannot slip between it and the waiter.
        fut = self.waiters.wait_result(inv_id)
        try:
            return self._live_result(inv_id, await self._await(fut))
        finally:
            self.waiters.forget_waiter(inv_id, fut)

    async def output(self, request: web.Request, inv_id: str) -> web.Response:
        if request.method != "GET":
            raise method_not_allowed()
        inv = self._invocation(inv_id)
        if inv is None:
            raise IngressError(404, "invocation not found")
        if inv.status != COMPLETED:
            raise IngressError(NOT_READY, "the invocation exists but has not completed yet")
        return self._stored_result(inv)

    # --- answers ---------------------------------------------------------------------------------

    def _invocation(self, inv_id: str) -> Invocation | None:
        return self.partitions.partition_for_id(inv_id).state.invocations.get(inv_id)

    @staticmethod
    async def _await(fut: Awaitable[Result]) -> Result:
        try:
            return await fut
        except Refused as e:  # the server stopped while we waited
            raise IngressError(503, f"internal routing error: {e}. You may safely retry the "
                                    "request.") from None

    def _live_result(self, inv_id: str, result: Result) -> web.Response:
        inv = self._invocation(inv_id)
        service = inv.service if inv is not None else ""
        handler = inv.handler if inv is not None else ""
        return self._answer(inv_id, service, handler, result.value, result.failure, {},
                            result.stacktrace)

    def _stored_result(self, inv: Invocation) -> web.Response:
        headers: dict[str, str] = {}
        if inv.completed_at is not None and inv.completion_retention_ms > 0:
            headers[IDEMPOTENCY_EXPIRES] = rfc3339_auto(
                inv.completed_at + inv.completion_retention_ms)
        return self._answer(inv.invocation_id, inv.service, inv.handler, inv.output_value,
                            inv.output_failure, headers, inv.output_stacktrace)

    def _answer(self, inv_id: str, service_name: str, handler_name: str, value: bytes | None,
                failure: tuple[int, str] | None, extra: dict[str, str],
                stacktrace: str = "") -> web.Response:
        headers = {X_RESTATE_ID: inv_id, **extra}
        if failure is not None:
            return failure_response(failure[0], failure[1], headers, stacktrace)
        # The content type comes from the latest revision of the handler, as in restate.
        service = self.meta.schema.services.get(service_name)
        handler = service.handler(handler_name) if service is not None else None
        if handler is None:
            raise not_found()
        body = value or b""
        ctype = output_content_type(handler, not body)
        if ctype is not None:
            headers["content-type"] = ctype
        return _response(200, body, headers)


def _cors_headers(request: web.Request) -> dict[str, str]:
    """restate's ingress CORS layer (tower-http `very_permissive`): any origin, credentials."""
    headers = {"vary": "origin, access-control-request-method, access-control-request-headers",
               "access-control-allow-credentials": "true"}
    origin = request.headers.get("origin")
    if origin is not None:
        headers["access-control-allow-origin"] = origin
    return headers


def _preflight_headers(request: web.Request) -> dict[str, str]:
    headers = {"access-control-allow-methods": request.headers["access-control-request-method"]}
    wanted = request.headers.get("access-control-request-headers")
    if wanted is not None:
        headers["access-control-allow-headers"] = wanted
    return headers


def _next_or(it: Iterator[str], message: str) -> str:
    value = next(it, None)
    if value is None:
        raise IngressError(400, message)
    return value


def _parse_signal_id(awakeable_id: str) -> tuple[str, int]:
    """(invocation id, signal index) of a `sign_1…` id; restate's error text otherwise."""
    if awakeable_id.startswith("sign_1"):
        try:
            return parse_awakeable(awakeable_id)
        except IdError:
            pass
    # Like restate, a non-signal id is read as a legacy `prom_1` id to word the error.
    reason = id_decode_error(awakeable_id, "prom", ())
    if reason is None or awakeable_id.startswith("prom_"):
        # prom_1 ids complete journal entries of protocol <= v3, which rstq never speaks.
        reason = "legacy awakeable ids (protocol <= v3) are not supported"
    raise IngressError(400, f"bad awakeable id '{awakeable_id}': {reason}")


def _forwarded_headers(request: web.Request) -> list[tuple[str, str]]:
    """x-restate-ingress-path first, then the request's headers (restate's parse_headers)."""
    path = request.rel_url.raw_path
    if request.rel_url.raw_query_string:
        path += "?" + request.rel_url.raw_query_string
    headers = [("x-restate-ingress-path", path)]
    for k, v in request.headers.items():
        name = k.lower()
        if name not in _DROPPED_HEADERS:
            headers.append((name, v))
    return headers


# --- app and listener ----------------------------------------------------------------------------


def make_ingress_app(ingress: Ingress) -> web.Application:
    # aiohttp answers bodies over client_max_size on read(); `handle` turns that into a 413.
    app = web.Application(client_max_size=ingress.limits.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", ingress.handle)
    return app


def parse_bind(bind: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:8080`); port 0 picks a free port."""
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad bind address {bind!r}, expected host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


MAX_HEAD_BYTES = 400 * 1024


async def start_runner(app: web.Application, bind: str,
                       sock: socket.socket | None = None) -> web.AppRunner:
    """Serve `app` on `bind` (or on `sock`, already bound to it: `rstq.core.listen`); the
    bound port is `bound_port(runner)`."""
    host, port = parse_bind(bind)
    # Short shutdown grace: attach requests may wait for hours, a stopping server must not.
    # Request heads up to hyper's buffer (~400 KiB, as restate-server accepts), not aiohttp's
    # 8 KiB per line: a large token or tracing header must not turn into a 400.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0,
                           max_line_size=MAX_HEAD_BYTES, max_field_size=MAX_HEAD_BYTES)
    await runner.setup()
    site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                          else web.TCPSite(runner, host, port))
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


async def start_ingress(ingress: Ingress, bind: str,
                        sock: socket.socket | None = None) -> web.AppRunner:
    runner = await start_runner(make_ingress_app(ingress), bind, sock)
    log.info("ingress listening on %s (port %d)", bind, bound_port(runner))
    return runner
