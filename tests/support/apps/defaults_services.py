"""Services with and without their own settings, for the server-defaults tests
(tests/cli/test_server_config.py): Greeter, Counter and Wf set no retention, timeout or retry
policy (the server's defaults apply), Tuned sets them all, Failing.always always raises (with a
retry interval but no attempt limit of its own)."""

from __future__ import annotations

import restate

from tests.support.apps.failing_services import failing
from tests.support.apps.sdk_basic_services import counter, greeter, tuned, wf

app = restate.app(services=[greeter, counter, wf, tuned, failing])
