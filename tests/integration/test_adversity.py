"""Hostile and unlucky peers over real TCP: each gets an error and a close, the others are unaffected."""

from __future__ import annotations

import asyncio
import socket
import struct

import msgpack
import pytest

from simprot.client import SimProtClient
from simprot.errors import ErrorCode, RequestError
from simprot.framing import encode_frame
from tests.integration.conftest import ADMIN, ADMIN_PW, AGENT, AGENT_PW, Core
from tests.malformed import MALFORMED

DEEP: list = [1]
for _ in range(40):
    DEEP = [DEEP]


class Raw:
    """A hand-driven SimProt peer on a plain socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, core: Core) -> Raw:
        host, port = core.app.simprot_address
        return cls(*await asyncio.open_connection(host, port))

    def send(self, value: object) -> None:
        self.writer.write(encode_frame(value))

    async def recv(self, timeout: float = 5.0) -> list:
        head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        body = await asyncio.wait_for(self.reader.readexactly(struct.unpack(">I", head)[0]), timeout)
        return msgpack.unpackb(body, raw=False)

    async def closed(self, timeout: float = 5.0) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(1 << 16), timeout) == b""
        except ConnectionResetError:
            return True

    async def login(self, user: str = ADMIN, password: str = ADMIN_PW) -> dict:
        self.send([1, 1, "hello", {"versions": [1], "client": "raw"}])
        hello = await self.recv()
        assert hello[0] == 2
        self.send([1, 2, "login", {"user": user, "password": password}])
        answer = await self.recv()
        assert answer[0] == 2, answer
        return hello[2]

    def close(self) -> None:
        self.writer.close()


async def expect_fatal(raw: Raw, code: ErrorCode) -> None:
    msg = await raw.recv()
    assert msg[0] == 3 and msg[1] == 0 and msg[2] == code, msg
    assert await raw.closed()


async def test_request_before_hello_is_a_protocol_error(core: Core) -> None:
    raw = await Raw.open(core)
    raw.send([1, 1, "status", {}])
    await expect_fatal(raw, ErrorCode.PROTOCOL_ERROR)


async def test_http_speaker_is_refused(core: Core) -> None:
    raw = await Raw.open(core)
    raw.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # "GET " = length 1195725856
    await expect_fatal(raw, ErrorCode.FRAME_TOO_LARGE)


async def test_request_before_login_needs_auth(core: Core) -> None:
    raw = await Raw.open(core)
    raw.send([1, 1, "hello", {"versions": [1]}])
    await raw.recv()
    raw.send([1, 2, "status", {}])
    msg = await raw.recv()
    assert msg[:3] == [3, 2, ErrorCode.NOT_AUTHENTICATED]
    raw.send([5, 77])
    assert await raw.recv() == [6, 77]
    raw.close()


async def test_unsupported_version(core: Core) -> None:
    raw = await Raw.open(core)
    raw.send([1, 1, "hello", {"versions": [7, 8]}])
    msg = await raw.recv()
    assert msg[2] == ErrorCode.UNSUPPORTED_VERSION and msg[4]["versions"] == [1]
    assert await raw.closed()


@pytest.mark.parametrize("payload", [
    struct.pack(">I", 0),                                       # zero length
    struct.pack(">I", 0x80000000),                              # "negative" length
    struct.pack(">I", 70_000) + b"\x00" * 10,                   # above the pre-login limit
    struct.pack(">I", 3) + b"\x92\x01\xc1",                     # invalid msgpack
    struct.pack(">I", 4) + b"\x91\xa2\xff\xfe",                 # invalid UTF-8
    encode_frame([42, 1]),                                      # unknown kind
    encode_frame({"not": "an array"}),
    encode_frame([1, 1, "hello", {"versions": [1], "x": DEEP}]),  # nesting beyond 32
])
async def test_hostile_frames_get_an_error_and_a_close(core: Core, payload: bytes) -> None:
    bystander = await core.connected(AGENT, AGENT_PW)
    raw = await Raw.open(core)
    raw.writer.write(payload)
    msg = await raw.recv()
    assert msg[0] == 3 and msg[1] == 0 and msg[2] in (ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_TOO_LARGE)
    assert await raw.closed()
    assert (await bystander.request("echo", {"still": "here"})) == {"still": "here"}
    await bystander.close()


async def test_truncated_frame_then_eof_is_just_closed(core: Core) -> None:
    raw = await Raw.open(core)
    raw.writer.write(encode_frame([1, 1, "hello", {"versions": [1]}])[:-3])
    raw.writer.write_eof()
    assert await raw.closed()
    await asyncio.sleep(0.05)
    assert core.app.server.connections == {}  # type: ignore[union-attr]


async def test_oversized_frame_after_login(core_factory) -> None:
    core = await core_factory(max_frame=100_000, max_send_buffer=200_000)
    raw = await Raw.open(core)
    hello = await raw.login()
    assert hello["max_frame"] == 100_000 and hello["preauth_max_frame"] == 65_536
    raw.send([1, 3, "echo", {"blob": b"x" * 90_000}])  # allowed after login
    msg = await raw.recv()
    assert msg[0] == 2 and len(msg[2]["blob"]) == 90_000
    raw.writer.write(struct.pack(">I", 100_001))
    await expect_fatal(raw, ErrorCode.FRAME_TOO_LARGE)


async def test_handshake_timeout_closes_silent_connections(core_factory) -> None:
    core = await core_factory(handshake_timeout=0.5)
    raw = await Raw.open(core)  # connects and says nothing (a half-open or idle scanner)
    await expect_fatal(raw, ErrorCode.HANDSHAKE_TIMEOUT)


async def test_heartbeat_timeout_closes_a_silent_peer(core_factory) -> None:
    core = await core_factory(heartbeat_interval=0.3, heartbeat_timeout=1.0)
    raw = await Raw.open(core)
    await raw.login()
    # the server pings while we stay silent, then gives up
    msg = await raw.recv()
    assert msg[0] == 5
    msg = await raw.recv()
    while msg[0] == 5:
        msg = await raw.recv()
    assert msg[:3] == [3, 0, ErrorCode.HEARTBEAT_TIMEOUT]


async def test_client_heartbeats_keep_an_idle_session_alive(core_factory) -> None:
    core = await core_factory(heartbeat_interval=0.3, heartbeat_timeout=1.0)
    c = await core.connected()
    await asyncio.sleep(2.5)
    assert (await c.request("echo", {"a": 1})) == {"a": 1}
    await c.close()


@pytest.mark.parametrize("second", ["accounts.list", "echo"])
async def test_duplicate_in_flight_id(core: Core, second: str) -> None:
    raw = await Raw.open(core)
    await raw.login()
    raw.send([1, 5, "accounts.list", {}])  # a database operation: still in flight when the next arrives
    raw.send([1, 5, second, {}])
    got = sorted([await raw.recv(), await raw.recv()], key=lambda m: m[0])
    assert got[0][0] == 2 and "accounts" in got[0][2] and got[1][:3] == [3, 5, ErrorCode.DUPLICATE_ID]
    raw.close()


async def test_bad_hello_is_a_protocol_error(core: Core) -> None:
    raw = await Raw.open(core)
    raw.send([1, 1, "hello", {"versions": "1"}])
    await expect_fatal(raw, ErrorCode.PROTOCOL_ERROR)


async def test_max_inflight_of_one_does_not_stall(core_factory) -> None:
    core = await core_factory(max_inflight=1)
    c = await core.connected()
    answers = await c.request_many("accounts.list", [{}] * 20, timeout=10)
    assert all(isinstance(a, dict) for a in answers)
    await c.close()


async def test_slow_consumer_is_dropped_and_others_keep_receiving(core_factory) -> None:
    core = await core_factory(max_frame=65_536, max_send_buffer=300_000)
    host, port = core.app.simprot_address
    # the slow one: subscribes, then never reads; a tiny receive buffer makes it fill up fast
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    slow = Raw(reader, writer)
    await slow.login(AGENT, AGENT_PW)
    slow.send([1, 3, "subscribe", {"topic": "messages"}])
    assert (await slow.recv())[0] == 2
    fast_seen: list[int] = []
    fast = await core.connected(AGENT, AGENT_PW)
    await fast.subscribe("messages", lambda t, s, n, d: fast_seen.append(s))
    sup = await core.connected()
    text = "x" * 1900
    # ~15 MB of events: more than the kernel's socket buffers can absorb for the sleeper
    for batch in range(80):
        await sup.request_many("messages.send", [{"text": text}] * 100)
        if batch % 5 == 4:
            await asyncio.sleep(0.02)
    for _ in range(100):
        if len(fast_seen) == 8000:
            break
        await asyncio.sleep(0.05)
    assert fast_seen == list(range(1, 8001))  # every event, in order, once
    slow_conns = [c for c in core.app.server.connections.values() if c.close_reason]  # type: ignore[union-attr]
    assert len(core.app.server.connections) == 2 and not slow_conns  # type: ignore[union-attr]
    for c in (fast, sup):
        await c.close()
    sock.close()


async def test_max_connections(core_factory) -> None:
    core = await core_factory(max_connections=2)
    a = await core.connected()
    b = await core.connected()
    raw = await Raw.open(core)
    await expect_fatal(raw, ErrorCode.TOO_MANY_CONNECTIONS)
    await a.close()
    await b.close()


async def test_many_requests_in_flight_are_backpressured_not_dropped(core_factory) -> None:
    core = await core_factory(max_inflight=8)
    c = await core.connected()
    answers = await c.request_many("accounts.list", [{}] * 200)  # async op: uses the in-flight budget
    assert all(isinstance(a, dict) and a["accounts"] for a in answers)
    await c.close()


async def test_shutdown_tells_clients(core: Core) -> None:
    c = SimProtClient([core.address], user=ADMIN, password=ADMIN_PW, reconnect=False)
    await c.connect()
    raw = await Raw.open(core)
    await raw.login()
    await core.app.server.close(grace=0.5)  # type: ignore[union-attr]
    msg = await raw.recv()
    assert msg[:3] == [3, 0, ErrorCode.SERVER_SHUTTING_DOWN]


async def test_a_failing_operation_runs_once_and_answers_internal_error(core: Core) -> None:
    from simprot.server import Operation

    calls: list[dict] = []

    def boom(conn, args: dict) -> dict:
        calls.append(args)
        raise KeyError("a bug")

    core.app.service.ops["boom"] = Operation("boom", boom, None)  # type: ignore[union-attr]
    c = await core.connected()
    with pytest.raises(RequestError) as e:
        await c.request("boom", {"x": 1})
    assert e.value.code is ErrorCode.INTERNAL_ERROR and len(calls) == 1
    assert (await c.request("echo", {"after": True})) == {"after": True}  # the session goes on
    await c.close()


@pytest.mark.parametrize("wire", MALFORMED)
async def test_malformed_messages_after_login(core: Core, wire: list) -> None:
    raw = await Raw.open(core)
    await raw.login()
    raw.send(wire)
    await expect_fatal(raw, ErrorCode.PROTOCOL_ERROR)
