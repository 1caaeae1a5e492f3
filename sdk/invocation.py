"""Drives one attempt: runs the handler against a :class:`~.vm.VM`, executes ``ctx.run``
closures, decides when to block, suspend or fail. IO is delegated to a :class:`Shell`."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
import traceback
from collections.abc import Callable
from typing import Any, Protocol

from rstq.protocol import Failure, FailureMetadata

from .context import CONTEXT_FOR_KIND, Context, RunOptions
from .exceptions import (
    AttemptFailed,
    RetryableError,
    SdkInternalBaseException,
    SuspendedException,
    TerminalError,
)
from .futures import RestateDurableFuture
from .handler import Handler
from .log import current_vm
from .vm import CANCEL_HANDLE, VM, AttemptEnded

_DEFAULT_INITIAL_MS = 50
_DEFAULT_FACTOR = 2.0
_DEFAULT_MAX_INTERVAL_MS = 10_000


class Shell(Protocol):
    """The IO side: flushes the VM output and waits for input or a finished run."""

    async def wait_progress(self) -> None: ...

    def notify_progress(self) -> None: ...


def _failure(t: TerminalError) -> Failure:
    md = tuple(FailureMetadata(k, v) for k, v in (t.metadata or {}).items())
    return Failure(t.status_code, t.message, md)


def _ms(td: Any) -> int | None:
    return None if td is None else int(td.total_seconds() * 1000)


class Invocation:
    """One attempt of one handler invocation."""

    def __init__(self, vm: VM, handler: Handler, shell: Shell,
                 attempt_headers: dict[str, str] | None = None,
                 run_in_executor: bool = True) -> None:
        self.vm = vm
        self.handler = handler
        self.shell = shell
        self.attempt_headers = attempt_headers or {}
        self.run_in_executor = run_in_executor
        ctx_cls = CONTEXT_FOR_KIND[(handler.service_tag.kind, handler.kind)]
        self.ctx: Context = ctx_cls(self)
        self.calls: list[tuple[int, int]] = []  # (result, invocation-id) handles
        self._pending_runs: list[tuple[int, Callable[[], Any], RunOptions[Any]]] = []
        self._running = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._failed = False

    # ------------------------------------------------------------------ handler
    async def execute(self) -> None:
        h = self.handler
        vm = self.vm
        current_vm.set(vm)  # this task's context: getLogger() checks it for replay
        try:
            if h.arity == 2:
                assert vm.input is not None
                raw = vm.input.value.content if vm.input.value is not None else b""
                try:
                    arg = h.input_serde.deserialize(raw)
                except Exception as e:
                    raise TerminalError(f"Unable to parse an input argument. {e}") from e
                out = await h.fn(self.ctx, arg)
            else:
                out = await h.fn(self.ctx)
            vm.output(value=h.output_serde.serialize(out))
        except TerminalError as t:
            self._terminal(t)
        except RetryableError as r:
            vm.fail(r.status_code, r.message, _trace(r), _ms(r.retry_after))
        except (SdkInternalBaseException, asyncio.CancelledError):
            pass
        except Exception as e:
            cause: BaseException | None = e
            while cause is not None:  # a TerminalError re-raised inside another exception
                if isinstance(cause, TerminalError):
                    self._terminal(cause)
                    break
                cause = cause.__cause__
            else:
                vm.fail(500, repr(e), _trace(e))
        finally:
            for task in self._tasks:
                task.cancel()

    def _terminal(self, t: TerminalError) -> None:
        try:
            self.vm.output(failure=_failure(t))
        except AttemptEnded:
            pass

    # ------------------------------------------------------------------ waiting
    def has_pending_work(self) -> bool:
        return bool(self._pending_runs)

    async def wait_any(self, handles: list[int]) -> int:
        """Until one of ``handles`` completed; returns the first to arrive. Raises
        TerminalError(409) on cancellation, SuspendedException when the runtime has to
        resume us later."""
        vm = self.vm
        while True:
            if self._pending_runs:
                self._launch_runs()
            if self._failed or vm.ended:
                raise AttemptFailed()
            best = 0
            best_seq = 0
            for h in handles:
                if vm.is_completed(h):
                    s = vm.seq(h)
                    if best == 0 or s < best_seq:
                        best, best_seq = h, s
            if vm.cancel_pending() and (best == 0 or vm.seq(CANCEL_HANDLE) < best_seq):
                self._cancelled()
            if best != 0:
                return best
            if self._running == 0:
                if vm.input_closed:
                    vm.suspend(handles)
                    raise SuspendedException()
                vm.awaiting_on(handles)  # as restate-sdk: only while the stream is open
            await self.shell.wait_progress()

    def _cancelled(self) -> None:
        """Cancel signal: cancel the child calls we know of, then fail with 409."""
        vm = self.vm
        vm.cancel_consumed = True
        cancel_seq = vm.seq(CANCEL_HANDLE)
        for res, idh in self.calls:
            finished = vm.is_completed(res) and vm.seq(res) < cancel_seq
            if vm.is_completed(idh) and vm.seq(idh) < cancel_seq and not finished:
                vm.sys_cancel_invocation(str(vm.take(idh)))
        raise TerminalError("cancelled", 409)

    # ------------------------------------------------------------------ ctx.run
    def run(self, name: str, action: Callable[[], Any],
            opts: RunOptions[Any]) -> RestateDurableFuture[Any]:
        vm = self.vm
        cid = vm.sys_run(name)
        if vm.needs_execution(cid):
            self._pending_runs.append((cid, action, opts))
        serde = opts.serde
        return RestateDurableFuture(
            self, cid, lambda raw: serde.deserialize(raw) if type(raw) is bytes else None)

    def _launch_runs(self) -> None:
        runs, self._pending_runs = self._pending_runs, []
        for cid, action, opts in runs:
            self._running += 1
            task = asyncio.ensure_future(self._execute(cid, action, opts))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, cid: int, action: Callable[[], Any], opts: RunOptions[Any]) -> None:
        vm = self.vm
        t0 = time.monotonic()
        try:
            if inspect.iscoroutinefunction(action) or not self.run_in_executor:
                result = action()
            else:
                ctx = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(None, ctx.run, action)
            if inspect.isawaitable(result):
                result = await result
            vm.propose_run_completion(cid, value=opts.serde.serialize(result))
        except TerminalError as t:
            vm.propose_run_completion(cid, failure=_failure(t))
        except (asyncio.CancelledError, SdkInternalBaseException):
            raise
        except Exception as e:
            self._run_failed(cid, e, opts, int((time.monotonic() - t0) * 1000))
        finally:
            self._running -= 1
            self.shell.notify_progress()

    def _run_failed(self, cid: int, e: Exception, o: RunOptions[Any], elapsed_ms: int) -> None:
        """A retryable failure inside ctx.run: apply the step's retry policy."""
        vm = self.vm
        assert vm.start is not None
        max_duration = o.max_duration or o.max_retry_duration
        own_policy = any(x is not None for x in (
            o.max_attempts, max_duration, o.initial_retry_interval, o.max_retry_interval,
            o.retry_interval_factor))
        retry_after = _ms(e.retry_after) if isinstance(e, RetryableError) else None
        message = e.message if isinstance(e, RetryableError) else repr(e)
        index, cmd = vm.run_commands[cid]
        if own_policy or retry_after is not None:
            retries = vm.start.retry_count_since_last_stored_entry
            attempts = retries + 1
            exhausted = (o.max_attempts is not None and attempts >= o.max_attempts) or (
                max_duration is not None
                and vm.start.duration_since_last_stored_entry + elapsed_ms
                >= int(max_duration.total_seconds() * 1000))
            if exhausted:
                vm.propose_run_completion(cid, failure=Failure(500, message))
                return
            initial = _ms(o.initial_retry_interval) or _DEFAULT_INITIAL_MS
            factor = o.retry_interval_factor or _DEFAULT_FACTOR
            cap = _ms(o.max_retry_interval) or _DEFAULT_MAX_INTERVAL_MS
            delay = retry_after if retry_after is not None else int(
                min(initial * factor ** retries, cap))
            vm.fail(500, message, _trace(e), delay, cmd, index)
        else:
            vm.fail(500, message, _trace(e), None, cmd, index)
        self._failed = True


def _trace(e: BaseException) -> str:
    return "".join(traceback.format_exception(e))
