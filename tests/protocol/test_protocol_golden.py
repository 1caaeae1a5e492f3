"""Golden frames captured between restate-server 1.7.12 and restate-sdk 1.2.0."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from rstq.protocol import (
    REQUESTED_ACK,
    FrameDecoder,
    Message,
    decode_message,
    encode_frame,
    encode_raw_frame,
)
from rstq.protocol import messages as m
from test_protocol_support import GoldenFrame, load_golden_frames

FRAMES = load_golden_frames()


def _streams() -> dict[tuple[str, int, str], list[GoldenFrame]]:
    out: dict[tuple[str, int, str], list[GoldenFrame]] = defaultdict(list)
    for f in FRAMES:
        out[(f.section, f.request, f.direction)].append(f)
    return dict(out)


STREAMS = _streams()


def test_fixture_covers_versions_and_modes() -> None:
    sections = {f.section for f in FRAMES}
    assert {"v6-BIDI_STREAM-HTTP/2", "v6-REQUEST_RESPONSE-HTTP/1.1", "v7-BIDI_STREAM-HTTP/2",
            "v7-REQUEST_RESPONSE-HTTP/1.1", "v7-BIDI-lazy-state"} <= sections
    assert len({f.type for f in FRAMES}) == 29


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"{f.section}#{f.request}{f.direction}"
                         f"-{f.type:04x}")
def test_golden_frame_reencodes_byte_identically(frame: GoldenFrame) -> None:
    msg = decode_message(frame.type, frame.payload)
    assert type(msg) is m.MESSAGE_TYPES[frame.type]
    assert msg.encode() == frame.payload
    raw = encode_raw_frame(frame.type, frame.payload, frame.flags)
    assert encode_frame(msg, frame.flags) == raw


def _stream_bytes(frames: list[GoldenFrame]) -> bytes:
    return b"".join(encode_raw_frame(f.type, f.payload, f.flags) for f in frames)


@pytest.mark.parametrize("key", sorted(STREAMS), ids=lambda k: f"{k[0]}#{k[1]}{k[2]}")
def test_golden_stream_chunked(key: tuple[str, int, str]) -> None:
    frames = STREAMS[key]
    data = _stream_bytes(frames)
    rng = random.Random(f"{key}")
    # whole, byte-by-byte, and random chunks
    chunkings = [[data], [data[i:i + 1] for i in range(len(data))]]
    for _ in range(3):
        chunks, i = [], 0
        while i < len(data):
            n = rng.randint(1, 40)
            chunks.append(data[i:i + n])
            i += n
        chunkings.append(chunks)
    for chunks in chunkings:
        dec = FrameDecoder()
        got: list[tuple[int, int, Message]] = []
        for c in chunks:
            got += [(h.type, h.flags, msg) for h, msg in dec.feed(c)]
        dec.close()
        assert [(t, fl) for t, fl, _ in got] == [(f.type, f.flags) for f in frames]
        assert b"".join(encode_frame(msg, fl) for _, fl, msg in got) == data


def test_semantics_of_known_frames() -> None:
    """Spot checks of decoded content against the transcript text."""
    by_type: dict[int, list[tuple[GoldenFrame, Message]]] = defaultdict(list)
    for f in FRAMES:
        by_type[f.type].append((f, decode_message(f.type, f.payload)))

    _start_frame, start = by_type[0x0000][0]
    assert isinstance(start, m.StartMessage)
    assert start.debug_id == "inv_1lMulwTzR0ZU4PbrAfxhSQlcCLaqnarfYo"
    assert start.known_entries == 1 and start.partial_state
    assert start.random_seed == 623382524433902083 and len(start.id) == 24

    inp = by_type[0x0400][0][1]
    assert isinstance(inp, m.InputCommandMessage)
    assert inp.headers[0] == m.Header("x-restate-ingress-path", "/Greeter/greet")
    assert inp.value == m.Value(b'"bob"')

    # v7 ProposeRunCompletion carries REQUESTED_ACK, v6 does not
    flags = {(f.section[:2], f.flags) for f, _ in by_type[0x0005]}
    assert flags == {("v6", 0), ("v7", REQUESTED_ACK)}
    prop = by_type[0x0005][0][1]
    assert isinstance(prop, m.ProposeRunCompletionMessage)
    assert prop.result_completion_id == 1 and prop.value == b'"side-bob"'

    # v6 flat suspensions vs v7 Future trees
    for f, susp in by_type[0x0001]:
        assert isinstance(susp, m.SuspensionMessage)
        if f.section.startswith("v6"):
            assert susp.awaiting_on is None and 1 in susp.waiting_signals
        else:
            assert susp.waiting_completions == () and susp.awaiting_on is not None
            assert susp.awaiting_on.combinator_type is m.CombinatorType.FIRST_COMPLETED
            assert 1 in susp.awaiting_on.waiting_signals

    ack = by_type[0x0007][0][1]
    assert ack == m.ProposeRunCompletionAckMessage(1)

    signals = [msg for _, msg in by_type[0xFBFF]]
    assert m.SignalNotificationMessage(idx=1, void=m.VOID) in signals
    failed = [s for s in signals if isinstance(s, m.SignalNotificationMessage) and s.failure]
    assert failed[0].result == m.Failure(500, "rejected-reason")
    for s in signals:
        assert isinstance(s, m.Notification)
        assert s.notification_id.kind == m.NotificationKind.SIGNAL

    keys = by_type[0x8006][0][1]
    assert isinstance(keys, m.GetLazyStateKeysCompletionNotificationMessage)
    assert keys.completion_id == 2 and keys.result == m.StateKeys((b"n",))

    eager_keys = by_type[0x0408][0][1]
    assert eager_keys == m.GetEagerStateKeysCommandMessage(value=m.StateKeys((b"a", b"n")))

    call = by_type[0x040D][0][1]
    assert isinstance(call, m.CallCommandMessage)
    assert (call.service_name, call.handler_name, call.key) == ("Counter", "add", "bob")
    assert call.completion_ids() == (3, 4)

    for _, n in by_type[0x800E]:
        assert isinstance(n, m.CallInvocationIdCompletionNotificationMessage)
        assert isinstance(n.result, str) and n.result.startswith("inv_1")
