"""`rstq sql` as a subprocess against `rstq server` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.harness.rstq_server import RstqServer
from tests.support.net.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[RstqServer]:
    with RstqServer(partitions=2, fsync="none") as srv:
        yield srv


def rstq_sql(*args: str, admin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rstq.cli.main", "sql", *args,
                           "--admin", admin], capture_output=True, text=True, timeout=60)


def test_table_json_csv(server: RstqServer) -> None:
    sql = "SELECT partition_id, leader FROM sys_partition ORDER BY partition_id"
    p = rstq_sql(sql, admin=server.admin_url)
    assert p.returncode == 0, p.stderr
    assert "PARTITION_ID" in p.stdout and "local" in p.stdout
    assert "2 rows. Query took" in p.stderr
    p = rstq_sql(sql, "--json", admin=server.admin_url)
    assert p.returncode == 0 and json.loads(p.stdout) == [
        {"partition_id": 0, "leader": "local"}, {"partition_id": 1, "leader": "local"}]
    p = rstq_sql(sql, "--csv", admin=server.admin_url)
    assert p.returncode == 0
    assert p.stdout.splitlines() == ['"partition_id","leader"', '0,"local"', '1,"local"']


def test_exit_codes(server: RstqServer) -> None:
    p = rstq_sql("SELEC nonsense", admin=server.admin_url)
    assert p.returncode == 1 and "42601" in p.stderr and p.stdout == ""
    p = rstq_sql("DROP TABLE state", admin=server.admin_url)
    assert p.returncode == 1 and "read-only" in p.stderr
    p = rstq_sql("SELECT 1", "--json", "--csv", admin=server.admin_url)
    assert p.returncode == 2
    p = rstq_sql("SELECT 1", admin=f"http://127.0.0.1:{free_port()}")
    assert p.returncode == 3 and "is `rstq server` running?" in p.stderr
    # still serving
    assert rstq_sql("SELECT 1 AS one", "--json", admin=server.admin_url).returncode == 0
