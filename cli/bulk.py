"""`rstq inv cancel|kill|purge|pause|resume --where PREDICATE`: one operation on every invocation
a SQL predicate over sys_invocation selects.

The ids are selected once (`SELECT id, target, status FROM sys_invocation WHERE (PREDICATE)`,
through the admin `/query` endpoint, read-only server-side), the count and a sample are shown
and confirmed, then the operation is sent to each id through the same admin endpoint the
single-id commands use (`PATCH /invocations/{id}/{op}`). Each of those is a durable command on
its partition, so an interrupted batch leaves exactly the ones reported done done.

Every id ends with one outcome: done (2xx), skipped (not possible in its current state: 409,
412, 425, e.g. purge of a running one), not_found (404, e.g. completed and purged meanwhile) or
failed (anything else).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, Protocol

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rstq.cli.admin_client import (
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_UNREACHABLE,
    AdminError,
)
from rstq.cli.common import confirm_or_abort
from rstq.cli.render import console, err, print_json, status_text, table

SAMPLE: Final = 5
SHOWN_FAILURES: Final = 20
OUTCOMES: Final = ("done", "skipped", "not_found", "failed")


class OpClient(Protocol):
    def rows(self, query: str) -> list[dict[str, Any]]: ...

    def invocation_op(self, invocation_id: str, op: str) -> int: ...


class BadPredicate(ValueError):
    pass


def selection_query(where: str, limit: int | None) -> str:
    """The SELECT of the ids `where` matches; the predicate stands alone on its lines, in
    parentheses (an `OR` or a trailing `--` comment cannot reach the ORDER BY / LIMIT)."""
    pred = where.strip()
    if not pred:
        raise BadPredicate("--where: an empty predicate")
    if ";" in pred:
        raise BadPredicate("--where: one predicate, no `;`")
    return ("SELECT id, target, status FROM sys_invocation WHERE (\n" + pred + "\n)\n"
            "ORDER BY created_at, id" + (f" LIMIT {int(limit)}" if limit is not None else ""))


@dataclasses.dataclass
class Outcome:
    id: str
    outcome: str  # done, skipped, not_found, failed
    status: int | None = None  # the HTTP status of the answer
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome, "status": self.status,
                "message": self.message}


def apply_one(client: OpClient, inv_id: str, op: str) -> Outcome:
    """One PATCH; Unreachable is raised (the batch stops), every other answer is an outcome."""
    try:
        return Outcome(inv_id, "done", client.invocation_op(inv_id, op))
    except AdminError as e:
        if e.exit_code == EXIT_UNREACHABLE:
            raise
        kind = {EXIT_CONFLICT: "skipped", EXIT_NOT_FOUND: "not_found"}.get(e.exit_code,
                                                                           "failed")
        return Outcome(inv_id, kind, e.status, e.message)


def summary(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        counts[o.outcome] += 1
    return counts


@contextmanager
def _progress(total: int, op: str, show: bool) -> Iterator[Any]:
    if not show:
        yield None
        return
    with Progress(TextColumn(f"{op}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console(stderr=True), transient=True) as bar:
        yield (bar, bar.add_task(op, total=total))


def bulk_op(client: OpClient, op: str, past: str, where: str, *, limit: int | None, yes: bool,
            as_json: bool) -> None:
    try:
        query = selection_query(where, limit)
    except BadPredicate as e:
        raise click.UsageError(str(e)) from None
    try:
        selected = client.rows(query)
    except AdminError as e:
        raise AdminError(f"--where {where.strip()!r}: {e.message}", e.exit_code, e.status,
                         e.code) from None
    ids = [str(r["id"]) for r in selected]
    doc: dict[str, Any] = {"op": op, "where": where, "limit": limit, "selected": len(ids)}
    if not ids:
        err(f"no invocation matches {where.strip()!r}: nothing to {op}")
        if as_json:
            print_json({**doc, "summary": summary([]), "interrupted": False, "results": []})
        return
    capped = " (--limit reached)" if limit is not None and len(ids) == limit else ""
    err(f"{len(ids)} invocation(s) match{capped}; the first {min(SAMPLE, len(ids))}:")
    console(stderr=True).print(table(["id", "target", "status"],
                                     [(r["id"], r["target"], status_text(r["status"]))
                                      for r in selected[:SAMPLE]], no_wrap=("id",)))
    confirm_or_abort(f"{op.capitalize()} these {len(ids)} invocation(s)?", yes)

    outcomes: list[Outcome] = []
    in_flight: str | None = None
    stop: tuple[str, int] | None = None  # (why, exit code)
    try:
        with _progress(len(ids), op, sys.stderr.isatty()) as bar:
            for inv_id in ids:
                in_flight = inv_id
                try:
                    outcomes.append(apply_one(client, inv_id, op))
                except AdminError as e:  # unreachable: the rest would fail the same way
                    stop = (e.message, e.exit_code)
                    break
                in_flight = None
                if bar is not None:
                    bar[0].advance(bar[1])
    except KeyboardInterrupt:
        stop = ("interrupted", EXIT_FAILED)
    counts = summary(outcomes)
    done = [o.id for o in outcomes if o.outcome == "done"]
    if as_json:
        print_json({**doc, "summary": counts, "interrupted": stop is not None,
                    "results": [o.to_json() for o in outcomes]})
    line = (f"{past} {counts['done']}, skipped {counts['skipped']} (not possible in their "
            f"state), not found {counts['not_found']}, failed {counts['failed']}")
    if stop is not None:
        err(f"{op} stopped ({stop[0]}) after {len(outcomes)} of {len(ids)}: {line}")
        if in_flight is not None and not (outcomes and outcomes[-1].id == in_flight):
            err(f"the {op} of {in_flight} was sent: it may or may not have taken effect")
        if not as_json:
            err(f"done so far ({len(done)}):")
            for inv_id in done:
                sys.stdout.write(inv_id + "\n")
        sys.exit(stop[1])
    problems = [o for o in outcomes if o.outcome != "done"]
    if not as_json:
        for o in problems[:SHOWN_FAILURES]:
            err(f"  {o.outcome.replace('_', ' ')}: {o.id}: {o.message}")
        if len(problems) > SHOWN_FAILURES:
            err(f"  ... and {len(problems) - SHOWN_FAILURES} more (--json lists every one)")
    err(line)
    if counts["failed"]:
        sys.exit(EXIT_FAILED)
