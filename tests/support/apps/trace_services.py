"""Official restate-sdk services for the tracing tests (tests/tracing).

Greeter (object: greet counts per key), Caller (object: chain = call Greeter/<name>/greet, then a
delayed send to Greeter/delayed-<key>), Steps (service: flaky fails twice in a ctx.run then
succeeds; echo returns the attempt headers; otel makes a span with the OpenTelemetry API from the
attempt's traceparent; slow sleeps in Python), Waiter (object: wait on an awakeable whose id
the shared handler `awakeable_id` tells). With RSTQ_TEST_OTLP_HTTP set, handler spans are
exported there (OTLP/HTTP, at once).
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import restate
from opentelemetry import trace
from opentelemetry.propagate import extract
from restate import Context, ObjectContext, ObjectSharedContext, Service, VirtualObject

greeter = VirtualObject("Greeter")
caller = VirtualObject("Caller")
steps = Service("Steps")
waiter = VirtualObject("Waiter")

_failures: dict[str, int] = {}
_awakeables: dict[str, str] = {}

_endpoint = os.environ.get("RSTQ_TEST_OTLP_HTTP")
if _endpoint:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    _provider = TracerProvider(resource=Resource.create({"service.name": "trace-services"}))
    _provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=f"{_endpoint}/v1/traces")))
    trace.set_tracer_provider(_provider)
tracer = trace.get_tracer("trace-services")


@greeter.handler()
async def greet(ctx: ObjectContext, name: str) -> str:
    n = (await ctx.get("count", type_hint=int) or 0) + 1
    ctx.set("count", n)
    return f"hello {name} #{n}"


@caller.handler()
async def chain(ctx: ObjectContext, name: str) -> str:
    got = await ctx.object_call(greet, key=name, arg=name)
    ctx.object_send(greet, key=f"delayed-{ctx.key()}", arg="later",
                    send_delay=timedelta(milliseconds=700))
    return got


@steps.handler()
async def flaky(ctx: Context, key: str) -> str:
    def attempt() -> str:
        n = _failures.get(key, 0)
        _failures[key] = n + 1
        if n < 2:
            raise RuntimeError(f"flaky failure {n + 1}")
        return "ok"

    return await ctx.run_typed("flaky-step", attempt)


@steps.handler()
async def echo(ctx: Context) -> dict[str, str]:
    return dict(ctx.request().attempt_headers)


@steps.handler()
async def otel(ctx: Context) -> str:
    parent = extract(dict(ctx.request().attempt_headers))
    with tracer.start_as_current_span("handler-work", context=parent) as span:
        span.set_attribute("work.kind", "test")
        return format(span.get_span_context().span_id, "016x")


@steps.handler()
async def slow(ctx: Context, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@waiter.handler()
async def wait(ctx: ObjectContext) -> str:
    awk_id, fut = ctx.awakeable(type_hint=str)
    _awakeables[ctx.key()] = awk_id
    return await fut


@waiter.handler(kind="shared")
async def awakeable_id(ctx: ObjectSharedContext) -> str:
    return _awakeables.get(ctx.key(), "")


app = restate.app(services=[greeter, caller, steps, waiter])
