"""The official `restate` CLI (npm `@restatedev/restate`, pinned like restate-server) against a
live `rstq server` with the examples and known traffic (tests.support.harness.example_traffic).

The CLI calls the admin API under a version prefix (`/v4/deployments`, `/v4/health`, `/v4/query`)
and reads `/query`'s JSON with strict types: these tests run its everyday commands and check what
they print. Skipped only when npm is missing (the CLI installs into ~/.cache/rstq-test).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.harness.example_traffic import ExampleEnv, example_env, wait_until
from tests.support.harness.restate_server import CLI, binary_path, ensure_installed

pytestmark = pytest.mark.slow

Run = Callable[..., str]  # restate(*args) -> stdout


@pytest.fixture(scope="module")
def restate_cli() -> Path:
    if shutil.which("npm") is None and not binary_path(tool=CLI).is_file():
        pytest.skip("npm not found on PATH: cannot install the restate CLI")
    return ensure_installed(tool=CLI)


@pytest.fixture(scope="module")
def env(restate_cli: Path) -> Iterator[ExampleEnv]:
    with example_env() as e:
        yield e


@pytest.fixture(scope="module")
def restate(restate_cli: Path, env: ExampleEnv, tmp_path_factory: pytest.TempPathFactory) -> Run:
    config_home = tmp_path_factory.mktemp("restate-cli-config")
    penv = {k: v for k, v in os.environ.items() if not k.startswith(("RESTATE_", "RSTQ_"))}
    penv.update(RESTATE_ADMIN_URL=env.server.admin_url,
                RESTATE_INGRESS_URL=env.server.ingress_url,
                RESTATE_CLI_CONFIG_HOME=str(config_home), NO_COLOR="1", CLICOLOR="0",
                TERM="dumb", COLUMNS="200")

    def run(*args: str) -> str:
        proc = subprocess.run([str(restate_cli), *args], capture_output=True, text=True,
                              env=penv, stdin=subprocess.DEVNULL, timeout=60)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"restate {' '.join(args)} -> {proc.returncode}:\n{out}"
        assert "Error:" not in proc.stderr, out  # e.g. a query answer it could not parse
        return proc.stdout

    return run


SERVICES = ("Greeter", "TicketObject", "CartObject", "Payment", "PaymentProvider")


def test_whoami(restate: Run, env: ExampleEnv) -> None:
    out = restate("whoami")
    assert f"Admin Service '{env.server.admin_url}/' is healthy!" in out
    assert f"Advertised ingress address  {env.server.ingress_url}/" in out


def test_deployments(restate: Run, env: ExampleEnv) -> None:
    listed = restate("deployments", "list")
    assert env.deployment_id in listed and f"{env.service.url.rstrip('/')}/" in listed
    assert all(f"- {name} [1]" in listed for name in SERVICES), listed
    described = restate("deployments", "describe", env.deployment_id)
    assert f"ID:              {env.deployment_id}" in described
    assert "Transport:       HTTP/1.1" in described
    assert "Protocol Style:  Request/Response" in described
    for word in (*SERVICES, "greet", "add_ticket", "checkout"):
        assert word in described, (word, described)


def test_services(restate: Run, env: ExampleEnv) -> None:
    listed = restate("services", "list")
    rows = [line.split() for line in listed.splitlines() if line.startswith(" [public]")]
    assert {row[1] for row in rows} == set(SERVICES), listed
    assert all(row[-1] == env.deployment_id for row in rows), listed
    described = restate("services", "describe", "Greeter")
    assert "Name:            Greeter" in described
    assert "Service type:    VirtualObject" in described
    assert f"Deployment ID:   {env.deployment_id}" in described
    assert " greet " in described and " count " in described


def test_invocations_list(restate: Run, env: ExampleEnv) -> None:
    active = restate("invocations", "list")
    assert env.ids["awakeable"] in active and env.ids["sleeping"] in active
    assert env.ids["failed"] not in active  # completed ones only with --all
    everything = restate("invocations", "list", "--all")
    assert env.ids["failed"] in everything
    assert "a payment needs a user_id and a positive amount_cents" in everything
    assert "Greeter/alice/greet" in everything and "completed with success" in everything


def test_invocations_describe(restate: Run, env: ExampleEnv) -> None:
    out = restate("invocations", "describe", env.ids["awakeable"])
    assert "Target:       Payment/pay" in out and "suspended" in out
    assert "charge card" in out  # the journal: the handler's named ctx.run


def test_state_get(restate: Run) -> None:
    out = restate("state", "get", "Greeter", "alice")
    assert "Service  Greeter" in out and "Key      alice" in out
    assert [line.split() for line in out.splitlines() if line.strip().startswith("count")] == [
        ["count", "3"]]


def test_sql(restate: Run, env: ExampleEnv) -> None:
    out = restate("sql", "--json", "SELECT id, status FROM sys_invocation "
                  "WHERE status <> 'completed' ORDER BY id")
    assert json.loads(out) == sorted(
        [{"id": env.ids["awakeable"], "status": "suspended"},
         {"id": env.ids["sleeping"], "status": "suspended"}], key=lambda r: r["id"])


def test_invocations_cancel(restate: Run, env: ExampleEnv) -> None:
    inv = env.ids["sleeping"]  # last: it changes the traffic the other tests look at
    out = restate("invocations", "cancel", "--yes", inv)
    assert inv in out and "Cancelled 1 invocations" in out
    wait_until(lambda: env.status(inv) == "completed", what="cancelled invocation completes")
    assert inv not in restate("invocations", "list")
