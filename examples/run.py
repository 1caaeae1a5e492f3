"""``make run``: start an rstq server, serve the examples, register them, print what to try.

Usage::

    python examples/run.py [--data-dir DIR] [--no-server] [--request-response] [--verbose]

1. Starts ``rstq server --data-dir DIR`` (DIR from ``--data-dir``, else ``$RSTQ_DATA_DIR``, else
   ``./rstq-data``) as a child process, unless ``--no-server``.
2. Serves ``examples.app:app`` with hypercorn on 127.0.0.1:9080. hypercorn speaks HTTP/1.1 and
   h2c on the same port; the server picks h2c (BIDI streaming mode) unless the deployment is
   registered with ``"use_http_11": true`` (``--request-response``).
3. Waits (bounded polling, no blind sleeps) for the server's admin ``/health`` and the ports,
   then registers the deployment with ``POST /deployments`` (on 409, again with
   ``"force": true``).
4. Prints the endpoints and curl lines to try, then waits. Ctrl-C / SIGTERM stops the server
   first (SIGTERM: it snapshots and fsyncs before exiting), then the examples. If a child dies,
   its last log lines are printed and the launcher exits non-zero.

The examples' output (handler logs, e.g. the awakeable ids of manual payments) is echoed with an
``[examples]`` prefix; the server's output goes to a log file (``--verbose`` echoes it too).
Only the standard library is used here, so this file also runs as a plain script.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
APP = "examples.app:app"
DEFAULT_INGRESS = "http://127.0.0.1:8080"
DEFAULT_ADMIN = "http://127.0.0.1:9070"
PGWIRE = ("127.0.0.1", 9071)


class LaunchError(RuntimeError):
    """Startup failed; the message says why (log tails included)."""


# ---------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------


def _die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """Linux: a preexec_fn that sends ``sig`` to the child when this launcher dies (even when it
    is SIGKILLed), so no child outlives it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork, called in the child
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:  # pragma: no cover - runs in the child
        libc.prctl(pr_set_pdeathsig, sig)

    return preexec


class Child:
    """A child process in its own session (so Ctrl-C reaches only the launcher, which then stops
    the children in order) writing straight into ``log_path``; optionally followed and echoed to
    our stdout with a ``[name]`` prefix.

    The child writes to the file, not to a pipe: if the launcher dies, the server can still log
    its clean shutdown instead of failing on a broken pipe.
    """

    def __init__(self, name: str, cmd: list[str], *, log_path: Path, echo: bool,
                 env: dict[str, str] | None = None, cwd: Path | None = None,
                 death_signal: signal.Signals = signal.SIGTERM) -> None:
        self.name, self.cmd, self.log_path, self.echo = name, cmd, log_path, echo
        self.death_signal = death_signal
        self.env, self.cwd = env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._follower: threading.Thread | None = None

    def start(self) -> Child:
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self.env, cwd=self.cwd, start_new_session=True,
                preexec_fn=_die_with_parent(self.death_signal))
        if self.echo:
            self._follower = threading.Thread(target=self._follow, args=(offset,),
                                              name=f"{self.name}-log", daemon=True)
            self._follower.start()
        return self

    def _follow(self, offset: int) -> None:
        """``tail -f`` the log until the child has exited and everything is echoed."""
        assert self.proc is not None
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            partial = b""
            while True:
                exited = self.proc.poll() is not None  # checked before reading: no lost lines
                chunk = log.readline()
                if chunk:
                    partial += chunk
                    if partial.endswith(b"\n"):
                        line = partial.decode("utf-8", "replace").rstrip("\n")
                        print(f"[{self.name}] {line}", flush=True)
                        partial = b""
                    continue
                if exited:
                    if partial:
                        print(f"[{self.name}] {partial.decode('utf-8', 'replace')}", flush=True)
                    return
                time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def last_lines(self, n: int = 25) -> str:
        if self._follower is not None:
            self._follower.join(timeout=1.0)  # let it echo what is left first
        try:
            data = self.log_path.read_bytes()[-16384:]
        except OSError:
            data = b""
        lines = data.decode("utf-8", "replace").splitlines()[-n:]
        return "\n".join(f"    {ln}" for ln in lines) or "    (no output)"

    def stop(self, grace: float, *, quiet: bool = False) -> int | None:
        """SIGTERM the child's process group; SIGKILL it if still there after ``grace`` s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                if not quiet:
                    print(f"{self.name} did not exit within {grace:.0f}s after SIGTERM: "
                          "killing it", flush=True)
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None:
            return
        # Also reaps leftovers of the group when the leader already exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------
# Polling helpers (bounded, no blind sleeps)
# ---------------------------------------------------------------------------------------------


def http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read()


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def healthy(admin_url: str) -> bool:
    try:
        return http("GET", f"{admin_url}/health", timeout=1.0)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def wait_for(what: str, check: Callable[[], bool], children: list[Child], timeout: float,
             stop: threading.Event) -> None:
    """Poll ``check`` until true; fail early if a child died or we are being stopped, or after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not check():
        if stop.is_set():
            raise LaunchError(f"interrupted while waiting for {what}")
        for child in children:
            if not child.alive():
                raise LaunchError(f"{child.name} exited with {child.returncode} while waiting for "
                                  f"{what}; its last lines ({child.log_path}):\n"
                                  f"{child.last_lines()}")
        if time.monotonic() > deadline:
            tails = "".join(f"\n{c.name} ({c.log_path}):\n{c.last_lines()}" for c in children)
            raise LaunchError(f"timed out after {timeout:.0f}s waiting for {what}{tails}")
        stop.wait(delay)
        delay = min(delay * 1.5, 0.25)


def register(admin_url: str, uri: str, *, use_http_11: bool, timeout: float,
             stop: threading.Event) -> dict[str, Any]:
    """``POST /deployments``; a 409 (already registered) is retried with ``"force": true``.

    Transient failures (server still starting, discovery of the just-started endpoint) are
    retried until ``timeout``.
    """
    body: dict[str, Any] = {"uri": uri}
    if use_http_11:
        body["use_http_11"] = True
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            status, data = http("POST", f"{admin_url}/deployments", body, timeout=10.0)
        except (OSError, urllib.error.URLError) as e:
            status, data = 0, str(e).encode()
        if status in (200, 201):
            return dict(json.loads(data)) if data else {}
        if status == 409 and not body.get("force"):
            body["force"] = True  # same uri, changed services: replace the registration
            continue
        permanent = 400 <= status < 500 and status not in (404, 408, 409, 429)
        if permanent or time.monotonic() > deadline or stop.is_set():
            text = data.decode("utf-8", "replace")[:2000]
            try:  # the admin API's error body: {"message": ..., "restate_code": ...}
                text = str(json.loads(text).get("message") or text)
            except (ValueError, AttributeError):
                pass
            raise LaunchError(f"registering {uri} at {admin_url} failed: HTTP {status} {text}")
        stop.wait(delay)
        delay = min(delay * 2, 0.5)


# ---------------------------------------------------------------------------------------------
# What to print
# ---------------------------------------------------------------------------------------------


def banner(ingress: str, admin: str, service_url: str, deployment: dict[str, Any] | None,
           *, server_log: Path | None, examples_log: Path, registered: bool) -> str:
    json_h = "-H 'content-type: application/json'"
    services = ", ".join(sorted(s.get("name", "?") for s in (deployment or {}).get("services", [])))
    mode = "REQUEST_RESPONSE (HTTP/1.1)" if deployment and deployment.get("use_http_11") else ""
    lines = [
        "",
        "=" * 78,
        "rstq is running" if server_log else "examples are being served (--no-server)",
        "",
        f"  ingress    {ingress}",
        f"  admin      {admin}        (curl {admin}/deployments , {admin}/services)",
        f"  SQL        psql -h {PGWIRE[0]} -p {PGWIRE[1]} -c 'SELECT * FROM sys_status'"
        "   (or: .venv/bin/rstq sql ..., .venv/bin/rstq top)",
        f"  examples   {service_url}  (hypercorn, examples/app.py)",
    ]
    if registered:
        dp_id = (deployment or {}).get("id", "?")
        lines.append(f"  deployment {dp_id}: {services} {mode}".rstrip())
    else:
        register_body = json.dumps({"uri": service_url})
        lines += ["", "  Not registered (no server answered at the admin URL). Once one runs:",
                  f"    curl -X POST {admin}/deployments {json_h} -d '{register_body}'"]
    if server_log:
        lines.append(f"  server log {server_log}")
    lines += [
        f"  examples log {examples_log}",
        "",
        "Greeter (examples/greeter.py): a counter per name",
        f"  curl -X POST {ingress}/Greeter/alice/greet",
        f"  curl -X POST {ingress}/Greeter/alice/count",
        "",
        "Tickets (examples/tickets.py): reserve, 15-minute expiry, checkout",
        f"  curl -X POST {ingress}/CartObject/alice/add_ticket {json_h} -d '\"seat-1A\"'   # true",
        f"  curl -X POST {ingress}/CartObject/bob/add_ticket {json_h} -d '\"seat-1A\"'     # false",
        f"  curl -X POST {ingress}/CartObject/alice/get_tickets",
        f"  curl -X POST {ingress}/CartObject/alice/checkout",
        f"  curl -X POST {ingress}/TicketObject/seat-1A/status                     # \"SOLD\"",
        "  # a delayed one-way call (here: let a reservation expire in 10 s, not 15 min):",
        f"  curl -X POST {ingress}/CartObject/alice/add_ticket {json_h} -d '\"seat-2B\"'",
        f"  curl -X POST '{ingress}/CartObject/alice/expire_ticket/send?delay=10s' {json_h} "
        "-d '\"seat-2B\"'",
        "",
        "Payment (examples/payment.py): ctx.run with an idempotency token + an awakeable",
        f"  curl -X POST {ingress}/Payment/pay {json_h} "
        "-d '{\"user_id\": \"alice\", \"amount_cents\": 4000}'",
        "  # confirm by hand: the [examples] output shows the awakeable id (sign_1...)",
        f"  curl -X POST {ingress}/Payment/pay/send {json_h} "
        "-d '{\"user_id\": \"bob\", \"amount_cents\": 1500, \"auto_confirm\": false}'",
        f"  curl -X POST {ingress}/restate/awakeables/<sign_1...>/resolve {json_h} -d '\"ok\"'",
        f"  curl -X POST {ingress}/restate/awakeables/<sign_1...>/reject -d 'card declined'",
        "",
        "Ctrl-C stops everything (the server snapshots and fsyncs first).",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def rstq_command() -> list[str]:
    script = Path(sys.executable).parent / "rstq"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "rstq.cli.main"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="examples/run.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path,
                   default=Path(os.environ.get("RSTQ_DATA_DIR", "./rstq-data")),
                   help="rstq data directory (default: $RSTQ_DATA_DIR or ./rstq-data)")
    p.add_argument("--no-server", action="store_true",
                   help="only serve the examples (register them if a server already answers)")
    p.add_argument("--ingress-url", default=DEFAULT_INGRESS, help="(default: %(default)s)")
    p.add_argument("--admin-url", default=DEFAULT_ADMIN, help="(default: %(default)s)")
    p.add_argument("--bind", default="127.0.0.1:9080",
                   help="where hypercorn serves the examples (default: %(default)s)")
    p.add_argument("--request-response", action="store_true",
                   help="register with use_http_11 (REQUEST_RESPONSE mode) instead of h2c BIDI")
    p.add_argument("--startup-timeout", type=float, default=60.0,
                   help="seconds to wait for each startup step (default: %(default)s)")
    p.add_argument("--log-dir", type=Path, default=None,
                   help="where the children's logs go (default: a new temporary directory)")
    p.add_argument("-v", "--verbose", action="store_true", help="echo the server's output too")
    return p.parse_args(argv)


class Launcher:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server: Child | None = None
        self.examples: Child | None = None
        self.stop_requested = threading.Event()
        self.log_dir: Path = args.log_dir or Path(tempfile.mkdtemp(prefix="rstq-run-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def children(self) -> list[Child]:
        return [c for c in (self.server, self.examples) if c is not None]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested.is_set():  # second Ctrl-C: do not wait any longer
            for child in self.children:
                child.kill()
            raise SystemExit(130)
        self.stop_requested.set()

    def start_server(self) -> None:
        a = self.args
        for what, url in (("admin", a.admin_url), ("ingress", a.ingress_url)):
            if port_open(*host_port(url)):
                raise LaunchError(f"something already listens on {url} ({what}); stop it (another "
                                  "rstq or restate server?) or use --no-server to reuse it")
        cmd = [*rstq_command(), "server", "--data-dir", str(a.data_dir)]
        # Non-default listeners only when asked for, so the default command stays minimal.
        if a.ingress_url != DEFAULT_INGRESS:
            cmd += ["--ingress", "{}:{}".format(*host_port(a.ingress_url))]
        if a.admin_url != DEFAULT_ADMIN:
            cmd += ["--admin", "{}:{}".format(*host_port(a.admin_url))]
        print(f"starting: {' '.join(cmd)}", flush=True)
        # If the launcher dies: SIGTERM, so the server still shuts down cleanly.
        self.server = Child("rstq", cmd, log_path=self.log_dir / "rstq-server.log",
                            echo=a.verbose, cwd=Path.cwd(), death_signal=signal.SIGTERM).start()
        wait_for(f"the server's admin {a.admin_url}/health", lambda: healthy(a.admin_url),
                 self.children, a.startup_timeout, self.stop_requested)
        wait_for(f"the server's ingress {a.ingress_url}",
                 lambda: port_open(*host_port(a.ingress_url)), self.children, a.startup_timeout,
                 self.stop_requested)

    def start_examples(self) -> str:
        a = self.args
        host, _, port_s = a.bind.rpartition(":")
        host, port = host or "127.0.0.1", int(port_s)
        if port_open(host, port):
            raise LaunchError(f"something already listens on {host}:{port} (examples); "
                              "stop it or pass --bind HOST:PORT")
        cfg = self.log_dir / "hypercorn.toml"
        cfg.write_text(
            f'bind = "{host}:{port}"\n'
            "workers = 0\n"  # serve in the hypercorn process itself: nothing left to orphan
            # Restate servers keep few long-lived h2 connections with many streams.
            "h2_max_concurrent_streams = 2147483647\n"
            "keep_alive_max_requests = 2147483647\n"
            "keep_alive_timeout = 2147483647\n"
            "graceful_timeout = 2\n")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        env["EXAMPLES_INGRESS_URL"] = a.ingress_url  # for the curl lines the handlers log
        cmd = [sys.executable, "-m", "hypercorn", "--config", str(cfg), APP]
        # If the launcher dies: SIGKILL (hypercorn may linger after a SIGTERM; it is stateless).
        self.examples = Child("examples", cmd, log_path=self.log_dir / "examples.log",
                              echo=True, env=env, cwd=REPO_ROOT,
                              death_signal=signal.SIGKILL).start()
        wait_for(f"the examples on {host}:{port}", lambda: port_open(host, port), self.children,
                 a.startup_timeout, self.stop_requested)
        return f"http://{host}:{port}"

    def shutdown(self) -> None:
        # Server first: SIGTERM makes it snapshot, fsync and close its connections to the
        # examples, after which hypercorn exits promptly.
        if self.server is not None and self.server.alive():
            print("stopping the rstq server (SIGTERM; it snapshots and fsyncs) ...", flush=True)
            rc = self.server.stop(grace=60.0)
            print(f"rstq server exited with {rc}", flush=True)
        if self.examples is not None:
            # Stateless, so a kill is harmless; hypercorn sometimes lingers after SIGTERM once
            # the restate-sdk app has served requests.
            self.examples.stop(grace=2.0, quiet=True)

    def run(self) -> int:
        a = self.args
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            if not a.no_server:
                self.start_server()
            service_url = self.start_examples()
            deployment: dict[str, Any] | None = None
            if not a.no_server or healthy(a.admin_url):
                deployment = register(a.admin_url, service_url,
                                      use_http_11=a.request_response, timeout=a.startup_timeout,
                                      stop=self.stop_requested)
                if a.request_response:
                    deployment.setdefault("use_http_11", True)
            print(banner(a.ingress_url, a.admin_url, service_url, deployment,
                         server_log=self.server.log_path if self.server else None,
                         examples_log=self.log_dir / "examples.log",
                         registered=deployment is not None), flush=True)
            while not self.stop_requested.wait(0.5):
                for child in self.children:
                    if not child.alive():
                        print(f"\n{child.name} exited unexpectedly with {child.returncode}; its "
                              f"last lines ({child.log_path}):\n{child.last_lines()}",
                              file=sys.stderr, flush=True)
                        self.shutdown()
                        return 1
            print("\nstopping ...", flush=True)
            self.shutdown()
            return 0
        except LaunchError as e:
            if not self.stop_requested.is_set():
                print(f"\nerror: {e}", file=sys.stderr, flush=True)
            self.shutdown()
            return 1 if not self.stop_requested.is_set() else 130
        except BaseException:
            for child in self.children:
                child.kill()
            raise


def main(argv: list[str] | None = None) -> int:
    return Launcher(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
