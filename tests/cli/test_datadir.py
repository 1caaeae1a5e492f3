"""One server per data dir, ports taken before any data is touched, and `rstq doctor`: all
through the real `rstq server` / `rstq doctor` commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer
from tests.support.net.ports import free_port

pytestmark = pytest.mark.slow


def rstq(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSTQ_")}
    return subprocess.run([sys.executable, "-m", "rstq.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def server_args(data_dir: Path, *, ingress: int | None = None, admin: int | None = None,
                pgwire: int | None = None) -> list[str]:
    return ["server", "--data-dir", str(data_dir),
            "--ingress", f"127.0.0.1:{ingress or free_port()}",
            "--admin", f"127.0.0.1:{admin or free_port()}",
            "--pgwire", f"127.0.0.1:{pgwire or free_port()}"]


def post(url: str, body: Any = None) -> Any:
    resp = httpx.post(url, timeout=30) if body is None else httpx.post(url, json=body,
                                                                        timeout=30)
    resp.raise_for_status()
    return resp.json()


def count(srv: RstqServer, key: str) -> Any:
    return post(f"{srv.ingress_url}/Counter/{key}/get")


@pytest.fixture(scope="module")
def service() -> Any:
    with HypercornProcess("tests.support.apps.compat_services:app") as hc:
        yield hc


def test_a_second_server_on_the_same_data_dir_exits_at_once_naming_the_pid(
        service: HypercornProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RstqServer(data_dir=data, partitions=2) as first:
        first.register(service.url, use_http_11=True)
        assert post(f"{first.ingress_url}/Counter/k/add", 5) == 5
        t0 = time.monotonic()
        second = rstq(*server_args(data), timeout=30)
        elapsed = time.monotonic() - t0
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, second.stderr  # one line, no traceback
        assert f"pid {first.proc.pid}" in lines[0] and "in use" in lines[0], lines
        assert "Traceback" not in second.stderr
        assert elapsed < 15, elapsed  # at once (the interpreter start is most of it)
        # the first one still serves, its data intact
        assert post(f"{first.ingress_url}/Counter/k/add", 2) == 7
        doc = rstq("doctor", "--data-dir", str(data))
        assert doc.returncode == 0, doc.stdout + doc.stderr
        assert f"held by pid {first.proc.pid}" in doc.stdout
        first.stop()
        doc = rstq("doctor", "--data-dir", str(data))
        assert doc.returncode == 0 and "lock: free" in doc.stdout and "healthy" in doc.stdout
        first.start()  # the lock went with the process: a new server takes the dir
        assert count(first, "k") == 7


def test_a_killed_server_leaves_no_stale_lock(service: HypercornProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RstqServer(data_dir=data, partitions=2) as srv:
        srv.register(service.url, use_http_11=True)
        assert post(f"{srv.ingress_url}/Counter/k/add", 3) == 3
        srv.kill()  # SIGKILL: the kernel drops the flock
        srv.start()
        assert count(srv, "k") == 3


@pytest.mark.parametrize("which", ["ingress", "admin", "pgwire"])
def test_a_taken_port_is_one_line_naming_the_port_and_flag(tmp_path: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = tmp_path / "data"
        p = rstq(*server_args(data, **{which: port}), timeout=30)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert f"port {port} is already in use" in lines[0] and f"--{which}" in lines[0], lines
    assert not data.exists()  # failed before the data dir was opened (or even created)


def _segment(data: Path, rel: str) -> Path:
    segs = sorted((data / rel).glob("*.seg"))
    assert len(segs) == 1, segs
    return segs[0]


def test_doctor_reports_and_repairs_a_log_damaged_mid_file(
        service: HypercornProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RstqServer(data_dir=data, partitions=1) as srv:
        srv.register(service.url, use_http_11=True)
        for i in range(1, 11):
            assert post(f"{srv.ingress_url}/Counter/k/add", 1) == i
        srv.kill()  # no snapshot: the log alone holds the partition
    seg = _segment(data, "partitions/0/log")
    size = seg.stat().st_size
    raw = bytearray(seg.read_bytes())
    raw[size // 2] ^= 0xFF  # a bit flip mid-file: later writes survive it
    seg.write_bytes(bytes(raw))

    p = rstq(*server_args(data), timeout=60)
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("Error")]
    assert len(lines) == 1 and "rstq doctor --data-dir" in lines[0], p.stderr
    assert "Traceback" not in p.stderr

    doc = rstq("doctor", "--data-dir", str(data))
    assert doc.returncode == 1, doc.stdout + doc.stderr
    out = doc.stdout
    assert "partition 0 log: DAMAGED at offset" in out and str(seg) in out
    assert "last good record: lsn" in out
    assert "record(s) that look intact follow the damage" in out
    assert f"rstq doctor --data-dir {data} --repair" in out
    assert seg.stat().st_size == size  # reading changed nothing

    rep = rstq("doctor", "--data-dir", str(data), "--repair")
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert f"repaired: partition 0: truncated {seg}" in rep.stdout
    assert "healthy" in rep.stdout
    kept = list((data / "doctor").rglob("*.from-*"))
    assert len(kept) == 1 and kept[0].stat().st_size == size - seg.stat().st_size

    with RstqServer(data_dir=data, partitions=1) as srv2:  # starts again; earlier adds kept
        n = count(srv2, "k")
        assert 1 <= n < 10, n  # the adds after the bad record are gone, the earlier ones not


def test_doctor_refuses_to_repair_while_a_server_runs(
        service: HypercornProcess, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with RstqServer(data_dir=data, partitions=1) as srv:
        srv.register(service.url, use_http_11=True)
        for i in range(1, 6):
            assert post(f"{srv.ingress_url}/Counter/k/add", 1) == i
        seg = _segment(data, "partitions/0/log")
        raw = bytearray(seg.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        seg.write_bytes(bytes(raw))
        p = rstq("doctor", "--data-dir", str(data))
        assert p.returncode == 1 and "DAMAGED" in p.stdout
        p = rstq("doctor", "--data-dir", str(data), "--repair")
        assert p.returncode == 5, p.stdout + p.stderr
        assert f"pid {srv.proc.pid}" in p.stderr and "not repairing" in p.stderr
        assert seg.read_bytes() == bytes(raw)  # untouched


def test_doctor_on_a_missing_data_dir(tmp_path: Path) -> None:
    p = rstq("doctor", "--data-dir", str(tmp_path / "nope"))
    assert p.returncode == 4 and "not an rstq data dir" in p.stderr
