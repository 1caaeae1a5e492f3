"""Run the real restate-server (npm ``@restatedev/restate-server``) as an external test oracle.

* :func:`ensure_installed` installs the pinned version with npm into a cache directory OUTSIDE
  the repository (default ``~/.cache/rstq-test/restate-server-<version>``; the root
  ``~/.cache/rstq-test`` can be overridden with ``RSTQ_TEST_CACHE``). It is idempotent and
  guarded by a file lock, so parallel callers (pytest-xdist workers, CI steps) do not clash.
* :class:`RestateServer` writes a loopback-only config (free ports), starts the binary in its own
  process group with a temporary base dir, waits for health with a bounded deadline, exposes
  ``ingress_url`` / ``admin_url`` / :meth:`RestateServer.register`, and stops it
  (SIGTERM, then SIGKILL).

The official CLI (npm ``@restatedev/restate``, binary ``restate``, same pinned version) installs
the same way: ``ensure_installed(tool=CLI)`` (``~/.cache/rstq-test/restate-<version>``).

CLI (CI pre-installs with it)::

    python -m tests.support.harness.restate_server install    # prints the binary path
    python -m tests.support.harness.restate_server install-cli  # the `restate` CLI
    python -m tests.support.harness.restate_server run [--v7] # one on free ports, Ctrl-C stops
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.net.ports import free_port

VERSION = "1.7.12"
SERVER = "restate-server"  # npm @restatedev/<tool>, per-platform @restatedev/<tool>-<os>-<arch>
CLI = "restate"
PACKAGE = f"@restatedev/{SERVER}"
REPO_ROOT = Path(__file__).resolve().parents[3]

# npm error codes / texts that mean "the registry could not be reached" (as opposed to a real
# failure such as a missing version, a broken cache or a full disk).
_NETWORK_MARKERS = (
    "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
    "EHOSTUNREACH", "ESOCKETTIMEDOUT", "network request to", "request to https://",
    "This is a problem related to network connectivity", "getaddrinfo",
)


class RestateServerError(RuntimeError):
    """The server could not be installed, started or used."""


class RegistryUnreachable(RestateServerError):
    """npm could not reach the registry: the only condition under which tests may skip."""

    def __init__(self, message: str, summary: str = "") -> None:
        super().__init__(message)
        self.summary = summary or message.splitlines()[0]


# --------------------------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    env = os.environ.get("RSTQ_TEST_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "rstq-test"
    return root.resolve()


def install_dir(version: str = VERSION, *, tool: str = SERVER) -> Path:
    d = cache_root() / f"{tool}-{version}"
    if d == REPO_ROOT or REPO_ROOT in d.parents:
        raise RestateServerError(f"refusing to install {tool} inside the repo: {d}")
    return d


def _platform_package(tool: str = SERVER) -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    if arch is None:
        raise RestateServerError(f"no restate-server npm build for machine {machine!r}")
    osname = {"linux": "linux", "darwin": "darwin"}.get(sys.platform)
    if osname is None:
        raise RestateServerError(f"no restate-server npm build for platform {sys.platform!r}")
    return f"{tool}-{osname}-{arch}"


def binary_path(version: str = VERSION, *, tool: str = SERVER) -> Path:
    return (install_dir(version, tool=tool) / "node_modules" / "@restatedev"
            / _platform_package(tool) / "bin" / tool)


def _binary_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def _is_installed(version: str, tool: str = SERVER) -> bool:
    d = install_dir(version, tool=tool)
    marker = d / ".rstq-installed"
    return marker.is_file() and marker.read_text().strip() == version and binary_path(
        version, tool=tool).is_file()


def ensure_installed(version: str = VERSION, *, timeout: float = 600.0,
                     tool: str = SERVER) -> Path:
    """Install ``@restatedev/<tool>@version`` (restate-server, or the ``restate`` CLI) into the
    cache dir (once); return the binary.

    Raises :class:`RegistryUnreachable` if npm fails because the registry cannot be reached,
    :class:`RestateServerError` for every other failure.
    """
    if _is_installed(version, tool):
        return binary_path(version, tool=tool)
    d = install_dir(version, tool=tool)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if _is_installed(version, tool):  # somebody else finished while we waited
            return binary_path(version, tool=tool)
        npm = shutil.which("npm")
        if npm is None:
            raise RestateServerError(f"npm not found on PATH (needed to install {tool})")
        (d / "package.json").write_text(json.dumps({
            "name": f"rstq-test-{tool}", "private": True, "version": "0.0.0",
            "dependencies": {f"@restatedev/{tool}": version},
        }, indent=2) + "\n")
        cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--omit=dev",
               "--loglevel=error", "--fetch-retries=2", "--fetch-retry-mintimeout=2000",
               "--fetch-retry-maxtimeout=10000", "--prefix", str(d)]
        try:
            proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RegistryUnreachable(f"npm install timed out after {timeout:.0f}s "
                                      "(registry unreachable or very slow)") from e
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr)[-4000:]
            hits = [ln for ln in output.splitlines() if any(m in ln for m in _NETWORK_MARKERS)]
            if hits:
                hits.sort(key=lambda ln: "request to" not in ln)  # prefer the explicit line
                raise RegistryUnreachable(f"npm registry unreachable:\n{output}",
                                          summary=hits[0].removeprefix("npm error ").strip())
            raise RestateServerError(f"npm install failed ({proc.returncode}):\n{output}")
        binary = binary_path(version, tool=tool)
        if not binary.is_file():
            raise RestateServerError(f"npm install succeeded but {binary} is missing")
        got = _binary_version(binary)
        if version not in got:
            raise RestateServerError(f"{binary} --version says {got!r}, expected {version}")
        (d / ".rstq-installed").write_text(version + "\n")
        return binary


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


PORT_ATTEMPTS = 3


def _preexec_die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: SIGKILL the child if the parent dies (e.g. pytest gets SIGKILLed)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def spawn(cmd: list[str], *, log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group, output appended to ``log_path``.

    PR_SET_PDEATHSIG is only armed from the main thread (it fires when the spawning *thread*
    exits, which would kill servers started from short-lived worker threads).
    """
    preexec = None
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        preexec = _preexec_die_with_parent
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec)


def stop_process_group(proc: subprocess.Popen[bytes], *, grace: float = 10.0) -> int | None:
    """SIGTERM the process group of ``proc``, SIGKILL it after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # Kill leftovers of the group even if the leader already exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    return proc.returncode


def tail(path: Path, n: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-n:].decode("utf-8", "replace")


def _http(method: str, url: str, body: Any = None, timeout: float = 5.0) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


_LIVE: set[RestateServer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for srv in list(_LIVE):
        srv.stop()


class RestateServer:
    """One restate-server process on free loopback ports with a throw-away base dir.

    Usage::

        with RestateServer(protocol_v7=False) as rs:
            rs.register("http://127.0.0.1:9080")             # BIDI over h2c
            rs.register("http://127.0.0.1:9081", use_http_11=True)  # REQUEST_RESPONSE
            httpx.post(f"{rs.ingress_url}/Greeter/greet", json="bob")
    """

    def __init__(self, *, protocol_v7: bool = False, binary: Path | None = None,
                 base_dir: Path | None = None, startup_timeout: float = 60.0,
                 extra_config: str = "", keep_base_dir: bool = False) -> None:
        self.protocol_v7 = protocol_v7
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.extra_config = extra_config
        self.keep_base_dir = keep_base_dir
        self._own_base_dir = base_dir is None
        self.base_dir = base_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.ingress_port = self.admin_port = self.node_port = 0
        self.startup_seconds: float | None = None

    # -- properties -----------------------------------------------------------------------
    @property
    def ingress_url(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def log_path(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "restate-server.log"

    def config_toml(self) -> str:
        lines = [
            'bind-ip = "127.0.0.1"',
            f"bind-port = {self.node_port}",
            "disable-telemetry = true",
            "default-num-partitions = 2",
            'listen-mode = "tcp"',
            'node-name = "rstq-oracle"',
        ]
        if self.protocol_v7:
            lines.append("experimental-enable-protocol-v7 = true")
        lines += [
            "", "[admin]", 'bind-ip = "127.0.0.1"', f"bind-port = {self.admin_port}",
            "disable-web-ui = true",
            "", "[ingress]", 'bind-ip = "127.0.0.1"', f"bind-port = {self.ingress_port}",
        ]
        if self.extra_config:
            lines += ["", self.extra_config]
        return "\n".join(lines) + "\n"

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> RestateServer:
        t0 = time.monotonic()
        binary = self.binary or ensure_installed()
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="rstq-restate-"))
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(PORT_ATTEMPTS):
            # A free port can be taken by another process before the server binds it (tests
            # run many servers): start again on new ports then.
            self.ingress_port, self.admin_port, self.node_port = (free_port(), free_port(),
                                                                  free_port())
            cfg = self.base_dir / "config.toml"
            cfg.write_text(self.config_toml())
            # Only our config counts: drop RESTATE_* overrides from the caller's environment.
            env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
            self.proc = spawn([str(binary), "--config-file", str(cfg), "--base-dir",
                               str(self.base_dir / "data")], log_path=self.log_path, env=env,
                              cwd=self.base_dir)
            _LIVE.add(self)
            try:
                self._wait_healthy(deadline=time.monotonic() + self.startup_timeout)
            except RestateServerError as e:
                if "Address in use" not in str(e) or attempt + 1 == PORT_ATTEMPTS:
                    self.stop()
                    raise
                _LIVE.discard(self)
                if self.proc is not None:
                    stop_process_group(self.proc)
                    self.proc = None
                shutil.rmtree(self.base_dir / "data", ignore_errors=True)  # start afresh
                continue
            except BaseException:
                self.stop()
                raise
            break
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_healthy(self, deadline: float) -> None:
        checks = [f"{self.admin_url}/health", f"{self.ingress_url}/restate/health"]
        delay = 0.02
        while checks:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RestateServerError(
                    f"restate-server exited with {self.proc.returncode} during startup:\n"
                    f"{tail(self.log_path)}")
            try:
                status, _ = _http("GET", checks[0], timeout=1.0)
            except (OSError, urllib.error.URLError):
                status = 0
            if status == 200:
                checks.pop(0)
                continue
            if time.monotonic() > deadline:
                raise RestateServerError(
                    f"restate-server not healthy after {self.startup_timeout}s ({checks[0]} -> "
                    f"{status}):\n{tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.2)

    def stop(self) -> None:
        _LIVE.discard(self)
        if self.proc is not None:
            stop_process_group(self.proc)
            self.proc = None
        if self._own_base_dir and not self.keep_base_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> RestateServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin helpers ----------------------------------------------------------------------
    def register(self, uri: str, use_http_11: bool = False, *, force: bool = True,
                 timeout: float = 30.0) -> dict[str, Any]:
        return register_deployment(self.admin_url, uri, use_http_11, force=force,
                                   timeout=timeout)


def register_deployment(admin_url: str, uri: str, use_http_11: bool = False, *,
                        force: bool = True, timeout: float = 30.0) -> dict[str, Any]:
    """``POST /deployments`` on a Restate-style admin API (restate-server or rstq); returns the
    JSON body (``{"id": "dp_…", "services": …}``).

    Retries transient failures (discovery of a just-started endpoint) until ``timeout``.
    """
    body: dict[str, Any] = {"uri": uri, "force": force}
    if use_http_11:
        body["use_http_11"] = True
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, data = _http("POST", f"{admin_url}/deployments", body, timeout=10.0)
        except (OSError, urllib.error.URLError) as e:
            status, data = 0, str(e).encode()
        if status in (200, 201):
            return dict(json.loads(data))
        if time.monotonic() > deadline or 400 <= status < 500 and status not in (404, 409):
            raise RestateServerError(f"register {uri} failed: {status} {data[:2000]!r}")
        time.sleep(0.1)


def _main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "install"
    try:
        if cmd in ("install", "install-cli"):
            t0 = time.monotonic()
            path = ensure_installed(tool=CLI if cmd == "install-cli" else SERVER)
            print(f"{path} ({_binary_version(path)}, {time.monotonic() - t0:.1f}s)")
            return 0
        if cmd == "run":
            with RestateServer(protocol_v7="--v7" in argv) as rs:
                print(f"ingress {rs.ingress_url}  admin {rs.admin_url}  base {rs.base_dir}  "
                      f"(started in {rs.startup_seconds:.2f}s); Ctrl-C to stop", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while rs.proc is not None and rs.proc.poll() is None:
                        time.sleep(0.5)
            return 0
    except RegistryUnreachable as e:
        print(f"registry unreachable: {e}", file=sys.stderr)
        return 2
    except RestateServerError as e:
        print(str(e), file=sys.stderr)
        return 1
    print("usage: python -m tests.support.harness.restate_server "
          "[install | install-cli | run [--v7]]", file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
