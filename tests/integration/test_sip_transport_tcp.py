# ruff: noqa: F811 - the fixtures imported from test_sip_transport are used as parameters
"""SipTransport over TCP with real sockets: framing, keepalives, idle close, connection reuse,
slow consumers, bounds (helpers and fixtures from test_sip_transport)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import pytest

from sipcore.message import Response, make_response
from sipcore.net import TCP, Outgoing, Peer
from sipcore.syntax import MessageLimits
from sipcore.transport import TransportFailure, TransportLimits
from tests.integration.test_sip_transport import (  # noqa: F401 - fixtures are found by name
    Factory,
    RawTcp,
    RawUdp,
    Sink,
    _no_loop_errors,
    free_port,
    make,
    request,
    transports,
)

LOCAL = "127.0.0.1"
WAIT = 2.0  # seconds any single expected event may take on a busy machine


# ---- TCP ---------------------------------------------------------------------------------------

async def test_tcp_segments_are_framed_and_responses_use_the_same_connection(make: Factory) -> None:
    server, sink = await make()
    address = await server.listen_tcp(LOCAL, 0)
    client = await RawTcp.open(address)
    try:
        via = f"SIP/2.0/TCP {LOCAL}:5999;branch=z9hG4bK-"
        # three messages in one segment, one of them with a body
        await client.write(request(via=via + "1", cseq=1) + request(via=via + "2", cseq=2)
                           + request("MESSAGE", via=via + "3", cseq=3, body=b"hello\r\n\r\nworld",
                                     extra=("Content-Type: text/plain",)))
        got = [await sink.message() for _ in range(3)]
        assert [m.cseq.number for m, _ in got] == [1, 2, 3]
        assert got[2][0].body == b"hello\r\n\r\nworld"
        peers = {p for _, p in got}
        assert len(peers) == 1
        peer = peers.pop()
        assert peer.transport == TCP and peer.port == client.port and peer.conn is not None
        # one message over many segments
        whole = request("INVITE", via=via + "4;rport", cseq=4, body=b"v=0\r\n",
                        extra=("Content-Type: application/sdp",))
        for i in range(0, len(whole), 17):
            await client.write(whole[i:i + 17])
            await asyncio.sleep(0.002)
        msg, peer4 = await sink.request()
        assert peer4 == peer and msg.body == b"v=0\r\n"
        assert msg.via.rport == client.port and msg.via.received == LOCAL  # RFC 3581 applies on TCP too
        # the response goes back on the same connection, although the Via names port 5999
        assert server.send_response(make_response(msg, 180, to_tag="t"), peer) == peer
        answer = await client.recv()
        assert isinstance(answer, Response) and answer.status == 180 and answer.via.branch == "z9hG4bK-4"
        assert server.connection(peer.conn or 0) == peer
        assert server.stats()["tcp_in"] == 4 and server.stats()["tcp_open"] == 1
    finally:
        client.close()


async def test_tcp_crlf_ping_gets_pong_and_pongs_are_ignored(make: Factory) -> None:
    server, sink = await make()
    address = await server.listen_tcp(LOCAL, 0)
    client = await RawTcp.open(address)
    try:
        await client.write(b"\r\n\r\n")  # RFC 5626 §3.5.1 ping
        assert await asyncio.wait_for(client.reader.read(100), WAIT) == b"\r\n"
        await client.write(b"\r\n")  # a pong from the client: nothing comes back
        await client.write(request())
        msg, _ = await sink.message()
        assert msg.cseq.number == 1
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.reader.read(100), 0.05)
    finally:
        client.close()


async def test_tcp_idle_connection_is_closed(make: Factory) -> None:
    server, _ = await make(TransportLimits(idle_timeout=0.15))
    address = await server.listen_tcp(LOCAL, 0)
    client = await RawTcp.open(address)
    busy = await RawTcp.open(address)
    try:
        for _ in range(4):  # traffic keeps a connection alive past the timeout
            await busy.write(b"\r\n\r\n")
            assert await asyncio.wait_for(busy.reader.read(10), WAIT) == b"\r\n"
            await asyncio.sleep(0.06)
        assert await client.closed()
        assert server.stats()["tcp_idle_closed"] >= 1
        await busy.write(b"\r\n\r\n")
        assert await asyncio.wait_for(busy.reader.read(10), WAIT) == b"\r\n"
    finally:
        client.close()
        busy.close()


async def test_tcp_fatal_framing_errors_answer_then_close(make: Factory) -> None:
    server, sink = await make(TransportLimits(message=MessageLimits(max_message_size=2000)))
    address = await server.listen_tcp(LOCAL, 0)
    no_length = await RawTcp.open(address)
    too_big = await RawTcp.open(address)
    malformed = await RawTcp.open(address)
    try:
        await no_length.write(request(content_length=False))  # Content-Length is mandatory on a stream
        answer = await no_length.recv()
        assert isinstance(answer, Response) and answer.status == 400
        assert await no_length.closed()
        await too_big.write(request("MESSAGE", body=b"x" * 3000))
        answer = await too_big.recv()
        assert isinstance(answer, Response) and answer.status == 513
        assert await too_big.closed()
        # a framed but malformed message is answered and the connection goes on
        await malformed.write(request(extra=("No colon",), cseq=7) + request(cseq=8))
        answer = await malformed.recv()
        assert isinstance(answer, Response) and answer.status == 400 and answer.cseq.number == 7
        msg, _ = await sink.message()
        assert msg.cseq.number == 8
        assert server.stats()["parse_errors"] == 3
    finally:
        for c in (no_length, too_big, malformed):
            c.close()


async def test_tcp_outbound_connections_are_reused_and_answered_on(make: Factory) -> None:
    a, a_sink = await make()
    b, b_sink = await make()
    b_address = await b.listen_tcp(LOCAL, 0)
    target = Peer(TCP, *b_address)
    first = a.send(request(via=f"SIP/2.0/TCP {LOCAL}:5999;branch=z9hG4bK-1", cseq=1), target)
    second = a.send(request(via=f"SIP/2.0/TCP {LOCAL}:5999;branch=z9hG4bK-2", cseq=2), target)  # still connecting
    assert first == second and first.conn is not None and first.address == b_address
    third = a.send_outgoing(Outgoing(request(cseq=3), dataclasses.replace(target, conn=first.conn)))
    assert third == first
    got = [await b_sink.request() for _ in range(3)]
    assert [m.cseq.number for m, _ in got] == [1, 2, 3] and len({p.conn for _, p in got}) == 1
    # the answer comes back on that connection: A sees it on the connection it opened
    b.send_outgoing(Outgoing(make_response(got[0][0], 200, to_tag="b").to_bytes(), got[0][1]))
    answer, peer = await a_sink.message()
    assert isinstance(answer, Response) and answer.status == 200 and peer.conn == first.conn
    assert a.stats()["tcp_connected"] == 1 and a.stats()["tcp_out"] == 3 and b.stats()["tcp_accepted"] == 1


async def test_tcp_response_opens_a_connection_when_the_request_one_is_gone(make: Factory) -> None:
    """§18.2.2: the connection closed; the response goes to received/sent-by on a new connection."""
    a, a_sink = await make()
    a_address = await a.listen_tcp(LOCAL, 0)
    b, b_sink = await make()
    b_address = await b.listen_tcp(LOCAL, 0)
    client = await RawTcp.open(b_address)
    await client.write(request(via=f"SIP/2.0/TCP a.example.com:{a_address[1]};branch=z9hG4bK-x"))
    msg, peer = await b_sink.request()
    assert msg.via.received == LOCAL
    client.close()
    for _ in range(100):
        if b.connection(peer.conn or 0) is None:
            break
        await asyncio.sleep(0.01)
    used = b.send_response(make_response(msg, 200, to_tag="t").to_bytes(), peer)  # bytes: parsed for the Via
    assert used.address == (LOCAL, a_address[1]) and used.conn != peer.conn
    answer, _ = await a_sink.message()
    assert isinstance(answer, Response) and answer.via.branch == "z9hG4bK-x"


async def test_tcp_connect_failure_reports_on_error(make: Factory) -> None:
    a, sink = await make()
    port = free_port(socket.SOCK_STREAM)  # nobody listens there
    used = a.send(request(), Peer(TCP, LOCAL, port))
    peer, exc = await sink.error()
    assert exc.failure is TransportFailure.CONNECT_FAILED and peer == used and peer.port == port
    assert a.stats()["tcp_connect_failures"] == 1 and a.stats()["tcp_open"] == 0
    a.send(request(), Peer(TCP, "sip.example.com", 5060))  # a name: never resolved
    assert (await sink.error())[1].failure is TransportFailure.BAD_ADDRESS


async def test_tcp_slow_consumer_is_dropped_without_stalling_others(make: Factory) -> None:
    server, sink = await make(TransportLimits(max_send_buffer=256 * 1024))
    address = await server.listen_tcp(LOCAL, 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it will never read
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address)
    stuck = RawTcp(*await asyncio.open_connection(sock=sock))
    other = await RawTcp.open(address)
    try:
        await stuck.write(request(cseq=1))
        msg, peer = await sink.request()
        big = make_response(msg, 200, to_tag="t").with_body(b"x" * 60_000, "text/plain")
        dropped = None
        for i in range(400):  # up to 24 MB; the kernel buffers take a few MB first
            server.send_response(big, peer)
            await other.write(request(cseq=100 + i))
            await sink.message()  # the other client is served all along
            if not sink.errors.empty():
                dropped = await sink.error()
                break
        assert dropped is not None, "the slow consumer was never dropped"
        assert dropped[0] == peer and dropped[1].failure is TransportFailure.SLOW_CONSUMER
        assert server.connection(peer.conn or 0) is None and server.stats()["tcp_slow_consumers"] == 1
        await other.write(request(cseq=1000))
        last, _ = await sink.message()
        assert last.cseq.number == 1000
    finally:
        stuck.close()
        other.close()


async def test_tcp_max_connections(make: Factory) -> None:
    server, sink = await make(TransportLimits(max_connections=2))
    address = await server.listen_tcp(LOCAL, 0)
    first = await RawTcp.open(address)
    second = await RawTcp.open(address)
    await first.write(request(cseq=1))
    await second.write(request(cseq=2))
    assert {(await sink.message())[0].cseq.number for _ in range(2)} == {1, 2}
    third = await RawTcp.open(address)
    try:
        assert await third.closed()
        assert server.stats()["tcp_refused"] == 1 and server.stats()["tcp_open"] == 2
        # an outbound connection is refused too, with on_error
        server.send(request(), Peer(TCP, LOCAL, free_port(socket.SOCK_STREAM)))
        assert (await sink.error())[1].failure is TransportFailure.TOO_MANY_CONNECTIONS
        first.close()
        assert await first.closed()
        for _ in range(100):  # once one is gone, a new one is admitted
            if server.stats()["tcp_open"] == 1:
                break
            await asyncio.sleep(0.01)
        fourth = await RawTcp.open(address)
        await fourth.write(request(cseq=4))
        assert (await sink.message())[0].cseq.number == 4
        fourth.close()
    finally:
        for c in (first, second, third):
            c.close()


async def test_close_flushes_queued_tcp_data() -> None:
    async with transports() as make_:
        b, b_sink = await make_()
        b_address = await b.listen_tcp(LOCAL, 0)
        a, _ = await make_()
        a.send(request(cseq=1) + request(cseq=2), Peer(TCP, *b_address))  # queued: not connected yet
        await a.close()
        assert a.stats()["tcp_open"] == 0
        assert [(await b_sink.message())[0].cseq.number for _ in range(2)] == [1, 2]
        a.send(request(), Peer(TCP, *b_address))  # after close: nothing happens, nothing is raised
        assert a.stats()["tcp_connected"] == 1


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_connections"):
        TransportLimits(max_connections=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        TransportLimits(idle_timeout=float("nan"))
    with pytest.raises(ValueError, match="message"):
        TransportLimits(message=65536)  # type: ignore[arg-type]
    assert TransportLimits().idle_timeout == 300.0 and TransportLimits().max_connections == 10_000
