from __future__ import annotations

from collections.abc import Iterator

import pytest
from rstq.pgwire.server import PgWireServer

from tests.pgwire.engine import TestEngine


@pytest.fixture(scope="module")
def engine() -> TestEngine:
    return TestEngine()


@pytest.fixture(scope="module")
def server(engine: TestEngine) -> Iterator[PgWireServer]:
    srv = PgWireServer(engine, "127.0.0.1:0")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dsn(server: PgWireServer) -> str:
    return f"host=127.0.0.1 port={server.port} user=rstq dbname=rstq"
