"""rstq.sdk tests. The compat fixture here mirrors tests/support/harness/fixtures.py's
``compat_env`` but serves tests/support/apps/rstq_sdk_compat_services.py (the compat services
written against rstq.sdk) instead of the official-SDK ones; servers and modes are the same
(``RSTQ_COMPAT_SERVERS`` restricts the servers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.harness.fixtures import (
    MODES,
    SERVER_FACTORIES,
    CompatEnv,
    _ensure_installed_or_skip,
    selected_servers,
)
from tests.support.harness.service_proc import ServiceProcess

SDK_COMPAT_APP = "tests.support.apps.rstq_sdk_compat_services:app"


def _params() -> list[object]:
    return [pytest.param((s, m), id=f"{s}-{m}") for s in selected_servers() for m in MODES]


@pytest.fixture(scope="session", params=_params())
def sdk_compat_env(request: pytest.FixtureRequest) -> Iterator[CompatEnv]:
    server_name, mode = request.param
    if server_name.startswith("restate"):
        _ensure_installed_or_skip()
    server = SERVER_FACTORIES[server_name]()
    server.start()
    service: ServiceProcess | None = None
    try:
        service = ServiceProcess(SDK_COMPAT_APP, http2=(mode == "bidi")).start()
        deployment = server.register(service.url, use_http_11=(mode == "request_response"))
        yield CompatEnv(server_name, mode, server, service, deployment)
    finally:
        server.stop()
        if service is not None:
            service.stop()
