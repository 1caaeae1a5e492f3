"""Builders for state-machine tests: commands with real protocol payloads."""

from __future__ import annotations

from rstq.core import commands as c
from rstq.core.partitioning import partition_key_for, partition_of
from rstq.protocol import messages as pm
from rstq.protocol.ids import InvocationId

T0 = 1_700_000_000_000


def inv_id_on(partition: int, partitions: int, service: str = "Svc", key: str | None = None,
              n: int = 0) -> str:
    """A deterministic invocation id on `partition` (keyed ids: the key's own partition)."""
    if key is not None:
        pk = partition_key_for(service, key)
        assert partition_of(pk, partitions) == partition, "key is on another partition"
    else:
        pk = partition * ((1 << 64) // partitions) + n
    return str(InvocationId(pk, (T0 << 64) + n))


def invoke(inv_id: str, service: str = "Svc", handler: str = "run", key: str = "",
           service_ty: str = "service", handler_ty: str = "", payload: bytes = b'"hi"',
           **kw: object) -> c.Invoke:
    return c.Invoke(invocation_id=inv_id, service=service, handler=handler, key=key,
                    service_ty=service_ty, handler_ty=handler_ty, input=payload,
                    **kw)  # type: ignore[arg-type]


def entry(inv_id: str, epoch: int, msg: pm.Message, **kw: object) -> c.AppendEntry:
    return c.AppendEntry(inv_id, epoch, msg.TYPE, msg.encode(), **kw)  # type: ignore[arg-type]


def set_state(inv_id: str, epoch: int, key: bytes, value: bytes) -> c.AppendEntry:
    return entry(inv_id, epoch, pm.SetStateCommandMessage(key=key,
                                                         value=pm.Value(content=value)))


def output(inv_id: str, epoch: int, value: bytes | None = b'"ok"',
           failure: tuple[int, str] | None = None) -> c.AppendEntry:
    if failure is not None:
        msg = pm.OutputCommandMessage(failure=pm.Failure(code=failure[0], message=failure[1]))
    else:
        msg = pm.OutputCommandMessage(value=pm.Value(content=value or b""))
    return entry(inv_id, epoch, msg)


def sleep(inv_id: str, epoch: int, completion_id: int, wake_up: int) -> c.AppendEntry:
    return entry(inv_id, epoch, pm.SleepCommandMessage(wake_up_time=wake_up,
                                                       result_completion_id=completion_id))


def run_cmd(inv_id: str, epoch: int, completion_id: int) -> c.AppendEntry:
    return entry(inv_id, epoch, pm.RunCommandMessage(result_completion_id=completion_id,
                                                     name="step"))


def run_done(inv_id: str, epoch: int, completion_id: int, value: bytes) -> c.AppendEntry:
    return entry(inv_id, epoch, pm.RunCompletionNotificationMessage(
        completion_id=completion_id, value=pm.Value(content=value)))
