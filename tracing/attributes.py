"""Span names, attribute keys and event names: the one place they are spelled.

They follow what restate-server 1.7 exports (shared/reference/restate-traces.md), so dashboards
and queries written for Restate work on rstq. Names added by rstq (marked) are for what Restate
does not show: the early attempt marker, suspension and resume, notifications.
"""

from __future__ import annotations

from typing import Final

SCOPE: Final = "services"  # instrumentation scope name, as restate-server's
DEFAULT_SERVICE_NAME: Final = "rstq"

# --- span names (followed by " <Service>/<handler>" or " <Service>/{key}/<handler>") ----------
INGRESS: Final = "ingress"
INVOCATION: Final = "invocation-start"
ATTEMPT: Final = "invocation-attempt"
ATTEMPT_STARTED: Final = "invocation-attempt-started"  # rstq: exported when an attempt begins
END: Final = "invocation-end"

# --- span attributes ---------------------------------------------------------------------------
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
INVOCATION_ID: Final = "restate.invocation.id"
INVOCATION_TARGET: Final = "restate.invocation.target"
INVOCATION_RESULT: Final = "restate.invocation.result"  # success | failure
DEPLOYMENT_ID: Final = "restate.deployment.id"
DEPLOYMENT_ADDRESS: Final = "restate.deployment.address"
PROTOCOL_VERSION: Final = "restate.deployment.service_protocol_version"
RETRY_COUNT: Final = "restate.invocation.retry_count"  # rstq: failed attempts before this one
ATTEMPT_NUMBER: Final = "restate.invocation.attempt"  # rstq: 1, 2, ... (the epoch)
ATTEMPT_OUTCOME: Final = "restate.invocation.attempt.outcome"  # rstq: end|suspended|failed|aborted
ERROR_CODE: Final = "restate.error.code"  # rstq: failure code of a failed attempt / invocation
CLIENT_ADDRESS: Final = "client.socket.address"
CLIENT_PORT: Final = "client.socket.port"
LINK_RUNTIME: Final = "restate.runtime"  # link attribute on a send's new trace

RPC_SYSTEM_RESTATE: Final = "restate"
RESULT_SUCCESS: Final = "success"
RESULT_FAILURE: Final = "failure"

# --- events on the attempt span ----------------------------------------------------------------
EV_NEW_COMMAND: Final = "restate.invocation.lifecycle.new_command"
EV_RUN_ENDED: Final = "restate.invocation.lifecycle.run_ended"
EV_NOTIFICATION: Final = "restate.invocation.lifecycle.notification"  # rstq
EV_SUSPENDED: Final = "restate.invocation.lifecycle.suspended"  # rstq
EV_RESUMED: Final = "restate.invocation.lifecycle.resumed"  # rstq
COMMAND_TYPE: Final = "restate.journal.command.type"  # "Command/Run", "Command/Call", ...
COMMAND_NAME: Final = "restate.journal.command.name"  # ctx.run name, when given
NOTIFICATION_ID: Final = "restate.journal.notification.id"  # "CompletionId: 3"
NOTIFICATION_TYPE: Final = "restate.journal.notification.type"  # rstq: "Notification/Sleep"
WAITING_COMPLETIONS: Final = "restate.invocation.waiting_completions"  # rstq, on suspended
WAITING_SIGNALS: Final = "restate.invocation.waiting_signals"  # rstq, on suspended

# --- status codes as stored (sys_span.status) --------------------------------------------------
UNSET: Final = "UNSET"
OK: Final = "OK"
ERROR: Final = "ERROR"
