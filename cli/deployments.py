"""`rstq deployments register URL | list | describe ID | remove ID` (restate's `deployments`)."""

from __future__ import annotations

from typing import Any

import click
from rstq.cli.admin_client import AdminClient
from rstq.cli.common import admin_options, confirm_or_abort, yes_option
from rstq.cli.render import console, err, fields, print_json, table


@click.group("deployments")
def deployments() -> None:
    """Register, list and remove service deployments."""


@deployments.command("register")
@click.argument("uri")
@click.option("--force", is_flag=True, help="Overwrite an existing deployment at the same URI.")
@click.option("--http1", "use_http_11", is_flag=True,
              help="Talk HTTP/1.1 (request-response mode) to the deployment.")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="Extra header sent to the deployment (repeatable).")
@click.option("--dry-run", is_flag=True, help="Discover and show, register nothing.")
@admin_options
def register(uri: str, force: bool, use_http_11: bool, headers: tuple[str, ...], dry_run: bool,
             client: AdminClient, as_json: bool) -> None:
    """Discover the services at URI and register them."""
    extra: dict[str, str] = {}
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep:
            raise click.BadParameter(f"{h!r}: expected NAME:VALUE", param_hint="--header")
        extra[name.strip()] = value.strip()
    status, doc = client.register_deployment(uri, force=force, use_http_11=use_http_11,
                                             headers=extra, dry_run=dry_run)
    if as_json:
        print_json(doc)
        return
    what = "would register" if dry_run else "registered" if status == 201 else "unchanged"
    err(f"{what}: deployment {doc['id']} at {uri}")
    rows = [(s["name"], s["ty"], s["revision"], len(s.get("handlers", [])),
             ", ".join(h["name"] for h in s.get("handlers", []))) for s in doc["services"]]
    console().print(table(["service", "type", "revision", "handlers", "names"], rows))


@deployments.command("list")
@admin_options
def list_(client: AdminClient, as_json: bool) -> None:
    """List registered deployments."""
    deps = client.list_deployments()
    if as_json:
        print_json(deps)
        return
    rows = [(d["id"], d["uri"], d.get("protocol_type", ""), d.get("created_at", ""),
             ", ".join(f"{s['name']}@{s['revision']}" for s in d.get("services", [])))
            for d in deps]
    console().print(table(["id", "endpoint", "protocol", "created_at", "services"], rows))


@deployments.command("describe")
@click.argument("deployment_id")
@admin_options
def describe(deployment_id: str, client: AdminClient, as_json: bool) -> None:
    """Show one deployment and its services."""
    doc = client.get_deployment(deployment_id)
    if as_json:
        print_json(doc)
        return
    out = console()
    out.print(_deployment_fields(doc))
    rows = [(s["name"], s["ty"], s["revision"], ", ".join(h["name"] for h in s["handlers"]))
            for s in doc.get("services", [])]
    out.print()
    out.print(table(["service", "type", "revision", "handlers"], rows))


def _deployment_fields(doc: dict[str, Any]) -> Any:
    return fields([("ID", doc["id"]), ("Endpoint", doc["uri"]),
                   ("Protocol", f"{doc.get('protocol_type')} over {doc.get('http_version')}"),
                   ("Service protocol", f"v{doc.get('min_protocol_version')}"
                                        f"..v{doc.get('max_protocol_version')}"),
                   ("Created", doc.get("created_at"))])


@deployments.command("remove")
@click.argument("deployment_id")
@yes_option
@admin_options
def remove(deployment_id: str, yes: bool, client: AdminClient, as_json: bool) -> None:
    """Remove a deployment (forced: its services' running invocations will fail)."""
    doc = client.get_deployment(deployment_id)  # 404 -> exit 4 before asking
    names = ", ".join(s["name"] for s in doc.get("services", [])) or "no services"
    confirm_or_abort(f"Remove deployment {deployment_id} at {doc['uri']} ({names})?", yes)
    client.remove_deployment(deployment_id)
    if as_json:
        print_json({"id": deployment_id, "removed": True})
    else:
        err(f"removed deployment {deployment_id}")
