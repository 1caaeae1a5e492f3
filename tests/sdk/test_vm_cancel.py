"""Sans-IO: cancellation while awaiting a call cancels the child (known invocation id) and
fails the invocation with 409 "cancelled"; a replay of that journal takes the same path."""

from __future__ import annotations

from rstq.protocol import (
    VOID,
    CallCommandMessage,
    CallInvocationIdCompletionNotificationMessage,
    EndMessage,
    Failure,
    FrameDecoder,
    InputCommandMessage,
    OutputCommandMessage,
    SendSignalCommandMessage,
    SignalNotificationMessage,
    StartMessage,
    Value,
    encode_frame,
)
from rstq.sdk import Context, Service
from rstq.sdk.invocation import Invocation
from rstq.sdk.vm import VM

from tests.sdk.test_transcripts import ScriptedShell, add

svc = Service("Parent")


@svc.handler()
async def parent(ctx: Context, key: str) -> int:
    return await ctx.object_call(add, key=key, arg=1)


def _run(frames: list[bytes], known: int, bidi: bool) -> list[object]:
    import asyncio

    vm = VM(6)
    vm.notify_input(b"".join(frames[:known]))
    rest = frames[known:]
    if not bidi:
        vm.notify_input(b"".join(rest))
        rest = []
    shell = ScriptedShell(vm, rest, close_on_wait=not bidi)
    inv = Invocation(vm, svc.handlers["parent"], shell, run_in_executor=False)
    shell.inv = inv
    asyncio.run(inv.execute())
    shell.out += vm.take_output()
    return [m for _, m in FrameDecoder().feed(bytes(shell.out))]


START = StartMessage(id=bytes(24), debug_id="inv_1x", known_entries=1, partial_state=True)
INPUT = InputCommandMessage(value=Value(b'"k"'))
CALL = CallCommandMessage(service_name="Counter", handler_name="add", parameter=b"1", key="k",
                          invocation_id_notification_idx=1, result_completion_id=2)
CHILD = CallInvocationIdCompletionNotificationMessage(completion_id=1, invocation_id="inv_1c")
CANCEL = SignalNotificationMessage(idx=1, void=VOID)
CANCEL_CHILD = SendSignalCommandMessage(target_invocation_id="inv_1c", idx=1, void=VOID)
OUT = OutputCommandMessage(failure=Failure(409, "cancelled"))


def test_cancel_propagates_to_child_call_and_fails_409() -> None:
    frames = [encode_frame(m) for m in (START, INPUT, CHILD, CANCEL)]
    assert _run(frames, 2, bidi=True) == [CALL, CANCEL_CHILD, OUT, EndMessage()]


def test_replayed_cancel_takes_the_same_path() -> None:
    start = START.replace(known_entries=5)
    frames = [encode_frame(m) for m in (start, INPUT, CALL, CHILD, CANCEL, CANCEL_CHILD)]
    assert _run(frames, 6, bidi=False) == [OUT, EndMessage()]
