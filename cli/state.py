"""`rstq state get | set | clear`: a virtual object's / workflow's K/V state.

Reads come from the `state` SQL table; writes go through the admin API
(`POST /services/{service}/state`), so every change is a logged StateMutation command on the
key's partition, like any other. The admin API replaces an object's whole state, so `set` and
`clear STATE_KEY` read the current state and write it back changed (not atomic with handlers
running on that key at the same moment).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rstq.cli.admin_client import EXIT_NOT_FOUND, AdminClient, sql_str
from rstq.cli.common import admin_options, confirm_or_abort, yes_option
from rstq.cli.render import console, err, print_json, table


@click.group("state")
def state() -> None:
    """Read and change the state of a virtual object or workflow key."""


def read_state(client: AdminClient, service: str, key: str) -> dict[str, bytes]:
    rows = client.rows("SELECT key, value FROM state WHERE service_name = "
                       f"{sql_str(service)} AND service_key = {sql_str(key)} ORDER BY key")
    return {str(r["key"]): bytes(r["value"] or b"") for r in rows}


def _json_value(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return {"hex": raw.hex()}


def _shown(raw: bytes, binary: bool) -> str:
    if binary:
        return raw.hex()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return f"0x{raw.hex()} (binary; --binary shows hex)"


@state.command("get")
@click.argument("service")
@click.argument("key")
@click.argument("state_key", required=False)
@click.option("--binary", is_flag=True, help="Show values as hex bytes.")
@admin_options
def get(service: str, key: str, state_key: str | None, binary: bool, client: AdminClient,
        as_json: bool) -> None:
    """Show the state of SERVICE's KEY (one STATE_KEY, or all of them)."""
    values = read_state(client, service, key)
    if state_key is not None:
        if state_key not in values:
            err(f"{service}/{key} has no state key {state_key!r}")
            raise SystemExit(EXIT_NOT_FOUND)
        values = {state_key: values[state_key]}
    if as_json:
        print_json({k: (v.hex() if binary else _json_value(v)) for k, v in values.items()})
        return
    if not values:
        err(f"{service}/{key} has no state")
        return
    console().print(table(["key", "value", "bytes"],
                          [(k, _shown(v, binary), len(v)) for k, v in values.items()]))


def _encode(value: str, raw: bool, binary: bool) -> bytes:
    if binary:
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise click.BadParameter("--binary: VALUE must be hex", param_hint="VALUE") from None
    if raw:
        return value.encode()
    try:
        json.loads(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not JSON (the SDKs' default serde); quote strings as '\"text\"' or "
            "pass --raw to store the bytes as given", param_hint="VALUE") from None
    return value.encode()


@state.command("set")
@click.argument("service")
@click.argument("key")
@click.argument("state_key")
@click.argument("value")
@click.option("--raw", is_flag=True, help="Store VALUE's UTF-8 bytes as is (not checked as JSON).")
@click.option("--binary", is_flag=True, help="VALUE is hex: store those bytes.")
@admin_options
def set_(service: str, key: str, state_key: str, value: str, raw: bool, binary: bool,
         client: AdminClient, as_json: bool) -> None:
    """Set STATE_KEY of SERVICE's KEY to VALUE (JSON by default)."""
    new = _encode(value, raw, binary)
    values = read_state(client, service, key)
    old = values.get(state_key)
    values[state_key] = new
    client.replace_state(service, key, values)
    if as_json:
        print_json({"service": service, "key": key, "state_key": state_key,
                    "old": None if old is None else _json_value(old),
                    "new": _json_value(new)})
    else:
        was = "unset" if old is None else _shown(old, binary)
        err(f"{service}/{key} {state_key}: {was} -> {_shown(new, binary)}")


@state.command("clear")
@click.argument("service")
@click.argument("key")
@click.argument("state_keys", nargs=-1)
@yes_option
@admin_options
def clear(service: str, key: str, state_keys: tuple[str, ...], yes: bool, client: AdminClient,
          as_json: bool) -> None:
    """Remove STATE_KEYS (default: all state) of SERVICE's KEY."""
    values = read_state(client, service, key)
    gone = [k for k in state_keys if k in values] if state_keys else sorted(values)
    what = ", ".join(gone) if state_keys else f"all state ({len(values)} keys)"
    confirm_or_abort(f"Clear {what} of {service}/{key}?", yes)
    keep = {k: v for k, v in values.items() if k not in gone}
    client.replace_state(service, key, keep)
    if as_json:
        print_json({"service": service, "key": key, "cleared": gone, "kept": sorted(keep)})
    else:
        err(f"{service}/{key}: cleared {', '.join(gone) or 'nothing'}")
