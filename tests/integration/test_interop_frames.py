"""Interoperability tests (malformed frames): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import socket
import struct
import time

import msgpack
import pytest

from tests.integration.interop_support import (
    AGENT,
    _frame,
    _nested,
    _worked_example_frames,
    client,
    expect_connection_end,
    run,
)
from tests.interop_client import (
    ConnectionClosed,
    FrameDecoder,
    SimProtClient,
    encode_frame,
    parse_address,
)

# ---- malformed frames


async def test_zero_length_frame(core):
    def scenario():
        with client(core) as c:
            c.send_raw(b"\x00\x00\x00\x00")
            err = expect_connection_end(c, "FRAME_TOO_LARGE")
            assert err.details.get("max_frame") == 65536  # the limit in force before login

    await run(scenario)


async def test_frame_limits(core):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            # N = 65 536 is legal before login (the limit is inclusive): a padded hello
            base = len(msgpack.packb([1, 1, "hello", {"versions": [1], "client": ""}]))
            body = msgpack.packb([1, 1, "hello", {"versions": [1], "client": "x" * (65536 - base - 2)}])
            assert len(body) == 65536  # str 16: 3-byte header instead of the fixstr's 1
            c.pending[1] = ("hello", {})
            c.send_raw(struct.pack(">I", len(body)) + body)
            c.hello_answer = c.wait_answer(1)
            max_frame = c.hello_answer["max_frame"]
            c.login(*AGENT)
            # after login: max_frame is in force; a prefix above it is refused on the prefix alone
            c.send_raw(struct.pack(">I", max_frame + 1))
            err = expect_connection_end(c, "FRAME_TOO_LARGE")
            assert err.details.get("max_frame") == max_frame
        with client(core) as c:
            c.send_raw(struct.pack(">I", 65537))
            assert expect_connection_end(c, "FRAME_TOO_LARGE").details.get("max_frame") == 65536

    await run(scenario)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_frame(msgpack.packb([1, 2, "echo", {}]) + b"\xc0"), id="trailing-bytes"),
        pytest.param(_frame(msgpack.packb([1, 2, "echo", {}])[:-1]), id="truncated-body"),
        pytest.param(struct.pack(">I", 2) + b"\x91\x01", id="short-array"),
        pytest.param(encode_frame({"kind": 1}), id="not-an-array"),
        pytest.param(encode_frame([]), id="empty-array"),
        pytest.param(encode_frame([4, "messages", 1, "x", {}]), id="kind-4"),
        pytest.param(encode_frame([9, 1]), id="unknown-kind"),
        pytest.param(encode_frame([1, 0, "echo", {}]), id="id-0"),
        pytest.param(encode_frame([1, 2**32, "echo", {}]), id="id-too-big"),
        pytest.param(encode_frame([1, 2, "", {}]), id="empty-op"),
        pytest.param(encode_frame([1, 2, "e" * 65, {}]), id="long-op"),
        pytest.param(encode_frame([1, 2, "echo", None]), id="args-nil"),
        pytest.param(encode_frame([1, 2, b"echo", {}]), id="bin-op"),
        pytest.param(encode_frame([1, 2, "echo", {1: "x"}]), id="int-key"),
        pytest.param(encode_frame([1, 2, "echo", {"x": msgpack.ExtType(1, b"a")}]), id="ext"),
        pytest.param(encode_frame([1, 2, "echo", {"x": 1}])[:-2] + b"\xa1\xff", id="invalid-utf8"),
        pytest.param(encode_frame([1, 2, "echo", {"d": _nested(32)}]), id="depth-33"),
        pytest.param(encode_frame([1.0, 2, "echo", {}]), id="float-kind"),
        pytest.param(encode_frame([True, 2, "echo", {}]), id="bool-kind"),
        pytest.param(encode_frame([1, 2, "echo", {}, 5]), id="5-element-request"),
        pytest.param(encode_frame([5, -1]), id="ping-negative-token"),
        pytest.param(encode_frame([5, 0, 0]), id="ping-3-elements"),
    ],
)
async def test_malformed_frames_after_login(core, raw):
    def scenario():
        with client(core, AGENT) as c:
            c.send_raw(raw)
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_nesting_depth_32_is_legal(core):
    def scenario():
        with client(core, AGENT) as c:
            value = _nested(31)  # args map = level 1, plus 31 nested arrays = level 32
            assert c.request("echo", {"d": value}) == {"d": value}

    await run(scenario)


async def test_answers_before_connection_error_are_delivered(core):
    """§6: 'all answers already produced are written, then the connection-level ERROR'."""

    def scenario():
        with client(core, AGENT) as c:
            c.pending[5] = ("echo", {})
            c.send_raw(encode_frame([1, 5, "echo", {"first": 1}]) + encode_frame([2, 5, {}]))
            err = c.wait_closed(2.0)
            assert err is not None and err.name == "PROTOCOL_ERROR"
            assert [m for m in c.received if m[0] == 2 and m[1] == 5] == [[2, 5, {"first": 1}]]

    await run(scenario)


async def test_raw_socket_hello_bytes_from_worked_example(core):
    """§14 frame 1, sent byte for byte, gets a hello answer of the documented shape."""

    def scenario():
        frame = _worked_example_frames()[0][2]
        host, port = parse_address(core.address)
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(frame)
            dec, msgs = FrameDecoder(), []
            deadline = time.monotonic() + 2
            while not msgs and time.monotonic() < deadline:
                msgs = dec.feed(s.recv(4096))
            assert msgs[0][:2] == [2, 1] and msgs[0][2]["version"] == 1
            assert set(msgs[0][2]) >= set(_worked_example_frames()[1][1][2])

    await run(scenario)


def test_client_refuses_bad_server_frames():
    dec = FrameDecoder()
    with pytest.raises(ConnectionClosed):
        dec.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ConnectionClosed):
        FrameDecoder().feed(encode_frame([1, 1, "x", {}]))  # kind 1 is client-only
    assert FrameDecoder().feed(struct.pack(">I", 3) + b"\x92\x06\x07") == [[6, 7]]
    with pytest.raises(ConnectionClosed):
        FrameDecoder().feed(struct.pack(">I", 4) + b"\x92\x06\x07\x00")  # trailing byte
