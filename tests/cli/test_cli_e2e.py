"""`rstq deployments | services | invocations | state` as subprocesses against a live `rstq server`
with the examples and known traffic (tests.support.harness.example_traffic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from rstq.protocol.ids import InvocationId

from tests.support.harness.example_traffic import ExampleEnv, example_env, wait_until
from tests.support.net.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env() -> Iterator[ExampleEnv]:
    with example_env() as e:
        yield e


def rstq(env: ExampleEnv | None, *args: str, input: str | None = None,
         admin: str | None = None) -> subprocess.CompletedProcess[str]:
    url = admin or (env.server.admin_url if env else "")
    penv = {k: v for k, v in os.environ.items() if not k.startswith("RSTQ_")}
    penv["RSTQ_ADMIN_URL"] = url
    return subprocess.run([sys.executable, "-m", "rstq.cli.main", *args], capture_output=True,
                          text=True, timeout=60, input=input if input is not None else "",
                          env=penv)


def js(p: subprocess.CompletedProcess[str]) -> Any:
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_deployments_and_services(env: ExampleEnv) -> None:
    deps = js(rstq(env, "deployments", "list", "--json"))
    assert [d["id"] for d in deps] == [env.deployment_id]
    p = rstq(env, "deployments", "list")
    assert p.returncode == 0 and env.deployment_id in p.stdout and "Greeter@1" in p.stdout
    # registering the same URI again: unchanged, same id
    p = rstq(env, "deployments", "register", env.service.url, "--http1")
    assert p.returncode == 0 and "unchanged" in p.stderr and env.deployment_id in p.stderr
    p = rstq(env, "deployments", "describe", env.deployment_id)
    assert p.returncode == 0 and "RequestResponse" in p.stdout
    svcs = js(rstq(env, "services", "list", "--json"))
    assert {s["name"] for s in svcs} >= {"Greeter", "Payment", "PaymentProvider"}
    live = {s["name"]: s["live_invocations"] for s in svcs}
    assert live["Payment"] >= 1 and live["PaymentProvider"] >= 1 and live["Greeter"] == 0
    p = rstq(env, "services", "describe", "Greeter")
    assert p.returncode == 0
    assert "greet" in p.stdout and "count" in p.stdout and "completed" in p.stdout
    p = rstq(env, "services", "describe", "NoSuchService")
    assert p.returncode == 4 and "does not exist" in p.stderr
    # remove: refused without confirmation, removed with --yes is tested nowhere on purpose (the
    # module's server keeps its deployment); an unknown id answers exit 4 before asking
    p = rstq(env, "deployments", "remove", env.deployment_id)
    assert p.returncode == 10 and "not confirmed" in p.stderr
    assert len(js(rstq(env, "deployments", "list", "--json"))) == 1
    p = rstq(env, "deployments", "remove", "dp_11111111111111111111AA", "--yes")
    assert p.returncode in (1, 4), p.stderr


def test_invocations_list_filters(env: ExampleEnv) -> None:
    rows = js(rstq(env, "invocations", "list", "--json"))
    assert {r["id"] for r in rows} >= set(env.ids.values())
    live = js(rstq(env, "inv", "list", "--status", "live", "--json"))
    assert {r["id"] for r in live} >= {env.ids["awakeable"], env.ids["sleeping"]}
    assert all(r["status"] != "completed" for r in live)
    greet = js(rstq(env, "inv", "list", "--service", "Greeter", "--key", "alice", "--json"))
    assert len(greet) == 3 and {r["target"] for r in greet} == {"Greeter/alice/greet"}
    one = js(rstq(env, "inv", "list", "--service", "Greeter", "--limit", "1", "--json"))
    assert len(one) == 1
    susp = js(rstq(env, "inv", "list", "--status", "suspended,paused", "--service",
                   "PaymentProvider", "--json"))
    assert [r["id"] for r in susp] == [env.ids["sleeping"]]
    p = rstq(env, "inv", "list", "--status", "nonsense")
    assert p.returncode == 2
    p = rstq(env, "inv", "list")
    assert p.returncode == 0 and env.ids["failed"] in p.stdout
    assert "a payment needs a user_id" in p.stdout


def test_describe_says_what_it_waits_for(env: ExampleEnv) -> None:
    d = js(rstq(env, "inv", "describe", env.ids["sleeping"], "--json"))
    assert d["invocation"]["status"] == "suspended"
    [w] = d["waiting_for"]
    assert w["kind"] == "timer" and w["until"]
    assert [e["entry_type"] for e in d["journal"]] == ["Command: Input", "Command: Sleep"]
    assert any(t["kind"] == "sleep" for t in d["timers"])
    p = rstq(env, "inv", "describe", env.ids["sleeping"])
    assert p.returncode == 0
    assert "Waiting for" in p.stdout and "a timer (sleep) at" in p.stdout and "in 59m" in p.stdout

    d = js(rstq(env, "inv", "describe", env.ids["failed"], "--json"))
    assert d["waiting_for"] == []
    assert "a payment needs a user_id" in d["invocation"]["completion_failure"]
    p = rstq(env, "inv", "describe", env.ids["failed"])
    assert "completed (failure)" in p.stdout and "Command: Output" in p.stdout


def test_describe_awakeable_id_resolves_it(env: ExampleEnv) -> None:
    """The awakeable id `describe` shows is the real one: resolving it completes the payment."""
    inv = env.ids["awakeable"]
    d = js(rstq(env, "inv", "describe", inv, "--json"))
    [w] = [w for w in d["waiting_for"] if w["kind"] == "awakeable"]
    assert w["ref"].startswith("sign_1")
    p = rstq(env, "inv", "describe", inv)
    assert w["ref"] in p.stdout and "Command: Run" in p.stdout and "charge card" in p.stdout
    status, _ = env.call(f"/restate/awakeables/{w['ref']}/resolve", "by the test")
    assert status == 202
    wait_until(lambda: env.status(inv) == "completed", what="payment completed")
    d = js(rstq(env, "inv", "describe", inv, "--json"))
    assert d["invocation"]["completion_result"] == "success" and d["waiting_for"] == []


def test_cancel_kill_purge_pause_flows(env: ExampleEnv) -> None:
    a = env.send("/PaymentProvider/confirm", {"awakeable_id": "sign_none", "charge_id": "a",
                                              "delay_ms": 3_600_000})
    b = env.send("/PaymentProvider/confirm", {"awakeable_id": "sign_none", "charge_id": "b",
                                              "delay_ms": 3_600_000})
    for i in (a, b):
        wait_until(lambda i=i: env.status(i) == "suspended", what="suspended")
    # destructive: no confirmation, no change
    p = rstq(env, "inv", "cancel", a)
    assert p.returncode == 10 and env.status(a) == "suspended"
    p = rstq(env, "inv", "cancel", a, input="n\n")
    assert p.returncode == 10 and env.status(a) == "suspended"
    # pause / resume (not destructive: no question)
    p = rstq(env, "inv", "pause", b)
    assert p.returncode == 0, p.stderr
    wait_until(lambda: env.status(b) == "paused", what="paused")
    assert js(rstq(env, "inv", "resume", b, "--json")) == [{"id": b, "op": "resume",
                                                            "status": 200}]
    # cancel with a typed "y"; kill with --yes
    p = rstq(env, "inv", "cancel", a, input="y\n")
    assert p.returncode == 0, p.stderr
    p = rstq(env, "inv", "kill", b, "--yes")
    assert p.returncode == 0, p.stderr
    for i in (a, b):
        wait_until(lambda i=i: env.status(i) == "completed", what="completed")
    d = js(rstq(env, "inv", "describe", a, "--json"))
    assert d["invocation"]["completion_result"] == "failure"
    # conflicts and unknown ids have their own exit codes
    p = rstq(env, "inv", "kill", a, "--yes")
    assert p.returncode == 5 and "already completed" in p.stderr
    p = rstq(env, "inv", "purge", a, b, "--yes", "--json")
    assert p.returncode == 0, p.stderr
    assert [r["status"] for r in json.loads(p.stdout)] == [200, 200]
    wait_until(lambda: env.status(a) is None, what="purged")
    p = rstq(env, "inv", "describe", a)
    assert p.returncode == 4 and "does not exist" in p.stderr
    p = rstq(env, "inv", "cancel", a, "--yes")
    assert p.returncode == 4
    p = rstq(env, "inv", "cancel", "inv_nonsense", "--yes")
    assert p.returncode == 1 and "invalid" in p.stderr


def test_state_get_set_clear(env: ExampleEnv) -> None:
    assert js(rstq(env, "state", "get", "Greeter", "alice", "--json")) == {"count": 3}
    p = rstq(env, "state", "get", "Greeter", "alice")
    assert p.returncode == 0 and "count" in p.stdout and "3" in p.stdout
    p = rstq(env, "state", "set", "Greeter", "alice", "count", "41")
    assert p.returncode == 0 and "3 -> 41" in p.stderr
    p = rstq(env, "state", "set", "Greeter", "alice", "note", '"hello"')
    assert p.returncode == 0
    assert js(rstq(env, "state", "get", "Greeter", "alice", "--json")) == {"count": 41,
                                                                           "note": "hello"}
    # the handler sees the state set from the CLI
    status, doc = env.call("/Greeter/alice/greet")
    assert status == 200 and "42 times" in doc
    # not JSON: refused unless --raw
    p = rstq(env, "state", "set", "Greeter", "alice", "note", "plain text")
    assert p.returncode == 2 and "--raw" in p.stderr
    p = rstq(env, "state", "set", "Greeter", "alice", "blob", "00ff", "--binary")
    assert p.returncode == 0
    assert js(rstq(env, "state", "get", "Greeter", "alice", "blob", "--binary", "--json")) == {
        "blob": "00ff"}
    p = rstq(env, "state", "clear", "Greeter", "alice", "note", "blob")
    assert p.returncode == 10
    p = rstq(env, "state", "clear", "Greeter", "alice", "note", "blob", "--yes")
    assert p.returncode == 0
    assert js(rstq(env, "state", "get", "Greeter", "alice", "--json")) == {"count": 42}
    p = rstq(env, "state", "clear", "Greeter", "alice", "--yes", "--json")
    assert js(p) == {"service": "Greeter", "key": "alice", "cleared": ["count"], "kept": []}
    assert js(rstq(env, "state", "get", "Greeter", "alice", "--json")) == {}
    # the change is a logged command like any other: it shows in the partitions' applied LSN
    # and survives as state (the SQL state table is read from the partitions)
    p = rstq(env, "state", "get", "Greeter", "alice", "count")
    assert p.returncode == 4
    p = rstq(env, "state", "set", "Payment", "x", "k", "1")
    assert p.returncode == 1 and "Service" in p.stderr


def test_top_once_and_json(env: ExampleEnv) -> None:
    p = rstq(env, "top", "--once")
    assert p.returncode == 0, p.stderr
    assert "longest waiting" in p.stdout and "partitions" in p.stdout
    assert env.ids["sleeping"] in p.stdout
    doc = js(rstq(env, "top", "--json", "--service", "PaymentProvider"))
    assert doc["service"] == "PaymentProvider"
    assert env.ids["sleeping"] in {w["row"]["id"] for w in doc["waiting"]}


@pytest.mark.parametrize("args", [
    ["deployments", "list"], ["services", "list"], ["invocations", "list"],
    ["inv", "describe", "inv_1"], ["inv", "kill", "inv_1", "--yes"],
    ["state", "get", "Greeter", "alice"], ["state", "clear", "Greeter", "a", "--yes"],
    ["top", "--once"],
])
def test_no_server_exit_code_3(args: list[str]) -> None:
    p = rstq(None, *args, admin=f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "cannot reach the rstq admin API" in p.stderr and "rstq server" in p.stderr
    assert "Traceback" not in p.stderr


def test_trace_works_on_a_default_server(env: ExampleEnv) -> None:
    """`rstq server` keeps recent spans without any tracing flag (#17): `rstq trace` shows the
    failed payment's trace; an id the server knows nothing of exits 4."""
    doc = js(rstq(env, "trace", env.ids["failed"], "--json"))
    assert doc["tracing"] is True and doc["spans"], doc
    assert any(s["name"].startswith("invocation-attempt") for s in doc["spans"]), doc["spans"]
    p = rstq(env, "trace", env.ids["failed"])
    assert p.returncode == 0 and env.ids["failed"] in p.stdout, p.stderr
    unknown = str(InvocationId(12345, 67890))  # well formed, never created
    p = rstq(env, "trace", unknown)
    assert p.returncode == 4 and "not found" in p.stderr, (p.returncode, p.stderr)
