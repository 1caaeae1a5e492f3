from __future__ import annotations

import pytest
from rstq.protocol import versions as v


def test_invocation_content_types() -> None:
    assert v.invocation_content_type(6) == "application/vnd.restate.invocation.v6"
    for n in (5, 6, 7):
        assert v.parse_invocation_content_type(v.invocation_content_type(n)) == n
        assert v.negotiate_version(v.invocation_content_type(n)) == n
    assert v.parse_invocation_content_type("application/vnd.restate.invocation.v8") == 8
    assert v.negotiate_version("application/vnd.restate.invocation.v8") is None
    assert v.negotiate_version("application/vnd.restate.invocation.v4") is None
    assert v.negotiate_version(None) is None
    assert v.negotiate_version("application/json") is None
    assert v.negotiate_version("application/vnd.restate.invocation.v6; charset=x") == 6


def test_pick_version_like_server() -> None:
    assert v.pick_version(5, 7) == 6
    assert v.pick_version(5, 7, enable_v7=True) == 7
    assert v.pick_version(5, 5) == 5
    assert v.pick_version(7, 7) is None
    assert v.pick_version(7, 7, enable_v7=True) == 7
    assert v.pick_version(1, 4) is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, 2),
        ("*/*", None),
        ("application/json", None),
        (v.manifest_accept_header(), 4),
        ("application/vnd.restate.endpointmanifest.v3+json", 3),
        (("application/vnd.restate.endpointmanifest.v2+json, "
         "application/vnd.restate.endpointmanifest.v3+json"), 3),
        ("application/vnd.restate.endpointmanifest.v1+json", None),
    ],
)
def test_pick_manifest_version(accept: str | None, expected: int | None) -> None:
    assert v.pick_manifest_version(accept) == expected


def test_manifest_content_types() -> None:
    assert v.manifest_content_type(4) == "application/vnd.restate.endpointmanifest.v4+json"
    assert v.parse_manifest_content_type(v.manifest_content_type(1)) == 1
    assert v.parse_manifest_content_type("application/json") is None
    assert v.manifest_accept_header().count("endpointmanifest") == 4
    assert v.pick_manifest_version(v.manifest_accept_header(), supported=(1,)) == 1


def test_constants() -> None:
    assert v.ErrorCode.JOURNAL_MISMATCH == 570 == v.JOURNAL_MISMATCH
    assert v.PROTOCOL_VIOLATION == 571
    assert v.AWAITING_TWO_ASYNC_RESULTS == 572
    assert v.UNSUPPORTED_FEATURE == 573
    assert v.CANCEL_SIGNAL_IDX == 1 and v.FIRST_USER_SIGNAL_IDX == 17
    assert v.FIRST_COMPLETION_ID == 1
    assert v.SUPPORTED_VERSIONS == (5, 6, 7) and v.DEFAULT_VERSION == 6
    assert [int(x) for x in v.ProtocolVersion] == [5, 6, 7]
