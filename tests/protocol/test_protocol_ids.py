from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rstq.protocol import messages as m
from rstq.protocol.ids import (
    AwakeableId,
    DeploymentId,
    IdError,
    InvocationId,
    awakeable_id,
    base62_decode,
    base62_encode,
    idempotent_request_uuid,
    parse_awakeable_id,
    workflow_uuid,
)
from rstq.protocol.wire import ProtocolError
from test_protocol_support import DATA, SETTINGS, load_golden_frames


def _transcript_ids() -> tuple[list[str], list[tuple[str, str]]]:
    invs, signs = [], []
    for line in (DATA / "transcript_ids.txt").read_text().splitlines():
        if line.startswith("inv "):
            invs.append(line.split()[1])
        elif line.startswith("sign "):
            _, a, b = line.split()
            signs.append((a, b))
    return invs, signs


INVS, SIGNS = _transcript_ids()


def test_start_message_ids_roundtrip() -> None:
    """Every StartMessage.id (24 raw bytes) matches its debug_id (as idcheck.py checks)."""
    n = 0
    for f in load_golden_frames():
        if f.type != 0:
            continue
        start = m.StartMessage.decode(f.payload)
        iid = InvocationId.from_bytes(start.id)
        assert str(iid) == start.debug_id
        assert InvocationId.parse(start.debug_id).to_bytes() == start.id
        n += 1
    assert n == 50


@pytest.mark.parametrize("s", INVS)
def test_transcript_invocation_ids_roundtrip(s: str) -> None:
    iid = InvocationId.parse(s)
    assert str(iid) == s
    assert InvocationId.from_bytes(iid.to_bytes()) == iid
    assert len(s) == 38


def test_awakeable_example_from_brief() -> None:
    iid = InvocationId.parse("inv_1gVJ8c0ehgVY2OTvFYkGZiRqHFMvIPlLX7")
    assert awakeable_id(iid, 17) == "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAEQ"
    assert awakeable_id(iid.to_bytes(), 17) == "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAEQ"


@pytest.mark.parametrize(("sign", "owner"), SIGNS)
def test_transcript_awakeables(sign: str, owner: str) -> None:
    parsed = parse_awakeable_id(sign)
    assert parsed == AwakeableId(InvocationId.parse(owner), 17, False)
    assert awakeable_id(parsed.invocation_id, parsed.idx) == sign
    assert len(sign) == 44


def test_legacy_prom_ids() -> None:
    iid = InvocationId(12345, 2**100 + 7)
    sign = awakeable_id(iid, 3)
    prom = "prom_1" + sign[6:]
    assert parse_awakeable_id(prom) == AwakeableId(iid, 3, True)


@pytest.mark.parametrize(
    "bad",
    ["", "sign_1", "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAE", "inv_1otuLLFD6NMXV9oiV1OYxEcW",
     "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAE!", "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAEé",
     "sign_1otuLLFD6NMXV9oiV1OYxEcWFg1hYh69cAAAAER"],
)
def test_bad_awakeable_ids(bad: str) -> None:
    with pytest.raises(IdError):
        parse_awakeable_id(bad)


@pytest.mark.parametrize(
    "bad",
    ["", "inv_1", "inv_2gVJ8c0ehgVY2OTvFYkGZiRqHFMvIPlLX7", "inv_1gVJ8c0ehgVY2OTvFYkGZiRqHFMvIPlLX",
     "inv_1gVJ8c0ehgVY2OTvFYkGZiRqHFMvIPlLX7x", "inv_1gVJ8c0ehgVY2OTvFYkGZiRqHFMvIPlL_7",
     "inv_1ZZZZZZZZZZZ2OTvFYkGZiRqHFMvIPlLX7", "inv_1gVJ8c0ehgVZZZZZZZZZZZZZZZZZZZZZZZ"],
)
def test_bad_invocation_ids(bad: str) -> None:
    with pytest.raises(IdError):
        InvocationId.parse(bad)
    assert issubclass(IdError, ProtocolError) and issubclass(IdError, ValueError)


def test_bad_components() -> None:
    with pytest.raises(IdError):
        InvocationId(-1, 0)
    with pytest.raises(IdError):
        InvocationId(0, 2**128)
    with pytest.raises(IdError):
        InvocationId.from_bytes(b"\x00" * 23)


@SETTINGS
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1))
def test_id_roundtrip_property(pk: int, uuid: int, idx: int) -> None:
    iid = InvocationId(pk, uuid)
    assert InvocationId.parse(str(iid)) == iid
    assert InvocationId.from_bytes(iid.to_bytes()) == iid
    assert parse_awakeable_id(awakeable_id(iid, idx)) == AwakeableId(iid, idx, False)


def test_new_invocation_id() -> None:
    a, b = InvocationId.new(42), InvocationId.new(42)
    assert a.partition_key == 42 and a != b
    assert InvocationId.parse(str(a)) == a


def test_deployment_ids() -> None:
    example = "dp_13yVuQBD7jSrk5yfI8ELx85"
    d = DeploymentId.parse(example)
    assert str(d) == example
    new = DeploymentId.new()
    assert str(new).startswith("dp_1") and len(str(new)) == len(example)
    assert DeploymentId.parse(str(new)) == new
    assert str(DeploymentId.from_random_bytes(b"\x00" * 16)) == "dp_1" + "0" * 22
    with pytest.raises(IdError):
        DeploymentId.parse("dp_2" + example[4:])


def test_deterministic_uuids() -> None:
    expected = int.from_bytes(hashlib.sha256(b"wf,Wf,w1").digest()[:16], "big")
    assert workflow_uuid("Wf", "w1") == expected
    assert workflow_uuid("Wf", "w1", scope="s") == int.from_bytes(
        hashlib.sha256(b"wf,s,Wf,w1").digest()[:16], "big")
    assert idempotent_request_uuid("Svc", None, "h", "k") == int.from_bytes(
        hashlib.sha256(b"ik,Svc,h,k").digest()[:16], "big")
    assert idempotent_request_uuid("Obj", "key", "h", "k") == int.from_bytes(
        hashlib.sha256(b"ik,Obj,key,h,k").digest()[:16], "big")
    assert workflow_uuid("Wf", "w1") != workflow_uuid("Wf", "w2")


def test_base62() -> None:
    assert base62_encode(0, 3) == "000"
    assert base62_encode(61, 1) == "Z"
    assert base62_decode("10") == 62
    with pytest.raises(ValueError):
        base62_encode(62, 1)
