"""The differential compat scenarios (tests/support/harness/scenarios.py) with the services written
against rstq.sdk, against the real restate-server and rstq, BIDI and REQUEST_RESPONSE, v6
and v7. Observations must equal tests/compat/expected.json, recorded from restate-server with
the official SDK: same services, same client-visible behaviour."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_reference_server import assert_same, expectation
from tests.support.harness.fixtures import CompatEnv
from tests.support.harness.scenarios import SCENARIOS, Harness, run_scenario

pytestmark = [pytest.mark.timeout(90)]

EXPECTED = json.loads((Path(__file__).parents[1] / "compat" / "expected.json")
                      .read_text())["scenarios"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_scenario(sdk_compat_env: CompatEnv, scenario: str) -> None:
    namespace = f"{sdk_compat_env.mode[:2]}{uuid.uuid4().hex[:10]}"
    async with Harness.new_client() as client:
        h = Harness(client, sdk_compat_env.ingress_url, sdk_compat_env.admin_url, namespace)
        observed: dict[str, Any] = await run_scenario(scenario, h)
    assert_same(scenario, expectation(sdk_compat_env.server_name, scenario, EXPECTED[scenario]),
                observed,
                f"rstq.sdk on {sdk_compat_env.id} differs from expected.json")
