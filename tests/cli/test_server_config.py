"""Server-level defaults (retention, timeouts, retry policy of handlers that set none) from
`rstq server` flags and its TOML config file (`--config`), through a real `rstq server`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from rstq.cli.main import main
from rstq.cli.server_config import server_defaults
from rstq.core.discovery import (
    SERVER_DEFAULTS,
    HandlerDef,
    OnMaxAttempts,
    RetryPolicy,
    ServerDefaults,
    ServiceDef,
    effective_settings,
)

from tests.support.harness.hypercorn_proc import HypercornProcess
from tests.support.harness.rstq_server import RstqServer

APP = "tests.support.apps.defaults_services:app"
H, D = 3_600_000, 86_400_000

CONFIG = """
# restate-server's names and places
default-journal-retention = "2d"
default-idempotency-retention = "5h"          # --default-idempotency-retention 3h wins
default-workflow-completion-retention = "P3D"

[worker.invoker]
inactivity-timeout = "30s"
abort-timeout = "3 min"

[default-retry-policy]
initial-interval = "250ms"
exponentiation-factor = 1.5
max-interval = "20s"
max-attempts = 2
on-max-attempts = "kill"
"""


def query(admin: httpx.Client, sql: str) -> list[dict[str, Any]]:
    r = admin.post("/query", json={"query": sql}, headers={"accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_defaults_from_config_file_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "rstq.toml"
    cfg.write_text(CONFIG)
    with HypercornProcess(APP) as svc, \
            RstqServer(extra_args=["--config", str(cfg),
                                   "--default-idempotency-retention", "3h"]) as srv, \
            httpx.Client(base_url=srv.admin_url, timeout=30) as admin, \
            httpx.Client(base_url=srv.ingress_url, timeout=30) as ingress:
        srv.register(svc.url)

        # The admin API shows a service that sets nothing with the server's defaults ...
        greeter = admin.get("/services/Greeter").json()
        assert {k: greeter[k] for k in ("journal_retention", "idempotency_retention",
                                        "inactivity_timeout", "abort_timeout")} == {
            "journal_retention": "2d", "idempotency_retention": "3h",
            "inactivity_timeout": "30s", "abort_timeout": "3m"}
        assert greeter["retry_policy"] == {
            "initial_interval": "250ms", "exponentiation_factor": 1.5, "max_attempts": 2,
            "max_interval": "20s", "on_max_attempts": "Kill"}
        assert admin.get("/services/Wf").json()["workflow_completion_retention"] == "3d"
        # ... and one that sets its own with those.
        tuned = admin.get("/services/Tuned").json()
        assert (tuned["journal_retention"], tuned["idempotency_retention"],
                tuned["inactivity_timeout"], tuned["abort_timeout"]) == ("2h", "3h", "30s", "2m")
        assert tuned["retry_policy"]["max_attempts"] == 5
        assert tuned["retry_policy"]["on_max_attempts"] == "Kill"

        # Invocations get them: plain calls keep 2 days, idempotent ones 3 h (journal capped).
        assert ingress.post("/Greeter/greet", json="a").status_code == 200
        r = ingress.post("/Greeter/greet", json="b", headers={"idempotency-key": "k1"})
        assert r.status_code == 200, r.text
        rows = query(admin, "SELECT coalesce(idempotency_key, '') AS k, "
                            "CAST(completion_retention AS BIGINT) AS c, "
                            "CAST(journal_retention AS BIGINT) AS j FROM sys_invocation "
                            "WHERE target_service_name = 'Greeter' ORDER BY created_at")
        assert rows == [{"k": "", "c": 2 * D, "j": 2 * D}, {"k": "k1", "c": 3 * H, "j": 3 * H}]

        # The default retry policy: Failing/always has its own interval but no attempt limit,
        # so after the server's 2 attempts it is killed (on-max-attempts = "kill").
        r = ingress.post("/Failing/always/send", json="x")
        assert r.status_code == 202, r.text
        inv_id = r.json()["invocationId"]
        deadline = time.monotonic() + 30
        while True:
            got = query(admin, f"SELECT status, completion_result FROM sys_invocation "
                               f"WHERE id = '{inv_id}'")
            if got and got[0]["status"] == "completed":
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.1)
        assert got[0]["completion_result"] == "failure"
        assert ingress.post("/Failing/attempts", json="x").json() == 2


def run_server(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["server", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(("text", "message"), [
    ('default-jornal-retention = "1d"\n',
     "unknown key 'default-jornal-retention' (did you mean 'default-journal-retention'?)"),
    ('default-journal-retention = "2 fortnights"\n',
     "default-journal-retention: invalid duration '2 fortnights'"),
    ("default-journal-retention = 86400\n",
     'default-journal-retention: expected a duration string such as "1d"'),
    ('[worker.invoker]\nconcurrent-invocations-limit = 5\n',
     "unknown key 'worker.invoker.concurrent-invocations-limit' (in [worker.invoker] rstq "
     "reads inactivity-timeout, abort-timeout)"),
    ('[default-retry-policy]\nmax-attempts = 0\n',
     'default-retry-policy.max-attempts: expected a positive integer or "unlimited", got 0'),
    ('[default-retry-policy]\non-max-attempts = "explode"\n',
     "default-retry-policy.on-max-attempts: 'explode' is not one of 'pause', 'kill'"),
    ('[default-retry-policy]\nexponentiation-factor = 0.5\n',
     "default-retry-policy.exponentiation-factor: 0.5 is not in the range x>=1.0"),
    ('default-inactivity-timeout = "1s"\n[worker.invoker]\ninactivity-timeout = "2s"\n',
     "worker.invoker.inactivity-timeout: the same option as default-inactivity-timeout, "
     "set twice"),
    ('max-inbox = "lots"\n', "max-inbox: 'lots' is not a valid integer"),
    ("enable-protocol-v7 = 1\n", "enable-protocol-v7: expected true or false, got 1"),
    ("[worker]\ncleanup-interval = \"1h\"\n", "unknown key 'worker.cleanup-interval'"),
    ("[ingress\n", "not valid TOML"),
])
def test_config_file_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    cfg = tmp_path / "rstq.toml"
    cfg.write_text(text)
    code, out = run_server("--config", str(cfg), "--data-dir", str(tmp_path / "data"))
    assert code == 1, out
    assert out.startswith(f"Error: config file {cfg}: "), out
    assert message in out, out
    assert "Traceback" not in out and not (tmp_path / "data").exists()


def test_config_file_missing_and_bad_duration_flag(tmp_path: Path) -> None:
    code, out = run_server("--config", str(tmp_path / "nope.toml"))
    assert code == 1 and f"config file {tmp_path / 'nope.toml'}: no such file" in out, out
    code, out = run_server("--default-journal-retention", "soon",
                           "--data-dir", str(tmp_path / "data"))
    assert code == 2, out
    assert "Invalid value for '--default-journal-retention': invalid duration 'soon'" in out
    assert not (tmp_path / "data").exists()


def test_server_defaults_from_options() -> None:
    assert server_defaults() == SERVER_DEFAULTS
    d = server_defaults(default_journal_retention=5, default_retry_max_attempts=0,
                        default_retry_on_max_attempts="kill")
    assert d.journal_retention_ms == 5 and d.idempotency_retention_ms == SERVER_DEFAULTS.\
        idempotency_retention_ms
    assert d.retry_policy.max_attempts is None  # "unlimited"
    assert d.retry_policy.on_max_attempts is OnMaxAttempts.KILL
    assert d.retry_policy.initial_interval_ms == 500
    with pytest.raises(ValueError, match="sets every field"):
        ServerDefaults(retry_policy=RetryPolicy(max_attempts=3))


def test_effective_settings_fall_back_to_the_server_defaults() -> None:
    mine = ServerDefaults(inactivity_timeout_ms=1, abort_timeout_ms=2, journal_retention_ms=3,
                          idempotency_retention_ms=4, workflow_completion_retention_ms=5,
                          retry_policy=RetryPolicy(10, 20, None, 3.0, OnMaxAttempts.KILL))
    svc = ServiceDef(name="S", journal_retention_ms=30,
                     retry_policy=RetryPolicy(max_attempts=7))
    h = HandlerDef(name="h", abort_timeout_ms=20)
    eff = effective_settings(svc, h, mine)
    assert (eff.inactivity_timeout_ms, eff.abort_timeout_ms, eff.journal_retention_ms,
            eff.idempotency_retention_ms, eff.workflow_completion_retention_ms) == (1, 20, 30, 4,
                                                                                    5)
    assert eff.retry_policy == RetryPolicy(10, 20, 7, 3.0, OnMaxAttempts.KILL)
    # the same definitions under the built-in defaults: no cross-talk through the memo
    assert effective_settings(svc, h).inactivity_timeout_ms == 60_000
    assert effective_settings(svc, h, mine).inactivity_timeout_ms == 1


def test_every_server_option_is_a_file_key(tmp_path: Path) -> None:
    import click
    from rstq.cli.main import server
    from rstq.cli.server_config import load_config

    cfg = tmp_path / "rstq.toml"
    cfg.write_text('data-dir = "/srv/rstq"\ningress = "0.0.0.0:8080"\ntrace-store = false\n'
                   'enable-protocol-v7 = true\nmax-inbox = 10\npgwire = "off"\n'
                   '[worker.invoker]\nabort-timeout = "1h"\n'
                   '[default-retry-policy]\nmax-attempts = "unlimited"\n')
    with click.Context(server) as ctx:
        got = load_config(cfg, server, ctx)
    assert got == {"data_dir": "/srv/rstq", "ingress_bind": "0.0.0.0:8080",
                   "trace_store": False, "enable_protocol_v7": True, "max_inbox": 10,
                   "pgwire_bind": "off", "default_abort_timeout": "1h",
                   "default_retry_max_attempts": "unlimited"}
