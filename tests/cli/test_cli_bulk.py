"""`rstq inv cancel|kill|purge|pause|resume --where PREDICATE` as subprocesses against a live
`rstq server` with the examples (its own server: the predicates select whole services)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cli.test_cli_e2e import js, rstq
from tests.support.harness.example_traffic import ExampleEnv, example_env, wait_until

pytestmark = pytest.mark.slow

SLEEPERS = "target_service_name = 'PaymentProvider'"


@pytest.fixture(scope="module")
def env() -> Iterator[ExampleEnv]:
    with example_env(traffic=False) as e:
        yield e


def sleeper(env: ExampleEnv, n: int) -> str:
    """A PaymentProvider/confirm suspended on a one-hour timer."""
    return env.send("/PaymentProvider/confirm", {"awakeable_id": "sign_none",
                                                 "charge_id": f"c{n}", "delay_ms": 3_600_000})


def statuses(env: ExampleEnv, where: str) -> dict[str, str]:
    return {r["id"]: r["status"] for r in env.sql(f"SELECT id, status FROM sys_invocation "
                                                  f"WHERE {where}")}


def test_bulk_cancel_then_purge(env: ExampleEnv) -> None:
    ids = {sleeper(env, n) for n in range(30)}
    wait_until(lambda: set(statuses(env, f"{SLEEPERS} AND status = 'suspended'")) == ids,
               timeout=60, what="30 suspended")
    for _ in range(3):
        assert env.call("/Greeter/alice/greet")[0] == 200

    # not confirmed (no tty, no --yes): the count and a sample, then exit 10 and no change
    p = rstq(env, "inv", "cancel", "--where", SLEEPERS)
    assert p.returncode == 10, p.stderr
    assert "30 invocation(s) match" in p.stderr and "not confirmed" in p.stderr
    assert sum(i in p.stderr for i in ids) == 5 and "PaymentProvider/confirm" in p.stderr
    p = rstq(env, "inv", "cancel", "--where", SLEEPERS, input="n\n")
    assert p.returncode == 10
    assert set(statuses(env, f"{SLEEPERS} AND status = 'suspended'")) == ids

    # --limit caps the selection (oldest first); pause/resume ask too
    doc = js(rstq(env, "inv", "pause", "--where", SLEEPERS, "--limit", "4", "--yes", "--json"))
    assert doc["selected"] == 4 and doc["summary"] == {"done": 4, "skipped": 0,
                                                       "not_found": 0, "failed": 0}
    paused = {r["id"] for r in doc["results"]}
    wait_until(lambda: set(statuses(env, "status = 'paused'")) == paused, what="4 paused")
    p = rstq(env, "inv", "resume", "--where", "status = 'paused'", input="y\n")
    assert p.returncode == 0, p.stderr
    assert "resumed 4, skipped 0" in p.stderr
    wait_until(lambda: not statuses(env, "status = 'paused'"), what="resumed")

    # cancel every one, confirmed with --yes
    doc = js(rstq(env, "inv", "cancel", "--where", SLEEPERS, "--yes", "--json"))
    assert doc["selected"] == 30 and not doc["interrupted"]
    assert doc["summary"] == {"done": 30, "skipped": 0, "not_found": 0, "failed": 0}
    assert {r["id"] for r in doc["results"]} == ids
    assert {r["status"] for r in doc["results"]} <= {200, 202}
    wait_until(lambda: set(statuses(env, f"{SLEEPERS} AND status = 'completed'")) == ids,
               timeout=60, what="30 cancelled")
    rows = env.sql(f"SELECT completion_result, completion_failure FROM sys_invocation "
                   f"WHERE {SLEEPERS}")
    assert len(rows) == 30 and all(r["completion_result"] == "failure" for r in rows)
    assert all("cancel" in str(r["completion_failure"]).lower() for r in rows), rows[0]

    # cancel again: all completed, so all skipped (exit 0: nothing failed)
    p = rstq(env, "inv", "cancel", "--where", SLEEPERS, "--yes")
    assert p.returncode == 0, p.stderr
    assert "cancelled 0, skipped 30" in p.stderr and "already completed" in p.stderr
    assert "and 10 more (--json lists every one)" in p.stderr

    # purge over the completed ones with three running: those three are skipped
    running = {sleeper(env, n) for n in range(100, 103)}
    wait_until(lambda: set(statuses(env, f"{SLEEPERS} AND status = 'suspended'")) == running,
               what="3 suspended")
    doc = js(rstq(env, "inv", "purge", "--where", SLEEPERS, "--yes", "--json"))
    assert doc["summary"] == {"done": 30, "skipped": 3, "not_found": 0, "failed": 0}
    skipped = [r for r in doc["results"] if r["outcome"] == "skipped"]
    assert {r["id"] for r in skipped} == running
    assert all(r["status"] == 409 and "not yet completed" in r["message"] for r in skipped)
    wait_until(lambda: set(statuses(env, SLEEPERS)) == running, what="30 purged")
    assert len(statuses(env, "target_service_name = 'Greeter'")) == 3

    # nothing matches: nothing to do, exit 0
    p = rstq(env, "inv", "kill", "--where", "target_service_name = 'Nobody'", "--yes", "--json")
    assert js(p)["summary"] == {"done": 0, "skipped": 0, "not_found": 0, "failed": 0}
    assert "no invocation matches" in p.stderr
    p = rstq(env, "inv", "kill", "--where", SLEEPERS, "--yes")
    assert p.returncode == 0 and "killed 3," in p.stderr, p.stderr


def test_bulk_usage_and_bad_sql(env: ExampleEnv) -> None:
    p = rstq(env, "inv", "cancel", "--where", "no_such_column = 1", "--yes")
    assert p.returncode == 1, p.stderr
    assert "no_such_column" in p.stderr and "--where" in p.stderr and "Traceback" not in p.stderr
    p = rstq(env, "inv", "cancel", "--where", "status = 'x'; DELETE", "--yes")
    assert p.returncode == 2 and "`;`" in p.stderr
    p = rstq(env, "inv", "cancel", "inv_1", "--where", "true", "--yes")
    assert p.returncode == 2 and "not both" in p.stderr
    p = rstq(env, "inv", "cancel", "--yes")
    assert p.returncode == 2 and "--where" in p.stderr
    # a trailing comment or an OR cannot reach past the predicate's parentheses
    doc = json.loads(rstq(env, "inv", "pause", "--where", "false OR false -- x", "--limit",
                          "1", "--yes", "--json").stdout)
    assert doc["selected"] == 0
