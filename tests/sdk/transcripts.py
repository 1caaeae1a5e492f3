"""Parse /work/shared/reference/restate-wire-transcripts.txt (decoded protobuf text format)
back into rstq.protocol messages, per HTTP exchange."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstq.protocol import MESSAGE_TYPES, CombinatorType, Message

TRANSCRIPTS = Path("/work/shared/reference/restate-wire-transcripts.txt")

_FRAME_RE = re.compile(r"^\s+0x([0-9a-f]{4}) flags=0x([0-9a-f]{4}) len=(\d+) (\w+): ?(.*)$")
_TOKEN_RE = re.compile(r'\s*(?:(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|[\w.-]+)|(\w+)\s*\{|(\}))')
_ESC = {"n": b"\n", "t": b"\t", "r": b"\r", '"': b'"', "'": b"'", "\\": b"\\"}


def _unescape(s: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        n = s[i + 1]
        if n in "01234567":
            j = i + 1
            while j < len(s) and j < i + 4 and s[j] in "01234567":
                j += 1
            out.append(int(s[i + 1:j], 8))
            i = j
        else:
            out += _ESC[n]
            i += 2
    return bytes(out)


def _parse_fields(cls: type[Message], text: str, pos: int = 0) -> tuple[Message, int]:
    """protobuf text format for message ``cls`` starting at ``pos`` (until '}' or end)."""
    flds = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    vals: dict[str, Any] = {}
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot parse {text[pos:pos + 40]!r}")
        pos = m.end()
        if m.group(4):
            break
        name = m.group(1) or m.group(3)
        meta = flds[name].metadata["pb"]
        kind = meta.kind.name
        if m.group(3):  # sub-message
            sub = cls if meta.msg == "self" else meta.msg
            v, pos = _parse_fields(sub, text, pos)
        else:
            raw = m.group(2)
            if raw.startswith('"'):
                b = _unescape(raw[1:-1])
                v = b if "BYTES" in kind else b.decode()
            elif kind == "ENUM":
                v = int(CombinatorType[raw]) if raw.isupper() else int(raw)
            elif kind == "BOOL":
                v = raw == "true"
            else:
                v = int(raw)
        if kind.startswith("REP_"):
            vals.setdefault(name, []).append(v)
        else:
            vals[name] = v
    vals = {k: tuple(v) if isinstance(v, list) else v for k, v in vals.items()}
    return cls(**vals), pos


@dataclass
class Frame:
    type: int
    flags: int
    msg: Message
    length: int  # recorded payload length


@dataclass
class Exchange:
    section: str
    path: str
    status: int = 0
    runtime: list[Frame] = field(default_factory=list)
    sdk: list[Frame] = field(default_factory=list)

    @property
    def version(self) -> int:
        return 7 if self.section.startswith("v7") else 6

    @property
    def bidi(self) -> bool:
        return "BIDI" in self.section


def _frame(line: str) -> Frame | None:
    m = _FRAME_RE.match(line)
    if m is None:
        return None
    t, flags = int(m.group(1), 16), int(m.group(2), 16)
    body = m.group(5)
    cls = MESSAGE_TYPES[t]
    raw = re.search(r"\[raw ([0-9a-f]*)\]$", body)
    if raw:
        return Frame(t, flags, cls.decode(bytes.fromhex(raw.group(1))), int(m.group(3)))
    if int(m.group(3)) >= 600 and t == 0x0002:  # ErrorMessage cut at 600 chars
        body = re.sub(r' stacktrace: ".*$', "", body)
    msg, _ = _parse_fields(cls, body)
    return Frame(t, flags, msg, int(m.group(3)))


def load() -> list[Exchange]:
    out: list[Exchange] = []
    section = ""
    cur: Exchange | None = None
    side: list[Frame] | None = None
    for line in TRANSCRIPTS.read_text().splitlines():
        if line.startswith("################"):
            section = line.split()[1]
        elif line.startswith("=== POST "):
            cur = Exchange(section, line.split()[2])
            out.append(cur)
        elif cur is not None and line.startswith("  resp: "):
            cur.status = int(line.split()[1])
        elif cur is not None and line.strip() == "runtime -> sdk:":
            side = cur.runtime
        elif cur is not None and line.strip() == "sdk -> runtime:":
            side = cur.sdk
        elif side is not None:
            f = _frame(line)
            if f is not None:
                side.append(f)
    return out
