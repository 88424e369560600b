"""Pure SimProt cores: framing, messages, session table, topics, throttle, liveness."""

from __future__ import annotations

import struct

import msgpack
import pytest

from simprot.errors import ErrorCode, FrameTooLarge, LocalProtocolError, RemoteProtocolError
from simprot.framing import FrameDecoder, check_depth, encode_frame
from simprot.liveness import LivenessPolicy, Verdict
from simprot.messages import Error, Event, Kind, Ping, Pong, Request, Result, from_wire
from simprot.session import TABLE, Action, Input, ServerSession, State, render_table
from simprot.throttle import LoginThrottle
from simprot.topics import ResumeMode, Topic
from tests.malformed import MALFORMED

ROUND_TRIP = [
    Request(1, "hello", {"versions": [1], "client": "x"}),
    Request(2**32 - 1, "accounts.add", {"username": "žluťoučký", "n": -5, "f": 1.5, "b": True, "z": None}),
    Result(7, {"nested": {"list": [1, 2, {"x": b"\x00\xff"}]}}),
    Result(8, None),
    Error(0, ErrorCode.NOT_MASTER, "go away", {"servers": ["h:1"]}),
    Error(9, ErrorCode.INVALID_ARGUMENT, "user: bad", {"field": "user"}),
    Event("messages", 1, "message", {"text": "hi"}),
    Ping(0), Pong(2**32 - 1),
]


@pytest.mark.parametrize("msg", ROUND_TRIP, ids=lambda m: type(m).__name__)
def test_round_trip_through_frames(msg) -> None:
    frame = encode_frame(msg.to_wire())
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
    dec = FrameDecoder(1 << 20)
    # feed one byte at a time: frames must survive any segmentation
    values = []
    for i in range(len(frame)):
        got, error = dec.decode(frame[i:i + 1])
        assert error is None
        values.extend(got)
    assert len(values) == 1 and dec.buffered == 0
    assert from_wire(values[0]) == msg


def test_many_frames_in_one_read() -> None:
    frames = b"".join(encode_frame(Request(i, "echo", {"i": i}).to_wire()) for i in range(1, 101))
    dec = FrameDecoder(1024)
    values, error = dec.decode(frames + encode_frame([5, 1])[:3])
    assert error is None
    assert [from_wire(v).id for v in values] == list(range(1, 101))
    assert dec.buffered == 3
    values, error = dec.decode(encode_frame([5, 1])[3:] + encode_frame([6, 2]))
    assert values == [[5, 1], [6, 2]] and error is None and dec.buffered == 0


@pytest.mark.parametrize("prefix", [struct.pack(">I", 0), struct.pack(">I", 1025), b"\xff\xff\xff\xff"])
def test_illegal_length_is_refused_before_the_body(prefix: bytes) -> None:
    dec = FrameDecoder(1024)
    values, error = dec.decode(encode_frame([5, 1]) + prefix)
    assert values == [[5, 1]]  # what came before the bad prefix is still delivered
    assert isinstance(error, FrameTooLarge) and error.code is ErrorCode.FRAME_TOO_LARGE


@pytest.mark.parametrize("body", [
    b"\xc1",                      # never-used msgpack byte
    b"\x92\x01",                  # truncated array
    b"\xa2\xff\xfe",              # invalid UTF-8
    b"\x81\x01\x02",              # integer map key
    b"\xd4\x05\x00",              # extension type
    b"\x01\x02",                  # extra data after the value
    b"\x91" * 2000 + b"\x01",     # nesting beyond msgpack's own stack
])
def test_bad_msgpack_is_a_remote_protocol_error(body: bytes) -> None:
    values, error = FrameDecoder(1 << 20).decode(struct.pack(">I", len(body)) + body)
    assert values == [] and isinstance(error, RemoteProtocolError)


def test_depth_limit() -> None:
    value: object = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(RemoteProtocolError):
        check_depth(value)
    check_depth({"a": [[{"b": 1}]]})


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed_messages(wire) -> None:
    with pytest.raises(RemoteProtocolError):
        from_wire(wire)


def test_session_table_is_complete_and_every_pair_lands_in_a_state() -> None:
    assert set(TABLE) == {(s, i) for s in State for i in Input}
    for (state, event), (action, nxt) in TABLE.items():
        s = ServerSession()
        s.state = state
        assert s.handle(event) is action and s.state is nxt
    # only hello leaves AWAIT_HELLO alive; only a successful check reaches READY
    assert [i for i in Input if TABLE[(State.AWAIT_HELLO, i)][1] is not State.CLOSED] == [Input.HELLO]
    assert {k for k, v in TABLE.items() if v[1] is State.READY and k[0] is not State.READY} == {
        (State.LOGGING_IN, Input.LOGIN_OK)}
    assert "ACCEPT_HELLO" in render_table()


def test_session_missing_pair_is_a_named_error() -> None:
    s = ServerSession()
    s.state = "bogus"  # type: ignore[assignment]
    with pytest.raises(LocalProtocolError):
        s.handle(Input.HELLO)


def test_happy_path() -> None:
    s = ServerSession()
    assert [s.handle(i) for i in (Input.HELLO, Input.LOGIN, Input.LOGIN_FAILED, Input.LOGIN, Input.LOGIN_OK,
                                  Input.REQUEST, Input.PING, Input.LOGOUT, Input.REQUEST)] == [
        Action.ACCEPT_HELLO, Action.CHECK_LOGIN, Action.DENY_LOGIN, Action.CHECK_LOGIN, Action.FINISH_LOGIN,
        Action.DISPATCH, Action.PONG, Action.LOGOUT, Action.IGNORE]


def test_topic_resume_decisions() -> None:
    t = Topic("messages", capacity=3)
    assert t.resume("e1", None, None) == (ResumeMode.SNAPSHOT, [])
    frames = [(t.publish("message", {"i": i}), None) for i in range(1, 6)]  # seq 1..5, buffer holds 3..5
    assert t.seq == 5 and t.oldest == 3
    assert t.resume("e1", 5, "e1") == (ResumeMode.LIVE, [])
    assert t.resume("e1", 3, "e1") == (ResumeMode.REPLAY, frames[3:])
    assert t.resume("e1", 2, "e1") == (ResumeMode.REPLAY, frames[2:])
    assert t.resume("e1", 1, "e1")[0] is ResumeMode.SNAPSHOT      # event 2 is gone
    assert t.resume("e1", 9, "e1")[0] is ResumeMode.SNAPSHOT      # from the future
    assert t.resume("e1", 4, "other")[0] is ResumeMode.SNAPSHOT   # another epoch
    body = msgpack.unpackb(frames[0][0][4:])
    t.publish("message", {"private": True}, frozenset({"jana"}))
    assert t.resume("e1", 5, "e1")[1][0][1] == frozenset({"jana"})
    assert body == [Kind.EVENT, "messages", 1, "message", {"i": 1}]


def test_throttle() -> None:
    th = LoginThrottle(max_failures=3, window=10.0, lockout=30.0)
    keys = ["user:a", "addr:1.2.3.4"]
    for t in (0.0, 1.0):
        assert th.retry_after(keys, t) == 0
        th.failure(keys, t)
    assert th.retry_after(keys, 2.0) == 0
    th.failure(keys, 2.0)
    assert th.retry_after(["user:a"], 3.0) == pytest.approx(29.0)
    assert th.retry_after(["addr:1.2.3.4"], 3.0) == pytest.approx(29.0)
    assert th.retry_after(["user:b"], 3.0) == 0
    assert th.retry_after(keys, 32.1) == 0
    # failures outside the window do not add up
    th2 = LoginThrottle(max_failures=2, window=5.0, lockout=30.0)
    th2.failure(["k"], 0.0)
    th2.failure(["k"], 6.0)
    assert th2.retry_after(["k"], 6.0) == 0
    th2.success("k")
    # the number of tracked keys is bounded
    th3 = LoginThrottle(max_failures=5, window=5.0, lockout=5.0, max_keys=10)
    for i in range(100):
        th3.failure([f"k{i}"], 0.0)
    assert len(th3._failures) <= 11


def test_liveness() -> None:
    p = LivenessPolicy(heartbeat_interval=5, heartbeat_timeout=15, handshake_timeout=10)
    assert p.check(1, 0, 0, 0, authenticated=False) is Verdict.OK
    assert p.check(9, 0, 0, 0, authenticated=False) is Verdict.OK  # no pings before login
    assert p.check(10, 0, 9, 9, authenticated=False) is Verdict.HANDSHAKE_TIMEOUT
    assert p.check(10, 0, 9, 9, authenticated=True) is Verdict.OK
    assert p.check(16, 0, 15, 10, authenticated=True) is Verdict.SEND_PING
    assert p.check(30, 0, 15, 29, authenticated=True) is Verdict.HEARTBEAT_TIMEOUT
    with pytest.raises(ValueError):
        LivenessPolicy(5, 5, 1)
