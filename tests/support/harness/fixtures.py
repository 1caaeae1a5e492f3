"""pytest fixtures for running scenarios against a Restate-compatible server.

Use from a conftest.py: ``from tests.support.harness.fixtures import *  # noqa: F401,F403``

* ``restate_server`` (session): a real restate-server 1.7.12 on free loopback ports.
* ``compat_env`` (session, parametrized by server x mode): a fresh server from
  :data:`SERVER_FACTORIES` plus tests.support.apps.compat_services served by hypercorn and
  registered in BIDI (h2c) or REQUEST_RESPONSE (HTTP/1.1, ``use_http_11``) mode.

Extension point: add an entry to :data:`SERVER_FACTORIES` (e.g. ``"rstq"``) returning an object
with ``start()``, ``stop()``, ``ingress_url``, ``admin_url``, ``register(uri, use_http_11)``
(see :class:`CompatServer`); every compat test then also runs against it. Restrict the servers
with ``RSTQ_COMPAT_SERVERS=restate,rstq``.

Skips happen ONLY when npm cannot reach the registry, and never when ``CI`` is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from tests.support.harness.restate_server import (
    PACKAGE,
    VERSION,
    RegistryUnreachable,
    RestateServer,
    ensure_installed,
)
from tests.support.harness.service_proc import ServiceProcess

COMPAT_APP = "tests.support.apps.compat_services:app"
MODES = ("bidi", "request_response")


class CompatServer(Protocol):
    @property
    def ingress_url(self) -> str: ...

    @property
    def admin_url(self) -> str: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...

    def register(self, uri: str, use_http_11: bool = False) -> dict[str, Any]: ...


def _restate_factory(protocol_v7: bool = False) -> Callable[[], CompatServer]:
    def make() -> CompatServer:
        _ensure_installed_or_skip()
        return RestateServer(protocol_v7=protocol_v7)
    return make


def _rstq_factory(protocol_v7: bool = False) -> Callable[[], CompatServer]:
    def make() -> CompatServer:
        from tests.support.harness.rstq_server import RstqServer

        return RstqServer(extra_args=["--enable-protocol-v7"] if protocol_v7 else [])
    return make


# name -> zero-arg factory returning an un-started server.
SERVER_FACTORIES: dict[str, Callable[[], CompatServer]] = {
    "restate": _restate_factory(),
    "restate-v7": _restate_factory(protocol_v7=True),
    "rstq": _rstq_factory(),
    "rstq-v7": _rstq_factory(protocol_v7=True),
}

def running_server(name: str) -> Iterator[CompatServer]:
    """A started server of SERVER_FACTORIES[name], stopped afterwards (for fixtures)."""
    server = SERVER_FACTORIES[name]()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Which servers' observations are the oracle (used to (re)write tests/compat/expected.json).
ORACLE_SERVERS = frozenset({"restate", "restate-v7"})


def selected_servers() -> list[str]:
    env = os.environ.get("RSTQ_COMPAT_SERVERS")
    names = [s.strip() for s in env.split(",") if s.strip()] if env else sorted(SERVER_FACTORIES)
    unknown = [n for n in names if n not in SERVER_FACTORIES]
    if unknown:
        raise pytest.UsageError(f"RSTQ_COMPAT_SERVERS: unknown server(s) {unknown}; "
                                f"known: {sorted(SERVER_FACTORIES)}")
    return names


_INSTALL_FAILURE: list[RegistryUnreachable] = []  # remembered: one npm attempt per session


def _ensure_installed_or_skip() -> None:
    if not _INSTALL_FAILURE:
        try:
            ensure_installed()
            return
        except RegistryUnreachable as exc:
            _INSTALL_FAILURE.append(exc)
    failure = _INSTALL_FAILURE[0]
    if os.environ.get("CI"):
        raise failure  # in CI the oracle must run
    pytest.skip(f"npm registry unreachable, cannot install {PACKAGE}@{VERSION}: "
                f"{failure.summary}")


@dataclass
class Timings:
    """Wall-clock timings collected by the compat fixtures (printed in the terminal summary)."""
    install: float | None = None
    server_start: dict[str, float] = field(default_factory=dict)
    service_start: dict[str, float] = field(default_factory=dict)
    register: dict[str, float] = field(default_factory=dict)
    scenarios: dict[str, float] = field(default_factory=dict)
    session_start: float = field(default_factory=time.monotonic)


TIMINGS = Timings()


@pytest.fixture(scope="session")
def restate_server() -> Iterator[RestateServer]:
    """A real restate-server (v6 protocol), shared by the whole session."""
    t0 = time.monotonic()
    _ensure_installed_or_skip()
    TIMINGS.install = time.monotonic() - t0
    with RestateServer() as rs:
        TIMINGS.server_start["restate(session)"] = rs.startup_seconds or 0.0
        yield rs


@dataclass
class CompatEnv:
    server_name: str
    mode: str
    server: CompatServer
    service: ServiceProcess
    deployment: dict[str, Any]

    @property
    def ingress_url(self) -> str:
        return self.server.ingress_url

    @property
    def admin_url(self) -> str:
        return self.server.admin_url

    @property
    def id(self) -> str:
        return f"{self.server_name}-{self.mode}"


def compat_params() -> list[Any]:
    return [pytest.param((s, m), id=f"{s}-{m}") for s in selected_servers() for m in MODES]


@pytest.fixture(scope="session", params=compat_params())
def compat_env(request: pytest.FixtureRequest) -> Iterator[CompatEnv]:
    """Fresh server + compat services deployed in one mode (fully isolated per combination)."""
    server_name, mode = request.param
    if TIMINGS.install is None:
        t0 = time.monotonic()
        if server_name == "restate":
            _ensure_installed_or_skip()
        TIMINGS.install = time.monotonic() - t0
    t0 = time.monotonic()
    server = SERVER_FACTORIES[server_name]()
    server.start()
    label = f"{server_name}-{mode}"
    TIMINGS.server_start[label] = time.monotonic() - t0
    service: ServiceProcess | None = None
    try:
        t0 = time.monotonic()
        service = ServiceProcess(COMPAT_APP, http2=(mode == "bidi")).start()
        TIMINGS.service_start[label] = time.monotonic() - t0
        t0 = time.monotonic()
        deployment = server.register(service.url, use_http_11=(mode == "request_response"))
        TIMINGS.register[label] = time.monotonic() - t0
        yield CompatEnv(server_name, mode, server, service, deployment)
    finally:
        # Server first: it closes its connections to the service, so hypercorn exits at once.
        server.stop()
        if service is not None:
            service.stop()
