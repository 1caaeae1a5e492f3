"""rstq.sdk replays after its service process is killed mid-handler: on rstq and on the real
restate-server, in both protocol modes. A step whose result was journaled never runs again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.harness.fixtures import running_server
from tests.support.harness.hypercorn_proc import HypercornProcess

APP = "tests.support.apps.rstq_sdk_crash_services:app"


@pytest.fixture(params=["restate", "rstq"])
def server(request: pytest.FixtureRequest) -> Iterator[Any]:
    yield from running_server(request.param)


def _wait_for(pred: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


@pytest.mark.parametrize("http11", [False, True], ids=["bidi", "request_response"])
def test_service_killed_mid_run_resumes_from_its_journal(server: Any, tmp_path: Path,
                                                        http11: bool) -> None:
    marker = tmp_path / "marker.txt"
    hc = HypercornProcess(APP).start()
    try:
        server.register(hc.url, use_http_11=http11)
        with httpx.Client(timeout=60) as client:
            r = client.post(f"{server.ingress_url}/Steps/run3/send", json=str(marker))
            assert r.status_code == 202, r.text
            inv_id = r.json()["invocationId"]
            _wait_for(lambda: marker.exists() and "step2" in marker.read_text())
            hc.kill()
            Path(str(marker) + ".go").touch()
            hc = hc.replacement().start()
            r = client.get(f"{server.ingress_url}/restate/invocation/{inv_id}/attach")
            assert r.status_code == 200, r.text
            assert r.json() == "abc"
        assert marker.read_text().split() == ["step1", "step2", "step2", "step3"]
    finally:
        hc.stop()
