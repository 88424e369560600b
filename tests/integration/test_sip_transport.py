"""SipTransport over real sockets on loopback: UDP and TCP round trips, RFC 3261 §18 routing,
hostile and unlucky peers, and a real peer (sipp).

Every test runs with a loop exception handler that records what reaches it; the test fails if
anything did (like asyncpg's test base): the transport must keep its errors to itself. The main
round trips also run on uvloop (in a worker thread with its own loop), which the daemons use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from sipcore.framing import StreamDecoder
from sipcore.message import Request, Response, make_response
from sipcore.net import TCP, UDP, Peer
from sipcore.parser import parse_message
from sipcore.syntax import MessageLimits, ParseError
from sipcore.transport import SipTransport, TransportError, TransportFailure, TransportLimits

LOCAL = "127.0.0.1"
WAIT = 2.0  # seconds any single expected event may take on a busy machine


# ---- helpers -----------------------------------------------------------------------------------

def request(method: str = "OPTIONS", *, via: str = f"SIP/2.0/UDP {LOCAL}:5070;branch=z9hG4bK-1",
            more_vias: tuple[str, ...] = (), body: bytes = b"", content_length: bool = True,
            call_id: str = "call-1@test", cseq: int = 1, extra: tuple[str, ...] = ()) -> bytes:
    lines = [f"{method} sip:uas@{LOCAL} SIP/2.0", f"Via: {via}", *(f"Via: {v}" for v in more_vias),
             "Max-Forwards: 70", f"From: <sip:uac@{LOCAL}>;tag=from-1", f"To: <sip:uas@{LOCAL}>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", *extra]
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Sink:
    """The application side of a SipTransport under test: queues what the callbacks get."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[Request | Response, Peer]] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Peer, TransportError]] = asyncio.Queue()

    def on_message(self, msg: Request | Response, peer: Peer) -> None:
        self.messages.put_nowait((msg, peer))

    def on_error(self, peer: Peer, exc: TransportError) -> None:
        self.errors.put_nowait((peer, exc))

    async def message(self) -> tuple[Request | Response, Peer]:
        return await asyncio.wait_for(self.messages.get(), WAIT)

    async def request(self) -> tuple[Request, Peer]:
        msg, peer = await self.message()
        assert isinstance(msg, Request), msg
        return msg, peer

    async def error(self) -> tuple[Peer, TransportError]:
        return await asyncio.wait_for(self.errors.get(), WAIT)


class RawUdp(asyncio.DatagramProtocol):
    """A hand-driven UDP peer."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, host: str = LOCAL) -> RawUdp:
        _, proto = await asyncio.get_running_loop().create_datagram_endpoint(cls, local_addr=(host, 0))
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    async def recv(self) -> Request | Response:
        data, _ = await asyncio.wait_for(self.queue.get(), WAIT)
        return parse_message(data)

    async def nothing(self, within: float = 0.1) -> bool:
        await asyncio.sleep(within)
        return self.queue.empty()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RawTcp:
    """A hand-driven TCP peer; it frames what it reads with sipcore's own decoder."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = StreamDecoder()
        self.pending: list[Any] = []

    @classmethod
    async def open(cls, address: tuple[str, int], **kw: Any) -> RawTcp:
        return cls(*await asyncio.open_connection(address[0], address[1], **kw))

    @property
    def port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> Request | Response:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not data:
                raise EOFError("connection closed")
            self.pending.extend(self.decoder.feed(data))
        event = self.pending.pop(0)
        assert isinstance(event, (Request, Response)), event
        return event

    async def closed(self) -> bool:
        """True once the server has closed the connection (what it sent before is skipped)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), WAIT):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


Factory = Callable[..., Awaitable[tuple[SipTransport, Sink]]]


@contextlib.asynccontextmanager
async def transports() -> AsyncIterator[Factory]:
    """Make SipTransports with Sinks; close them all at the end."""
    made: list[SipTransport] = []

    async def make(limits: TransportLimits | None = None, on_message: Any = None) -> tuple[SipTransport, Sink]:
        sink = Sink()
        transport = SipTransport(on_message or sink.on_message, sink.on_error, limits)
        made.append(transport)
        return transport, sink

    try:
        yield make
    finally:
        for transport in made:
            await transport.close()


@contextlib.contextmanager
def loop_guard(loop: asyncio.AbstractEventLoop) -> Any:
    """Fail if anything reaches the loop's exception handler meanwhile."""
    seen: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(old)
    assert not seen, f"exceptions reached the event loop: {seen}"


@pytest.fixture(autouse=True)
async def _no_loop_errors() -> AsyncIterator[None]:
    with loop_guard(asyncio.get_running_loop()):
        yield
        await asyncio.sleep(0.01)  # callbacks scheduled by the test's last steps run inside the guard


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    async with transports() as factory:
        yield factory


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


# ---- UDP ---------------------------------------------------------------------------------------

async def test_udp_request_in_response_back_to_the_source(make: Factory) -> None:
    server, sink = await make()
    host, port = await server.listen_udp(LOCAL, 0)
    assert host == LOCAL and port > 0
    client = await RawUdp.open()
    try:
        client.send(request(via=f"SIP/2.0/UDP {LOCAL}:{client.port};branch=z9hG4bK-a"), (host, port))
        msg, peer = await sink.message()
        assert isinstance(msg, Request) and msg.method == "OPTIONS"
        assert peer == Peer(UDP, LOCAL, client.port)
        assert msg.via.received is None and msg.via.rport is None  # sent-by is the source: untouched
        sent = server.send_response(make_response(msg, 200, to_tag="t1"), peer)
        assert sent == peer
        answer = await client.recv()
        assert isinstance(answer, Response) and answer.status == 200 and answer.to_tag == "t1"
        stats = server.stats()
        assert stats["udp_in"] == 1 and stats["udp_out"] == 1 and stats["parse_errors"] == 0
    finally:
        client.close()


# (top Via as sent, expected received, expected rport); {P} is the client's source port
STAMP_CASES = [
    ("SIP/2.0/UDP 127.0.0.1:{P};branch=z9hG4bK-1", None, None),
    ("SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1", None, None),  # port differs: no received (§18.2.1 is host-only)
    ("SIP/2.0/UDP 192.0.2.1:{P};branch=z9hG4bK-1", LOCAL, None),
    ("SIP/2.0/UDP uac.example.com:{P};branch=z9hG4bK-1", LOCAL, None),
    ("SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1;rport", LOCAL, "{P}"),  # RFC 3581 §4: received too
    ("SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bK-1", LOCAL, "{P}"),
    ("SIP/2.0/UDP 127.0.0.1:{P};branch=z9hG4bK-1;rport=1234", None, "1234"),  # already filled: left alone
    ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1;received=198.51.100.7", LOCAL, None),  # stale: overwritten
    ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1;received=127.0.0.1", LOCAL, None),  # already right
]


@pytest.mark.parametrize(("via", "received", "rport"), STAMP_CASES)
async def test_udp_received_and_rport_applied_exactly_when_due(
        make: Factory, via: str, received: str | None, rport: str | None) -> None:
    server, sink = await make()
    address = await server.listen_udp(LOCAL, 0)
    client = await RawUdp.open()
    try:
        p = str(client.port)
        sent_via = via.replace("{P}", p)
        client.send(request(via=sent_via, more_vias=("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bK-0",)), address)
        msg, _ = await sink.message()
        top = msg.via
        assert top.received == received
        assert top.param("rport") == (rport.replace("{P}", p) if rport else None)
        assert top.branch == "z9hG4bK-1" and top.sent_by == msg.vias[0].sent_by
        assert [v.host for v in msg.vias] == [top.host, "10.0.0.9"]  # the other Via line is kept
        if received is None and rport is None:
            assert msg.header("Via") == sent_via  # nothing to do: the message is passed on as it came
        if "rport" in via:  # the parameter keeps its place
            assert [n for n, _ in top.params].index("rport") == [n for n, _ in msg.vias[0].params].index("rport")
    finally:
        client.close()


async def test_udp_stamp_keeps_the_other_values_of_a_combined_via_line(make: Factory) -> None:
    server, sink = await make()
    address = await server.listen_udp(LOCAL, 0)
    client = await RawUdp.open()
    try:
        client.send(request(via="SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-a;rport, SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-b"),
                    address)
        msg, _ = await sink.message()
        assert [(v.host, v.received, v.rport) for v in msg.vias] == \
            [("192.0.2.1", LOCAL, client.port), ("10.0.0.1", None, None)]
        assert msg.vias[1].transport == "TCP"
        again = parse_message(msg.to_bytes())  # and it serializes to the same thing
        again.validate()
        assert again.vias == msg.vias
    finally:
        client.close()


async def test_udp_response_routing_follows_rport_received_and_sent_by(make: Factory) -> None:
    """§18.2.2 and RFC 3581 §4: rport -> the source port; else the sent-by port (5060 when absent)."""
    server, sink = await make()
    address = await server.listen_udp(LOCAL, 0)
    source, listener = await RawUdp.open(), await RawUdp.open()  # the client sends from one, listens on the other
    try:
        for via, to in [
            (f"SIP/2.0/UDP {LOCAL}:{listener.port};branch=z9hG4bK-r1", listener),  # sent-by port
            (f"SIP/2.0/UDP {LOCAL}:{listener.port};branch=z9hG4bK-r2;rport", source),  # rport: the source
            (f"SIP/2.0/UDP client.invalid:{listener.port};branch=z9hG4bK-r3", listener),  # received + sent-by port
        ]:
            source.send(request(via=via), address)
            msg, peer = await sink.request()
            assert peer.port == source.port
            response = make_response(msg, 200, to_tag="x")
            used = server.send_response(response, peer)
            assert used == Peer(UDP, LOCAL, to.port)
            assert server.send_response(response.to_bytes(), peer) == used  # bytes (an Outgoing) route alike
            compact = response.to_bytes().replace(b"\r\nVia: ", b"\r\nv: ")  # not our spelling: parsed whole
            assert server.send_response(compact, peer) == used
            answer = await to.recv()
            assert answer == await to.recv() == await to.recv()
            assert isinstance(answer, Response) and answer.via.branch == msg.via.branch
            assert await (listener if to is source else source).nothing(0.02)
    finally:
        source.close()
        listener.close()


async def test_udp_malformed_datagram_gets_400_and_others_go_on(make: Factory,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    server, sink = await make(TransportLimits(log_burst=3, log_interval=60.0))
    address = await server.listen_udp(LOCAL, 0)
    bad, good = await RawUdp.open(), await RawUdp.open()
    try:
        broken = request(extra=("Bad Header Line\x1b[31m",))  # a header line without a colon
        with caplog.at_level(logging.WARNING, logger="sipcore.transport"):
            for _ in range(20):  # a flood: each is answered, only the budget is logged
                bad.send(broken, address)
            good.send(request(via=f"SIP/2.0/UDP {LOCAL}:{good.port};branch=z9hG4bK-g"), address)
            msg, peer = await sink.message()
            assert peer.port == good.port and msg.via.branch == "z9hG4bK-g"
            answers = [await bad.recv() for _ in range(20)]
        assert all(isinstance(a, Response) and a.status == 400 and a.call_id == "call-1@test" for a in answers)
        lines = [r for r in caplog.records if r.getMessage() == "sip.bad_message"]
        assert len(lines) == 3  # the budget
        assert all("\x1b" not in str(r.__dict__["error"]) for r in lines)  # peer text escaped
        assert server.stats()["parse_errors"] == 20 and server.stats()["error_responses"] == 20
        bad.send(b"garbage that is no SIP at all\r\n\r\n", address)  # nothing to answer with: dropped
        bad.send(b"\r\n\r\n", address)  # a keep-alive: silently ignored
        bad.send(request(method="ACK", extra=("No colon here",)), address)  # a bad ACK is never answered
        assert await bad.nothing(0.1)
        assert server.stats()["keepalives"] == 1 and server.stats()["parse_errors"] == 22
        assert sink.messages.empty()
    finally:
        bad.close()
        good.close()


async def test_udp_oversized_datagram_gets_513(make: Factory) -> None:
    server, sink = await make(TransportLimits(message=MessageLimits(max_message_size=1000)))
    address = await server.listen_udp(LOCAL, 0)
    client = await RawUdp.open()
    try:
        client.send(request(method="MESSAGE", body=b"x" * 1500, extra=("Content-Type: text/plain",)), address)
        answer = await client.recv()
        assert isinstance(answer, Response) and answer.status == 513 and answer.cseq.method == "MESSAGE"
        assert sink.messages.empty()
    finally:
        client.close()


async def test_udp_send_failures_are_reported_not_raised(make: Factory) -> None:
    server, sink = await make()
    address = await server.listen_udp(LOCAL, 0)
    server.send(b"x" * 70_000, Peer(UDP, LOCAL, 5060))
    peer, exc = await sink.error()
    assert exc.failure is TransportFailure.TOO_LARGE and exc.status == 503 and peer.port == 5060
    server.send(b"OPTIONS", Peer(UDP, "sip.example.com", 5060))
    assert (await sink.error())[1].failure is TransportFailure.BAD_ADDRESS
    server.send(b"OPTIONS", Peer(UDP, "::1", 5060))  # no IPv6 UDP socket
    assert (await sink.error())[1].failure is TransportFailure.NO_LISTENER
    server.send(b"OPTIONS", Peer(UDP, LOCAL, 70000))  # asyncio would close the socket over this one
    assert (await sink.error())[1].failure is TransportFailure.BAD_ADDRESS
    with pytest.raises(ValueError):
        server.send(b"OPTIONS", Peer("sctp", LOCAL, 5060))
    with pytest.raises(ParseError):  # the caller's bug: not a response
        server.send_response(request(), Peer(UDP, LOCAL, 5060))
    client = await RawUdp.open()  # and the socket still works
    try:
        client.send(request(), address)
        assert (await sink.message())[1].port == client.port
        assert server.stats()["errors_reported"] == 4
    finally:
        client.close()


async def test_application_errors_do_not_reach_the_loop(make: Factory) -> None:
    got: list[str] = []

    def on_message(msg: Request | Response, peer: Peer) -> None:
        got.append(str(msg.cseq.number))
        if msg.cseq.number == 1:
            raise RuntimeError("a bug in the application")

    server, _ = await make(on_message=on_message)
    address = await server.listen_udp(LOCAL, 0)
    client = await RawUdp.open()
    try:
        client.send(request(cseq=1), address)
        client.send(request(cseq=2), address)
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.01)
        assert got == ["1", "2"] and server.stats()["callback_errors"] == 1
    finally:
        client.close()


# ---- IPv6 ----------------------------------------------------------------------------------------

def _ipv6_unavailable() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return str(exc)
    return None


async def test_ipv6_loopback(make: Factory) -> None:
    reason = _ipv6_unavailable()
    if reason is not None:
        pytest.skip(f"::1 cannot be bound on this machine: {reason}")
    server, sink = await make()
    udp = await server.listen_udp("::1", 0)
    tcp = await server.listen_tcp("::1", udp[1])  # UDP and TCP on the same port number
    assert udp == ("::1", tcp[1])
    client = await RawUdp.open("::1")
    try:
        client.send(request(via=f"SIP/2.0/UDP [::1]:{client.port};branch=z9hG4bK-6"), udp)
        msg, peer = await sink.request()
        assert peer.host == "::1" and msg.via.received is None  # [::1] is the source: nothing to add
        server.send_response(make_response(msg, 200, to_tag="t"), peer)
        assert (await client.recv()).status == 200  # type: ignore[union-attr]
        client.send(request(via="SIP/2.0/UDP [0:0::1]:5999;rport;branch=z9hG4bK-7"), udp)
        msg, peer = await sink.request()
        assert msg.via.received == "::1" and msg.via.rport == client.port
        server.send_response(make_response(msg, 200, to_tag="t"), peer)  # to rport: the client
        assert (await client.recv()).status == 200  # type: ignore[union-attr]
    finally:
        client.close()
    stream = await RawTcp.open(tcp)
    try:
        await stream.write(request(via="SIP/2.0/TCP [::1]:5999;branch=z9hG4bK-8"))
        msg, peer = await sink.request()
        assert peer.transport == TCP and peer.host == "::1" and peer.conn is not None
        server.send_response(make_response(msg, 200, to_tag="t"), peer)
        assert (await stream.recv()).status == 200  # type: ignore[union-attr]
    finally:
        stream.close()


# ---- the same round trips on uvloop --------------------------------------------------------------

async def _round_trips() -> dict[str, int]:
    async with transports() as make_:
        server, sink = await make_()
        udp = await server.listen_udp(LOCAL, 0)
        tcp = await server.listen_tcp(LOCAL, udp[1])
        client, client_sink = await make_()
        await client.listen_udp(LOCAL, 0)
        for peer in (Peer(UDP, *udp), Peer(TCP, *tcp)):
            for n in range(3):
                client.send(request(via=f"SIP/2.0/{peer.transport.upper()} {LOCAL}:1;rport;branch=z9hG4bK-{n}",
                                    cseq=n + 1), peer)
                msg, source = await sink.request()
                assert msg.via.rport == source.port
                server.send_response(make_response(msg, 200, to_tag="u"), source)
                answer, _ = await client_sink.message()
                assert isinstance(answer, Response) and answer.cseq.number == n + 1
        assert client.stats()["tcp_connected"] == 1
        return server.stats()


async def test_round_trips_on_the_test_loop() -> None:
    stats = await _round_trips()
    assert stats["udp_in"] == 3 and stats["tcp_in"] == 3


async def test_round_trips_on_uvloop() -> None:
    def run() -> dict[str, int]:
        async def guarded() -> dict[str, int]:
            loop = asyncio.get_running_loop()
            assert type(loop).__module__.startswith("uvloop")
            with loop_guard(loop):
                return await _round_trips()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(guarded())

    stats = await asyncio.to_thread(run)
    assert stats["udp_in"] == 3 and stats["tcp_in"] == 3 and stats["udp_out"] == 3


# ---- a real peer: sipp ------------------------------------------------------------------------------

def uas(transport: SipTransport, contact_port: int) -> Callable[[Request | Response, Peer], None]:
    """A minimal UAS without transactions: INVITE -> 100, 180, 200 (To tag, Contact); ACK absorbed;
    BYE -> 200."""

    def on_message(msg: Request | Response, peer: Peer) -> None:
        if not isinstance(msg, Request):
            return
        tag = f"uas{abs(hash(msg.call_id)) % 10**8}"
        if msg.method == "INVITE":
            contact = [("Contact", f"<sip:uas@{LOCAL}:{contact_port};transport={peer.transport}>")]
            transport.send_response(make_response(msg, 100), peer)
            transport.send_response(make_response(msg, 180, to_tag=tag, headers=contact), peer)
            transport.send_response(make_response(msg, 200, to_tag=tag, headers=contact), peer)
        elif msg.method in ("BYE", "OPTIONS"):
            transport.send_response(make_response(msg, 200, to_tag=tag), peer)

    return on_message


@pytest.mark.parametrize("mode", ["u1", "t1"])
async def test_sipp_uac_against_our_uas(mode: str, tmp_path: Path) -> None:
    if shutil.which("sipp") is None:
        pytest.fail("sipp is not installed: ./dev test installs the Debian package sip-tester")
    port = free_port(socket.SOCK_DGRAM if mode == "u1" else socket.SOCK_STREAM)
    sipp_port = free_port(socket.SOCK_DGRAM if mode == "u1" else socket.SOCK_STREAM)
    transport = SipTransport(lambda m, p: handler(m, p), lambda p, e: None)
    handler = uas(transport, port)
    try:
        if mode == "u1":
            await transport.listen_udp(LOCAL, port)
        else:
            await transport.listen_tcp(LOCAL, port)
        proc = await asyncio.create_subprocess_exec(
            shutil.which("sipp") or "sipp", "-sn", "uac", f"{LOCAL}:{port}", "-m", "5", "-r", "5", "-t", mode,
            "-i", LOCAL, "-p", str(sipp_port), "-nostdin", "-timeout", "20s", "-recv_timeout", "5000",
            "-trace_err", "-trace_stat", cwd=tmp_path, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = await asyncio.wait_for(proc.communicate(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        errors = "".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*_errors.log"))
        assert proc.returncode == 0, f"sipp exit {proc.returncode}: {err.decode(errors='replace')[-2000:]}{errors}"
        stats = transport.stats()
        key = "udp_in" if mode == "u1" else "tcp_in"
        assert stats[key] >= 15 and stats["parse_errors"] == 0  # 5 x INVITE, ACK, BYE
    finally:
        await transport.close()
