"""`rstq inv OP --where`: the selection query, outcomes, an interrupted or cut-off batch, the
progress bar on a terminal, against a scripted in-process client (no server)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rstq.cli.common
from click.testing import CliRunner
from rstq.cli.admin_client import EXIT_CONFLICT, EXIT_NOT_FOUND, AdminError, Unreachable
from rstq.cli.bulk import BadPredicate, bulk_op, selection_query
from rstq.cli.main import main

IDS = [f"inv_{n:02d}" for n in range(8)]


class Scripted:
    """rows() answers the selection; invocation_op(id) runs `answers.get(id)` (default 200)."""

    instances: list[Scripted] = []
    answers: dict[str, Callable[[], int]] = {}

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.queries: list[str] = []
        self.ops: list[tuple[str, str]] = []
        Scripted.instances.append(self)

    def rows(self, query: str) -> list[dict[str, Any]]:
        self.queries.append(query)
        return [{"id": i, "target": "Svc/h", "status": "running"} for i in IDS]

    def invocation_op(self, invocation_id: str, op: str) -> int:
        self.ops.append((invocation_id, op))
        answer = Scripted.answers.get(invocation_id)
        return answer() if answer else 200


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Scripted]]:
    Scripted.instances, Scripted.answers = [], {}
    monkeypatch.setattr(rstq.cli.common, "AdminClient", Scripted)
    yield Scripted


def raise_(e: BaseException) -> Callable[[], int]:
    def f() -> int:
        raise e
    return f


def run(*args: str, input: str = "") -> Any:
    return CliRunner().invoke(main, ["inv", *args], input=input)


def test_selection_query() -> None:
    q = selection_query(" status = 'paused' -- a comment", 7)
    assert q == ("SELECT id, target, status FROM sys_invocation WHERE (\n"
                 "status = 'paused' -- a comment\n)\nORDER BY created_at, id LIMIT 7")
    assert "LIMIT" not in selection_query("true", None)
    for bad in ("", "  ", "true; DROP TABLE x", "a = ';'"):
        with pytest.raises(BadPredicate):
            selection_query(bad, None)


def test_outcomes_and_exit_code(scripted: type[Scripted]) -> None:
    scripted.answers = {
        IDS[1]: lambda: 202,
        IDS[2]: raise_(AdminError("not yet completed", EXIT_CONFLICT, 409)),
        IDS[3]: raise_(AdminError("does not exist", EXIT_NOT_FOUND, 404)),
        IDS[4]: raise_(AdminError("internal server error", 1, 500)),
    }
    r = run("purge", "--where", "true", "--yes", "--json")
    assert r.exit_code == 1  # one failed
    d = json.loads(r.stdout)
    assert d["summary"] == {"done": 5, "skipped": 1, "not_found": 1, "failed": 1}
    assert [o["outcome"] for o in d["results"][:5]] == ["done", "done", "skipped", "not_found",
                                                         "failed"]
    assert d["results"][4] == {"id": IDS[4], "outcome": "failed", "status": 500,
                               "message": "internal server error"}
    assert [op for _, op in scripted.instances[0].ops] == ["purge"] * 8
    # without failures: exit 0, the summary on stderr
    scripted.answers = {IDS[2]: raise_(AdminError("not yet completed", EXIT_CONFLICT, 409))}
    r = run("purge", "--where", "true", "--yes")
    assert r.exit_code == 0, r.output
    assert "purged 7, skipped 1 (not possible in their state), not found 0, failed 0" in r.stderr
    assert f"skipped: {IDS[2]}: not yet completed" in r.stderr


def test_not_confirmed_sends_nothing(scripted: type[Scripted]) -> None:
    r = run("kill", "--where", "true")
    assert r.exit_code == 10 and "8 invocation(s) match" in r.stderr
    assert scripted.instances[0].ops == []
    r = run("resume", "--where", "true", "--limit", "8", input="y\n")
    assert r.exit_code == 0 and "(--limit reached)" in r.stderr
    assert len(scripted.instances[1].ops) == 8


def test_interrupted_batch_lists_the_done_ones(scripted: type[Scripted]) -> None:
    scripted.answers = {IDS[3]: raise_(KeyboardInterrupt())}
    r = run("cancel", "--where", "true", "--yes")
    assert r.exit_code == 1
    assert r.stdout.split() == IDS[:3]
    assert "stopped (interrupted) after 3 of 8" in r.stderr
    assert f"the cancel of {IDS[3]} was sent: it may or may not have taken effect" in r.stderr
    assert [i for i, _ in scripted.instances[0].ops] == IDS[:4]


def test_unreachable_mid_batch_stops_with_exit_3(scripted: type[Scripted]) -> None:
    scripted.answers = {IDS[2]: raise_(Unreachable("http://x", "connection refused"))}
    r = run("pause", "--where", "true", "--yes", "--json")
    assert r.exit_code == 3
    assert '"interrupted": true' in r.stdout and "cannot reach" in r.stderr
    assert len(scripted.instances[0].ops) == 3  # stopped: the rest is not tried


def test_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                    scripted: type[Scripted]) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    monkeypatch.setattr("sys.stderr", out)
    bulk_op(scripted(), "cancel", "cancelled", "true", limit=None, yes=True, as_json=False)
    text = out.getvalue()
    assert "8 invocation(s) match" in text and "cancelled 8" in text
    assert "\x1b[" in text  # rich drew (and cleared) a live progress bar
