"""`rstq services list | describe NAME` (restate's `services`)."""

from __future__ import annotations

from typing import Any

import click
from rstq.cli.admin_client import AdminClient, sql_str
from rstq.cli.common import admin_options
from rstq.cli.render import console, fields, print_json, status_text, table


@click.group("services")
def services() -> None:
    """Inspect registered services."""


@services.command("list")
@admin_options
def list_(client: AdminClient, as_json: bool) -> None:
    """List services with their type, revision, deployment and live invocations."""
    svcs = client.list_services()
    live = _live_counts(client)
    if as_json:
        print_json([{**s, "live_invocations": live.get(s["name"], 0)} for s in svcs])
        return
    rows = [(s["name"], s["ty"], s["revision"], "yes" if s.get("public") else "no",
             s.get("deployment_id", ""), len(s.get("handlers", [])), live.get(s["name"], 0))
            for s in sorted(svcs, key=lambda s: str(s["name"]))]
    console().print(table(["name", "type", "revision", "public", "deployment", "handlers",
                           "live"], rows))


def _live_counts(client: AdminClient) -> dict[str, int]:
    rows = client.rows("SELECT target_service_name AS s, count(*) AS n FROM sys_invocation "
                       "WHERE status <> 'completed' GROUP BY target_service_name")
    return {str(r["s"]): int(r["n"]) for r in rows}


@services.command("describe")
@click.argument("name")
@admin_options
def describe(name: str, client: AdminClient, as_json: bool) -> None:
    """Show a service: settings, handlers, and its invocations by status."""
    doc = client.get_service(name)
    by_status = client.rows(
        "SELECT status, count(*) AS n FROM sys_invocation WHERE target_service_name = "
        f"{sql_str(name)} GROUP BY status ORDER BY status")
    if as_json:
        print_json({**doc, "invocations_by_status": {r["status"]: r["n"] for r in by_status}})
        return
    out = console()
    retry: dict[str, Any] = doc.get("retry_policy", {})
    out.print(fields([
        ("Name", doc["name"]), ("Type", doc["ty"]), ("Revision", doc.get("revision")),
        ("Public", "yes" if doc.get("public") else "no"),
        ("Deployment", doc.get("deployment_id")),
        ("Documentation", doc.get("documentation")),
        ("Journal retention", doc.get("journal_retention")),
        ("Idempotency retention", doc.get("idempotency_retention")),
        ("Inactivity timeout", doc.get("inactivity_timeout")),
        ("Abort timeout", doc.get("abort_timeout")),
        ("Retry policy", f"{retry.get('initial_interval')} x{retry.get('exponentiation_factor')}"
                         f" up to {retry.get('max_interval')}, {retry.get('max_attempts')} "
                         f"attempts, then {retry.get('on_max_attempts')}" if retry else None),
    ]))
    out.print()
    rows = [(h["name"], h.get("ty", ""), h.get("input_description", ""),
             h.get("output_description", ""), h.get("documentation", "")) for h in doc["handlers"]]
    out.print(table(["handler", "kind", "input", "output", "documentation"], rows))
    if by_status:
        out.print()
        out.print(table(["status", "invocations"],
                        [(status_text(r["status"]), r["n"]) for r in by_status]))
