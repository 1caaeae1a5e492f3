"""The notebooks in notebooks/ run top to bottom against a live server with example traffic
(a failed, a suspended-on-awakeable and a sleeping invocation, Greeter state), through the
Postgres wire and the admin API; a failing cell fails the build. Committed notebooks carry no
outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.harness.example_traffic import ExampleEnv, example_env

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"debugging.ipynb", "throughput.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: strip execution counts"


@pytest.fixture(scope="module")
def env() -> Iterator[ExampleEnv]:
    with example_env() as e:
        for i in range(20):  # some throughput to plot
            assert e.call(f"/Greeter/user{i % 5}/greet")[0] == 200
        yield e


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, env: ExampleEnv, monkeypatch: pytest.MonkeyPatch,
                       tmp_path: Path) -> None:
    monkeypatch.setenv("RSTQ_ADMIN_URL", env.server.admin_url)
    monkeypatch.setenv("RSTQ_PG_PORT", str(env.server.pgwire_port))
    monkeypatch.delenv("RSTQ_ADMIN_TOKEN", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Traceback" not in text
    if path.name == "debugging.ipynb":
        # the stuck ones and the failure were found, the awakeable id was resolved
        assert env.ids["sleeping"] in text and env.ids["failed"] in text
        assert "awakeable" in text and "sign_1" in text


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_a_server_without_traffic(path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """A new user's first server: nothing invoked yet. Every cell still runs."""
    with example_env(traffic=False) as env:
        monkeypatch.setenv("RSTQ_ADMIN_URL", env.server.admin_url)
        monkeypatch.setenv("RSTQ_PG_PORT", str(env.server.pgwire_port))
        monkeypatch.delenv("RSTQ_ADMIN_TOKEN", raising=False)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
