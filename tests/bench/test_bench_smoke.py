"""Smoke run of the benchmark harness (bench/suite.py): rstq only, tiny sizes, a few seconds.

Checks that every measured path works end to end (load generator, /proc CPU and memory, delayed
sends and their lateness, SQL over /query and the Postgres wire, the JSON result), not the
numbers: `make bench` is the benchmark.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  REPO_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = mod
    spec.loader.exec_module(mod)
    return mod


def _suite() -> ModuleType:
    return _load("suite")


@pytest.mark.slow
def test_bench_suite_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result.json"
    rc = _suite().main(["--only", "rstq", "--scenarios", "greet", "timers", "sql",
                        "--seconds", "1", "--warmup", "0.2", "--keys", "150", "--timers", "60",
                        "--timer-window", "1", "--query-runs", "1", "--json", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    rows = {(r["scenario"], r["metric"]): r for r in doc["rows"]}
    assert rows[("greet", "c=32 throughput")]["value"] > 0
    assert rows[("greet", "c=1 p50")]["value"] > 0
    assert rows[("greet", "c=32 server cpu/req")]["value"] > 0
    assert rows[("greet", "c=32 throughput")]["baseline_value"] is None  # restate not run
    assert rows[("timers", "fired")]["value"] == 60
    assert rows[("sql", "state rows")]["value"] >= 150
    assert 0 < rows[("sql", "server peak memory (VmHWM)")]["value"] < 2000
    for label in ("count(*) state", "count(*) sys_journal"):
        assert rows[("sql", f"/query {label}")]["value"] > 0
        assert rows[("sql", f"pgwire {label} (vs /query)")]["value"] > 0
    assert "all targets met" in capsys.readouterr().out


@pytest.mark.slow
def test_sql_load_smoke() -> None:
    """bench/sql_load.py end to end in a few seconds: both phases measured, queries answered."""
    res = _load("sql_load").main(["--rounds", "1", "--clients", "4", "--measure", "1",
                                  "--settle", "0.3", "--warm", "0.5"])
    assert res["plain"] > 0 and res["with_queries"] > 0
    assert res["queries_per_s"] > 0


@pytest.mark.slow
def test_history_smoke(tmp_path: Path) -> None:
    """bench/history.py end to end on rstq with a tiny history: both marks measured (RSS, disk,
    the four queries, kill -9 and restart), the RSS series and the JSON written."""
    out = tmp_path / "history.json"
    rc = _load("history").main(["--total", "300", "--marks", "150,300", "--concurrency", "8",
                                "--query-runs", "1", "--sample-every", "1", "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())["results"]["rstq"]
    assert [m["mark"] for m in res["marks"]] == [150, 300]
    for m in res["marks"]:
        assert m["count"] == 150 and m["rate"] > 0 and m["p99_ms"] > 0
        assert 0 < m["rss_mb"] < 2000 and m["disk_bytes_per_inv"] > 0
        assert len(m["queries"]) == 4 and all(q["median_ms"] > 0 for q in m["queries"])
        assert m["restart"]["ingress_s"] > 0 and m["restart"]["query_s"] > 0
        assert m["checkpoints"]["count"] is not None
    assert res["series"]
