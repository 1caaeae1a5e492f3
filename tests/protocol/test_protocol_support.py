"""Support code (not tests) for the protocol codec tests: fixture loading, Hypothesis strategies."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rstq.protocol import messages as m

DATA = Path(__file__).parent / "data"

SETTINGS = settings(
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class GoldenFrame(NamedTuple):
    section: str
    request: int
    direction: str
    type: int
    flags: int
    payload: bytes


def load_golden_frames() -> list[GoldenFrame]:
    out = []
    for line in (DATA / "golden_frames.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        section, req, direction, ty, flags, hx = line.split(" ")
        out.append(GoldenFrame(section, int(req), direction, int(ty, 16), int(flags, 16),
                               b"" if hx == "-" else bytes.fromhex(hx)))
    return out


def load_vectors() -> list[tuple[str, bytes]]:
    out = []
    for line in (DATA / "protobuf_vectors.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, hx = line.split(" ")
        out.append((name, b"" if hx == "-" else bytes.fromhex(hx)))
    return out


U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
TEXT = st.text(max_size=12)
BYTES = st.binary(max_size=12)


def _kind_strategy(meta: Any, owner: type[m.Message], depth: int) -> st.SearchStrategy[Any]:
    k = m.FieldKind
    kind = meta.kind
    if kind == k.U32:
        return U32
    if kind == k.U64:
        return U64
    if kind == k.BOOL:
        return st.booleans()
    if kind == k.ENUM:
        return st.integers(-(2**31), 2**31 - 1) | st.sampled_from(list(meta.msg or [0]))
    if kind == k.STRING:
        return TEXT
    if kind == k.BYTES:
        return BYTES
    sub = owner if meta.msg == "self" else meta.msg
    if kind == k.MESSAGE:
        return message_strategy(sub, depth + 1)
    if kind == k.REP_U32:
        return st.lists(U32, max_size=5).map(tuple)
    if kind == k.REP_STRING:
        return st.lists(TEXT, max_size=3).map(tuple)
    if kind == k.REP_BYTES:
        return st.lists(BYTES, max_size=3).map(tuple)
    assert kind == k.REP_MESSAGE
    if depth >= 3:
        return st.just(())
    return st.lists(message_strategy(sub, depth + 1), max_size=2).map(tuple)


def message_strategy(cls: type[m.Message], depth: int = 0) -> st.SearchStrategy[Any]:
    """Arbitrary instances of a message class, derived from its pb() declarations.

    Each oneof group gets at most one member set; presence fields are sometimes None.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    groups: dict[str, list[dataclasses.Field[Any]]] = {}
    plain: dict[str, st.SearchStrategy[Any]] = {}
    for f in fields:
        meta = f.metadata["pb"]
        if meta.oneof:
            groups.setdefault(meta.oneof, []).append(f)
            continue
        s = _kind_strategy(meta, cls, depth)
        if meta.presence:
            s = st.none() | s
        plain[f.name] = s

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kw = {name: draw(s) for name, s in plain.items()}
        for members in groups.values():
            choice = draw(st.integers(-1, len(members) - 1))
            if choice >= 0:
                f = members[choice]
                kw[f.name] = draw(_kind_strategy(f.metadata["pb"], cls, depth))
        return cls(**kw)

    return build()
