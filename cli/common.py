"""What every client command shares: `--admin`, `--token`, `--json`, `--yes`, and errors mapped
to the documented exit codes (rstq.cli.admin_client.EXIT_*)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click
from rstq.cli.admin_client import (
    DEFAULT_ADMIN_URL,
    EXIT_ABORTED,
    AdminClient,
    AdminError,
)
from rstq.cli.render import err, print_json

F = TypeVar("F", bound=Callable[..., Any])


def admin_options(f: F) -> F:
    """`--admin URL` (env RSTQ_ADMIN_URL), `--token` (env RSTQ_ADMIN_TOKEN), `--json`; the
    command receives a ready `client: AdminClient` and `as_json: bool`; AdminError -> exit code."""

    @click.option("--admin", "admin_url", envvar="RSTQ_ADMIN_URL", default=DEFAULT_ADMIN_URL,
                  show_default=True, help="Admin API URL (env RSTQ_ADMIN_URL).")
    @click.option("--token", envvar="RSTQ_ADMIN_TOKEN", default=None,
                  help="Bearer token of the admin API (env RSTQ_ADMIN_TOKEN).")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
    @functools.wraps(f)
    def wrapper(*args: Any, admin_url: str, token: str | None, **kwargs: Any) -> Any:
        client = AdminClient(admin_url, token)
        try:
            return f(*args, client=client, **kwargs)
        except AdminError as e:
            if kwargs.get("as_json"):
                print_json({"error": e.message, "exit_code": e.exit_code, "status": e.status,
                            "code": e.code})
            err(f"error: {e.message}")
            sys.exit(e.exit_code)

    return cast(F, wrapper)


def confirm_or_abort(question: str, yes: bool) -> None:
    """Ask (y/N on stdin) unless --yes; no answer (EOF, e.g. a script without --yes) aborts."""
    if yes:
        return
    try:
        ok = click.confirm(question, default=False, err=True)
    except click.Abort:
        ok = False
        err("")
    if not ok:
        err("aborted: not confirmed (pass --yes to skip the question)")
        sys.exit(EXIT_ABORTED)


yes_option = click.option("--yes", "-y", is_flag=True,
                          help="Do not ask for confirmation (scripts).")
