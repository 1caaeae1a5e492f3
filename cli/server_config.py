"""`rstq server --config FILE`: the server's options from a TOML file, and its `--default-*`
options (the retention, timeouts and retry policy of handlers that set none).

Every `rstq server` option is a top-level key named like its flag (`data-dir = "./data"`,
`ingress = "127.0.0.1:8080"`, `default-journal-retention = "7d"`); the defaults also go where
restate-server's configuration has them, so those lines of a `restate.toml` read the same:

    default-journal-retention = "1d"        # also default-idempotency-retention,
                                            # default-workflow-completion-retention
    [worker.invoker]
    inactivity-timeout = "1m"               # = default-inactivity-timeout
    abort-timeout = "10m"                   # = default-abort-timeout
    [default-retry-policy]
    initial-interval = "500ms"              # = default-retry-initial-interval, and so on
    exponentiation-factor = 2.0
    max-attempts = 70                       # or "unlimited"
    max-interval = "1m"
    on-max-attempts = "pause"               # or "kill"

The file gives the defaults of the flags, so a flag on the command line wins over the file.
A key rstq does not know, a value of the wrong type or a duration it cannot read stops the
start with one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from rstq.core.discovery import SERVER_DEFAULTS, OnMaxAttempts, RetryPolicy, ServerDefaults
from rstq.core.ingress import friendly_duration, parse_duration

__all__ = ["ConfigError", "Duration", "MaxAttempts", "config_option", "default_options",
           "load_config", "server_defaults"]

F = TypeVar("F", bound=Callable[..., Any])

DURATION_EXAMPLES = '"1d", "10min", "1h 30m", "500ms" or ISO 8601 "PT1M"'

# restate-server's sections: (section, key) -> the rstq flag name (a top-level key).
SECTIONS: dict[str, dict[str, str]] = {
    "worker.invoker": {"inactivity-timeout": "default-inactivity-timeout",
                       "abort-timeout": "default-abort-timeout"},
    "default-retry-policy": {
        name: f"default-retry-{name}"
        for name in ("initial-interval", "exponentiation-factor", "max-attempts",
                     "max-interval", "on-max-attempts")},
}


class Duration(click.ParamType[int]):
    """A duration in restate's formats (jiff friendly or ISO 8601), as milliseconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if not isinstance(value, str):
            self.fail(f"expected a duration string such as {DURATION_EXAMPLES}, got {value!r}",
                      param, ctx)
        try:
            return parse_duration(value.strip())
        except ValueError as e:
            self.fail(f"invalid duration {value!r} ({e}); write it like {DURATION_EXAMPLES}",
                      param, ctx)


class MaxAttempts(click.ParamType[int]):
    """A positive attempt count, or `unlimited` (returned as 0)."""

    name = "count|unlimited"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, str) and value.strip().lower() == "unlimited":
            return 0
        if isinstance(value, bool):
            self.fail(f"expected a positive integer or \"unlimited\", got {value!r}", param, ctx)
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"expected a positive integer or \"unlimited\", got {value!r}", param, ctx)
        if n < 1:
            self.fail(f"expected a positive integer or \"unlimited\", got {n}", param, ctx)
        return n


def _ms(ms: int) -> str:
    return friendly_duration(ms)


_D = SERVER_DEFAULTS
_R = _D.retry_policy


def default_options(f: F) -> F:
    """The `--default-*` options of `rstq server` (None when not given: the built-in default)."""
    assert _R.initial_interval_ms is not None and _R.max_interval_ms is not None
    dur = Duration()
    opts = [
        click.option("--default-journal-retention", type=dur, default=None,
                     show_default=_ms(_D.journal_retention_ms),
                     help="How long a completed invocation's journal (and status) is kept when "
                          "its handler and service set no journal retention."),
        click.option("--default-idempotency-retention", type=dur, default=None,
                     show_default=_ms(_D.idempotency_retention_ms),
                     help="How long the result of a call with an idempotency key is kept."),
        click.option("--default-workflow-completion-retention", type=dur, default=None,
                     show_default=_ms(_D.workflow_completion_retention_ms),
                     help="How long a finished workflow's result and state are kept."),
        click.option("--default-inactivity-timeout", type=dur, default=None,
                     show_default=_ms(_D.inactivity_timeout_ms),
                     help="Silence from a handler after which it is asked to suspend "
                          "(restate: worker.invoker.inactivity-timeout)."),
        click.option("--default-abort-timeout", type=dur, default=None,
                     show_default=_ms(_D.abort_timeout_ms),
                     help="Time after the suspension request before the attempt is aborted "
                          "(restate: worker.invoker.abort-timeout)."),
        click.option("--default-retry-initial-interval", type=dur, default=None,
                     show_default=_ms(_R.initial_interval_ms),
                     help="Default retry policy: delay before the first retry."),
        click.option("--default-retry-exponentiation-factor",
                     type=click.FloatRange(min=1.0), default=None,
                     show_default=str(_R.exponentiation_factor),
                     help="Default retry policy: each delay is the previous one times this."),
        click.option("--default-retry-max-interval", type=dur, default=None,
                     show_default=_ms(_R.max_interval_ms),
                     help="Default retry policy: longest delay between attempts."),
        click.option("--default-retry-max-attempts", type=MaxAttempts(), default=None,
                     show_default=str(_R.max_attempts),
                     help="Default retry policy: attempts before on-max-attempts applies "
                          "(or \"unlimited\")."),
        click.option("--default-retry-on-max-attempts",
                     type=click.Choice(["pause", "kill"], case_sensitive=False), default=None,
                     show_default=str(_R.on_max_attempts).lower(),
                     help="Default retry policy: what happens once the attempts are used up."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def server_defaults(*, default_journal_retention: int | None = None,
                    default_idempotency_retention: int | None = None,
                    default_workflow_completion_retention: int | None = None,
                    default_inactivity_timeout: int | None = None,
                    default_abort_timeout: int | None = None,
                    default_retry_initial_interval: int | None = None,
                    default_retry_exponentiation_factor: float | None = None,
                    default_retry_max_interval: int | None = None,
                    default_retry_max_attempts: int | None = None,
                    default_retry_on_max_attempts: str | None = None) -> ServerDefaults:
    """The `ServerDefaults` those options give: the built-in ones where an option is None."""

    def pick(value: int | None, builtin: int) -> int:
        return builtin if value is None else value

    r = _R
    retry = RetryPolicy(
        initial_interval_ms=pick(default_retry_initial_interval, r.initial_interval_ms or 0),
        max_interval_ms=pick(default_retry_max_interval, r.max_interval_ms or 0),
        # 0: "unlimited" (RetryPolicy: None)
        max_attempts=(r.max_attempts if default_retry_max_attempts is None
                      else default_retry_max_attempts or None),
        exponentiation_factor=(r.exponentiation_factor
                               if default_retry_exponentiation_factor is None
                               else default_retry_exponentiation_factor),
        on_max_attempts=(r.on_max_attempts if default_retry_on_max_attempts is None
                         else OnMaxAttempts(default_retry_on_max_attempts.upper())),
    )
    return dataclasses.replace(
        SERVER_DEFAULTS,
        journal_retention_ms=pick(default_journal_retention, _D.journal_retention_ms),
        idempotency_retention_ms=pick(default_idempotency_retention,
                                      _D.idempotency_retention_ms),
        workflow_completion_retention_ms=pick(default_workflow_completion_retention,
                                              _D.workflow_completion_retention_ms),
        inactivity_timeout_ms=pick(default_inactivity_timeout, _D.inactivity_timeout_ms),
        abort_timeout_ms=pick(default_abort_timeout, _D.abort_timeout_ms),
        retry_policy=retry,
    )


# --- the config file -------------------------------------------------------------------------


class ConfigError(click.ClickException):
    """One line: `config file PATH: KEY: what is wrong`."""


def config_option(f: F) -> F:
    """`--config FILE` (env RSTQ_CONFIG): read first, its values become the options' defaults."""
    return click.option(
        "--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
        envvar="RSTQ_CONFIG", is_eager=True, expose_value=False, callback=_load_callback,
        help="TOML file of server options: every option as a key named like its flag, plus "
             "restate-server's [worker.invoker] and [default-retry-policy] (flags win).")(f)


def _load_callback(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is None:
        return
    assert isinstance(ctx.command, click.Command)
    loaded = load_config(value, ctx.command, ctx)
    ctx.default_map = {**(ctx.default_map or {}), **loaded}


def _flag_names(command: click.Command) -> dict[str, click.Option]:
    """Top-level key (the longest `--flag`, without dashes) -> its option."""
    out: dict[str, click.Option] = {}
    for p in command.params:
        if not isinstance(p, click.Option) or p.name in (None, "config_path", "help",
                                                         "version"):
            continue
        longs = [o for o in p.opts if o.startswith("--")]
        if longs:
            out[max(longs, key=len)[2:]] = p
    return out


def load_config(path: Path, command: click.Command, ctx: click.Context) -> dict[str, Any]:
    """The file's values, checked, as `{parameter name: value}` (click's `default_map`: click
    converts them as it would the flags)."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML: {e}") from None
    flags = _flag_names(command)
    flat: dict[str, tuple[str, Any]] = {}  # flag name -> (key as written, value)

    def put(flag: str, written: str, value: Any) -> None:
        if flag in flat:
            raise ConfigError(f"config file {path}: {written}: the same option as "
                              f"{flat[flag][0]}, set twice")
        flat[flag] = (written, value)

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for key, value in table.items():
            dotted = f"{prefix}{key}"
            section = SECTIONS.get(dotted)
            if section is not None:
                if not isinstance(value, dict):
                    raise ConfigError(f"config file {path}: {dotted}: expected a table "
                                      f"([{dotted}]), got {value!r}")
                for k, v in value.items():
                    if k not in section:
                        raise ConfigError(_unknown(path, f"{dotted}.{k}", k, list(section),
                                                   f" (in [{dotted}] rstq reads "
                                                   f"{', '.join(section)})"))
                    put(section[k], f"{dotted}.{k}", v)
            elif isinstance(value, dict) and any(s.startswith(dotted + ".") for s in SECTIONS):
                walk(value, dotted + ".")
            elif prefix == "" and key in flags:
                put(key, key, value)
            else:
                known = list(flags) + list(SECTIONS)
                raise ConfigError(_unknown(path, dotted, key, known, ""))

    walk(doc, "")
    out: dict[str, Any] = {}
    for flag, (written, value) in flat.items():
        opt = flags[flag]
        assert opt.name is not None
        _check(path, written, opt, value, ctx)
        out[opt.name] = value
    return out


def _unknown(path: Path, dotted: str, key: str, known: list[str], hint: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    maybe = f" (did you mean {close[0]!r}?)" if close else hint
    return f"config file {path}: unknown key {dotted!r}{maybe}"


def _check(path: Path, key: str, opt: click.Option, value: Any, ctx: click.Context) -> None:
    where = f"config file {path}: {key}"
    if opt.is_flag and not opt.is_bool_flag:
        raise ConfigError(f"{where}: not settable in a file")
    if opt.is_bool_flag:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return
    if isinstance(value, dict | list):
        raise ConfigError(f"{where}: expected a single value, got {value!r}")
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a value for {opt.opts[-1]}, got {value!r}")
    try:
        opt.type.convert(value, opt, ctx)
    except click.BadParameter as e:
        raise ConfigError(f"{where}: {e.message}") from None
