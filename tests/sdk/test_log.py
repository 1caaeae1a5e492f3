"""rstq.sdk.getLogger drops records while the invocation replays its journal."""

from __future__ import annotations

import logging

import pytest
from rstq.sdk import getLogger
from rstq.sdk.log import current_vm


class FakeVM:
    def __init__(self, replaying: bool) -> None:
        self.replaying = replaying


@pytest.mark.parametrize("replaying,shown", [(True, False), (False, True)])
def test_logger_drops_records_during_replay(caplog: pytest.LogCaptureFixture,
                                            replaying: bool, shown: bool) -> None:
    log = getLogger("tests.sdk.replay")
    token = current_vm.set(FakeVM(replaying))
    try:
        with caplog.at_level(logging.INFO, logger="tests.sdk.replay"):
            log.info("step done")
    finally:
        current_vm.reset(token)
    assert ("step done" in caplog.text) is shown


def test_logger_outside_a_handler_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tests.sdk.replay"):
        getLogger("tests.sdk.replay").info("plain")
    assert "plain" in caplog.text
