"""The crash-test services (crash_services.build) served with rstq.sdk."""

from __future__ import annotations

import rstq.sdk

from tests.support.apps.crash_services import build

app = build(rstq.sdk)
