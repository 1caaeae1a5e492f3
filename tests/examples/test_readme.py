"""The README's curl lines, run as printed (with curl) against `rstq server` and the examples.

Only the addresses change: the README's 127.0.0.1:8080 / 9070 / 9080 become the test's free
ports. Every line must succeed (2xx); the tour's greet lines must answer what they say.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness.rstq_server import RstqServer
from tests.support.harness.service_proc import ServiceProcess

README = Path(__file__).resolve().parents[2] / "README.md"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """The block's lines, continuations joined, comments (`# ...` after a command) dropped."""
    joined = block.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(shlex.join(words))
    return out


def curl_lines() -> list[str]:
    return [c for b in sh_blocks(README.read_text()) for c in commands(b)
            if c.startswith("curl ") and ("127.0.0.1:8080" in c or "127.0.0.1:9070" in c)]


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[RstqServer, ServiceProcess]]:
    with RstqServer(partitions=2) as srv, ServiceProcess("examples.app:app", http2=True) as svc:
        yield srv, svc


def test_readme_curl_lines_work_as_printed(stack: tuple[RstqServer, ServiceProcess]) -> None:
    srv, svc = stack
    lines = curl_lines()
    assert any("/deployments" in c for c in lines) and any("/greet" in c for c in lines)
    for line in lines:
        cmd = (line.replace("127.0.0.1:8080", f"127.0.0.1:{srv.ingress_port}")
               .replace("127.0.0.1:9070", f"127.0.0.1:{srv.admin_port}")
               .replace("127.0.0.1:9080", f"127.0.0.1:{svc.port}"))
        words = shlex.split(cmd)
        words[1:1] = ["-sS", "-w", "\n%{http_code}"]
        p = subprocess.run(words, capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (line, p.stderr)
        body, _, code = p.stdout.rpartition("\n")
        assert code.startswith("2"), (line, code, body)
        if line.endswith("/Greeter/alice/greet"):
            assert body == '"Hello alice, you have been greeted 1 times"', body
        if "greet/send" in line:
            assert code == "202", (line, body)
        if line.endswith("/Greeter/alice/count"):
            assert body == "1", body
