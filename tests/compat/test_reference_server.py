"""Differential compat suite: every scenario of tests/support/harness/scenarios.py, against every
server in SERVER_FACTORIES (now: the real restate-server 1.7.12; rstq to be added), with the
official restate-sdk services deployed in BIDI (h2c) and REQUEST_RESPONSE (HTTP/1.1) mode.

Observations must equal tests/compat/expected.json, the golden oracle recorded from the real
server; expectations are identical for both modes.

Re-record the oracle (only servers in ORACLE_SERVERS write; both modes must agree):
    RSTQ_COMPAT_UPDATE=1 .venv/bin/pytest tests/compat -q
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness.fixtures import ORACLE_SERVERS, TIMINGS, CompatEnv
from tests.support.harness.scenarios import SCENARIOS, Harness, run_scenario

pytestmark = [pytest.mark.compat, pytest.mark.timeout(60)]

EXPECTED_PATH = Path(__file__).with_name("expected.json")
UPDATE = os.environ.get("RSTQ_COMPAT_UPDATE") == "1"


def _dump(v: Any) -> str:
    return json.dumps(v, indent=1, sort_keys=True, ensure_ascii=False)


def diff_paths(expected: Any, observed: Any, path: str = "") -> list[str]:
    """Human-readable list of the leaves that differ."""
    if isinstance(expected, dict) and isinstance(observed, dict):
        out: list[str] = []
        for k in sorted(set(expected) | set(observed), key=str):
            if k not in observed:
                out.append(f"{path}.{k}: missing (expected {expected[k]!r})")
            elif k not in expected:
                out.append(f"{path}.{k}: unexpected {observed[k]!r}")
            else:
                out += diff_paths(expected[k], observed[k], f"{path}.{k}")
        return out
    if expected != observed:
        return [f"{path}: expected {expected!r}, observed {observed!r}"]
    return []


def assert_same(scenario: str, expected: Any, observed: Any, what: str) -> None:
    diffs = diff_paths(expected, observed)
    assert not diffs, f"{scenario}: {what}:\n  " + "\n  ".join(diffs)


def _bad_json(detail: str) -> dict[str, Any]:
    return {"body": {"code": 400, "message": "input validation error: the body is not valid "
                                             f"JSON: {detail}", "source": "ingress"},
            "content_type": "application/json", "error_source": "ingress", "status": 400,
            "x_restate_id": None}


# Where rstq differs from restate-server on purpose: the observations rstq must make instead,
# by dotted path into the oracle's expectation (every other leaf must still be the oracle's).
DEVIATIONS: dict[str, dict[str, Any]] = {
    # A body that is not JSON for a JSON handler: 400 from the ingress with the parse error,
    # before any invocation exists (restate: 500 from the SDK, and a /send is accepted first).
    "malformed_input": {
        "malformed_json": _bad_json("Expecting property name enclosed in double quotes: "
                                    "line 1 column 2 (char 1)"),
        "truncated_json_object": _bad_json("Expecting value: line 1 column 4 (char 3)"),
        "malformed_json_send": _bad_json("Expecting property name enclosed in double quotes: "
                                         "line 1 column 2 (char 1)"),
        "malformed_json_send_attach": None,
        "state_untouched.x_restate_id": "<inv:1>",  # now the first invocation it makes
    },
}


def _deviate(expected: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(expected))
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = out
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


def expectation(server_name: str, scenario: str, recorded: dict[str, Any]) -> dict[str, Any]:
    """What `server_name` must observe in `scenario`: the oracle's record, with rstq's
    DEVIATIONS applied for any server that is not the oracle."""
    if server_name in ORACLE_SERVERS or scenario not in DEVIATIONS:
        return recorded
    return _deviate(recorded, DEVIATIONS[scenario])


@pytest.fixture(scope="session")
def expected() -> Iterator[dict[str, Any]]:
    data: dict[str, Any] = {}
    if EXPECTED_PATH.exists():
        data = json.loads(EXPECTED_PATH.read_text())
    if not UPDATE:
        yield data.get("scenarios", {})
        return
    recorded: dict[str, Any] = {}
    yield recorded
    if recorded:
        meta = {
            "recorded_from": "restate-server 1.7.12 (npm) + restate-sdk 1.2.0, BIDI and "
                             "REQUEST_RESPONSE modes (identical)",
            "regenerate": "RSTQ_COMPAT_UPDATE=1 .venv/bin/pytest tests/compat",
            "placeholders": "<inv:N>/<awk:N>/<dp:N> = Nth distinct id in the scenario, "
                            "<ts> = timestamp, <ns> = per-run key namespace, <empty> = no body",
        }
        merged = {**data.get("scenarios", {}), **recorded}
        EXPECTED_PATH.write_text(_dump({"_meta": meta, "scenarios": merged}) + "\n")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(compat_env: CompatEnv, scenario: str, expected: dict[str, Any]) -> None:
    namespace = f"{compat_env.mode[:2]}{uuid.uuid4().hex[:10]}"
    t0 = time.monotonic()
    async with Harness.new_client() as client:
        h = Harness(client, compat_env.ingress_url, compat_env.admin_url, namespace)
        observed = await run_scenario(scenario, h)
    TIMINGS.scenarios[f"{compat_env.id}:{scenario}"] = time.monotonic() - t0

    if UPDATE and compat_env.server_name in ORACLE_SERVERS:
        if scenario in expected:  # recorded by the other mode in this session: must agree
            assert_same(scenario, expected[scenario], observed,
                        f"{compat_env.id} differs from the mode recorded first")
        else:
            expected[scenario] = observed
        return
    if scenario not in expected:
        pytest.fail(f"no expectation for {scenario!r} in {EXPECTED_PATH.name}; record it with "
                    "RSTQ_COMPAT_UPDATE=1 against the real restate-server")
    assert_same(scenario, expectation(compat_env.server_name, scenario, expected[scenario]),
                observed, f"{compat_env.id} differs from {EXPECTED_PATH.name}")
