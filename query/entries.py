"""Journal entries as sys_journal shows them: decoded once, rendered as names and JSON."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any, NamedTuple

from rstq.protocol import messages as pm


class EntryInfo(NamedTuple):
    """What sys_journal needs decoded from one entry, except `completed` (it changes later);
    the columns that come from the type code alone are `describe_type`'s."""

    name: str | None
    invoked_target: str | None
    sleep_wakeup_at: int | None
    promise_name: str | None
    entry_json: str
    completion_id: int | None  # the result completion id, for commands that have one


def _kind_name(type_code: int, cls: type[pm.Message] | None) -> tuple[str, str]:
    if pm.is_notification(type_code):
        kind = "Notification"
        name = cls.__name__.removesuffix("NotificationMessage") if cls else ""
    else:
        kind = "Command"
        name = cls.__name__.removesuffix("CommandMessage") if cls else ""
    if not name:
        name = f"Custom(0x{type_code:04x})" if pm.is_custom_command(type_code) else \
            f"Unknown(0x{type_code:04x})"
    return kind, name


_FIELDS: dict[type, tuple[str, ...]] = {}


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError:
            return {"hex": v.hex()}
    if isinstance(v, enum.Enum):
        return v.name
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, pm.Message):
        names = _FIELDS.get(type(v))
        if names is None:
            fields = dataclasses.fields(v)  # type: ignore[arg-type]
            names = _FIELDS[type(v)] = tuple(f.name for f in fields)
        out = {}
        for n in names:
            x = getattr(v, n)
            if x is not None and x != "" and x != b"" and x != ():
                out[n] = _jsonable(x)
        return out
    return v


_KINDS: dict[int, tuple[str, str]] = {}


def describe_type(type_code: int) -> tuple[str, str]:
    """(entry_type, entry_lite_json): what sys_journal shows without decoding the payload."""
    out = _KINDS.get(type_code)
    if out is None:
        kind, name = _kind_name(type_code, pm.MESSAGE_TYPES.get(type_code))
        out = _KINDS[type_code] = (f"{kind}: {name}", json.dumps({kind: {name: {}}},
                                                                  separators=(",", ":")))
    return out


_MEMO: dict[tuple[int, bytes], EntryInfo] = {}
# Bounded small: it keeps each payload (and its JSON) alive, so a large memo grows the
# process with history (25k entries held ~15 MB).
MEMO_MAX = 8192
stats = {"decoded": 0}


def describe(type_code: int, raw: bytes) -> EntryInfo:
    """The entry's sys_journal columns; memoized (identical payloads are common)."""
    key = (type_code, raw)
    info = _MEMO.get(key)
    if info is None:
        if len(_MEMO) >= MEMO_MAX:
            _MEMO.clear()
        info = _MEMO[key] = _describe(type_code, raw)
        stats["decoded"] += 1
    return info


def _describe(type_code: int, raw: bytes) -> EntryInfo:
    cls = pm.MESSAGE_TYPES.get(type_code)
    kind, name = _kind_name(type_code, cls)
    msg: Any = None
    body: Any
    try:
        msg = pm.decode_message(type_code, raw)
        body = _jsonable(msg)
    except Exception as e:  # a corrupt or unknown payload must not break the table
        body = {"undecodable": str(e), "raw_hex": raw.hex()}
    entry_name = getattr(msg, "entry_name", None) if isinstance(msg, pm.Command) else None
    target = sleep_at = promise = None
    if isinstance(msg, pm.CallCommandMessage | pm.OneWayCallCommandMessage):
        target = (f"{msg.service_name}/{msg.key}/{msg.handler_name}" if msg.key
                  else f"{msg.service_name}/{msg.handler_name}")
    elif isinstance(msg, pm.SleepCommandMessage):
        sleep_at = msg.wake_up_time
    if isinstance(msg, pm.GetPromiseCommandMessage | pm.PeekPromiseCommandMessage
                  | pm.CompletePromiseCommandMessage):
        promise = msg.key
    cid = getattr(msg, "result_completion_id", None) if isinstance(msg, pm.Command) else None
    return EntryInfo(
        name=entry_name or None,
        invoked_target=target,
        sleep_wakeup_at=sleep_at,
        promise_name=promise,
        entry_json=json.dumps({kind: {name: body}}, separators=(",", ":"), ensure_ascii=False),
        completion_id=cid if isinstance(cid, int) else None,
    )
