"""The asyncio transports of a SIP endpoint: UDP and TCP (RFC 3261 §18), in one object.

:class:`SipTransport` owns the sockets: listeners (``listen_udp``, ``listen_tcp``, any number,
IPv4 and IPv6) and the TCP connections, accepted or opened. It moves bytes and nothing more:

- **In.** A datagram is parsed (:func:`~sipcore.parser.parse_message`), a stream is framed
  (:class:`~sipcore.framing.StreamDecoder`); every message is validated (``validate()``) and
  handed to ``on_message(msg, peer)``. ``peer`` is a :class:`~sipcore.net.Peer`: transport,
  source address and, for TCP, the connection id (``conn``). A request's top Via first gets
  ``received`` and ``rport`` as RFC 3261 §18.2.1 and RFC 3581 §4 say
  (:func:`~sipcore.transport_common.stamp_via`; untouched, and not copied, in the common case).
- **Bad input.** A request that fails to parse or validate is answered with
  :func:`~sipcore.message.make_error_response` (400, 413, 414, 505, 513; nothing for ACK, for
  responses, or when no Via survived), sent to the *source* of the bytes (never to an address the
  bad message names: no reflection), counted, and logged within a :class:`LogBudget` (a flood
  cannot flood the log). A fatal stream error closes the connection after the answer is written.
  A response that fails validation is dropped (§18.1.2). A datagram of only CRLFs is a keep-alive
  and is dropped silently.
- **Out.** ``send(data, peer)`` for requests (and ACKs); ``send_response(response, peer)`` routes
  a response per §18.2.2; ``send_outgoing(out)`` picks one of the two for an
  :class:`~sipcore.net.Outgoing` of the transaction layer. They return the Peer used (for TCP
  with ``conn`` set, so the caller knows the connection) and never raise for network
  conditions: a failure is reported through ``on_error(peer, TransportError)``, always from a
  later loop callback (never from inside a send), so the transaction layer can fail the
  transaction (§17.1.4, §8.1.3.1: like a 503).
- **Errors from the application.** An exception raised by ``on_message`` or ``on_error`` is
  logged (``sip.callback_failed``) and does not reach the loop or close a socket.

UDP: one datagram per message, up to 65,507 bytes (IPv4) / 65,527 (IPv6); a larger send fails
with ``TOO_LARGE``. A message over 1300 bytes *should* go over TCP (§18.1.1), but that choice
changes the Via and belongs to the layer that builds the request: if the caller asks for UDP we
send over UDP. Datagrams go out of the first UDP listener of the destination's address family
(responses included); a send while the socket's buffer is full is dropped and counted
(``udp_dropped``): UDP is lossy, the transaction layer retransmits. Send errors the kernel reports
later (ICMP) carry no destination in asyncio: they are counted and logged, not reported.

TCP: outbound connections are reused by (host, port) as given (an IPv6 address should be in its
canonical form); accepted connections are indexed by their source address too. See
:mod:`sipcore.transport_tcp` for keep-alives, idle timeouts and slow consumers, and
:class:`TransportLimits` for every bound. ``on_error`` is called when a connect fails, when an
open connection is reset, and when a slow consumer is dropped; not when a peer closes cleanly or
we close an idle connection (nothing was lost).

Not here: TLS and WebSocket transports, SCTP, multicast (``maddr`` is ignored), DNS: hosts are
IP address literals only (RFC 3263 NAPTR/SRV/A lookups are not done; a name fails with
``BAD_ADDRESS``), STUN keep-alives on UDP, and sending our own CRLF pings.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Callable
from typing import Any

from sipcore.headers import Via, parse_via
from sipcore.message import Request, Response, make_error_response
from sipcore.net import TCP, UDP, Outgoing, Peer
from sipcore.parser import parse_message
from sipcore.syntax import MessageLimits, ParseError, split_commas
from sipcore.transport_common import (
    MAX_DATAGRAM_V4,
    MAX_DATAGRAM_V6,
    LogBudget,
    TransportError,
    TransportFailure,
    TransportLimits,
    clean,
    ip_family,
    response_target,
    stamp_via,
)
from sipcore.transport_tcp import TcpConnection

__all__ = ["OnError", "OnMessage", "SipTransport", "TransportError", "TransportFailure", "TransportLimits"]

log = logging.getLogger("sipcore.transport")

OnMessage = Callable[[Request | Response, Peer], None]
OnError = Callable[[Peer, TransportError], None]

_PEER_CACHE_SIZE = 4096  # UDP source addresses whose Peer object is kept (peers repeat)
_HOST_CACHE_SIZE = 4096  # destination hosts already checked to be IP literals


class _UdpEndpoint(asyncio.DatagramProtocol):
    """One UDP socket. The receive path is inlined here: it is the hot path."""

    def __init__(self, owner: SipTransport, family: int) -> None:
        self.owner = owner
        self.family = family
        self.max_datagram = MAX_DATAGRAM_V6 if family == socket.AF_INET6 else MAX_DATAGRAM_V4
        self.transport: asyncio.DatagramTransport | None = None
        self.paused = False
        self.local = ("?", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        name = transport.get_extra_info("sockname")
        self.local = (name[0], name[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        owner = self.owner
        owner.udp_in += 1
        peer = owner._peers.get(addr)
        if peer is None:
            peer = owner._udp_peer(addr)
        try:
            msg = parse_message(data, limits=owner._message_limits)
            msg.validate()
            if type(msg) is Request:
                via = msg.vias[0]  # parsed by validate(); msg.via would parse it again
                if via.host != peer.host or ("rport", None) in via.params:
                    msg = owner._stamp(msg, via, peer)
        except ParseError as exc:
            owner.reject(exc, peer, self, data)
            return
        except Exception as exc:  # noqa: BLE001 - a bug of ours loses this datagram, not the socket
            owner.failed("sip.internal_error", peer, exc)
            return
        try:
            owner.on_message(msg, peer)
        except Exception as exc:  # noqa: BLE001 - the application's bug must not close our socket
            owner.failed("sip.callback_failed", peer, exc)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors and failed sendto calls: asyncio does not say which destination
        self.owner.udp_send_errors += 1
        self.owner.warn("sip.udp.error", {"local": f"{self.local[0]}:{self.local[1]}", "error": clean(str(exc))})

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.warning("sip.udp.lost", extra={"local": f"{self.local[0]}:{self.local[1]}", "error": str(exc)})

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def reply(self, data: bytes, peer: Peer) -> None:
        if self.transport is not None and not self.paused and not self.transport.is_closing():
            self.transport.sendto(data, (peer.host, peer.port))
            self.owner.udp_out += 1


class SipTransport:
    """The UDP and TCP sockets of one SIP endpoint. Construct it inside the running loop.

    ``on_message(msg, peer)`` receives every valid message (requests with Via stamped);
    ``on_error(peer, exc)`` every transport failure (:class:`TransportError`, ``exc.failure``
    says which). Both are plain functions, called from loop callbacks; they must not block.
    """

    def __init__(self, on_message: OnMessage, on_error: OnError | None = None,
                 limits: TransportLimits | None = None) -> None:
        self.on_message = on_message
        self.on_error = on_error
        self.limits = limits or TransportLimits()
        self.loop = asyncio.get_running_loop()
        self.closing = False
        self._message_limits: MessageLimits = self.limits.message
        self._udp: list[_UdpEndpoint] = []
        self._servers: list[asyncio.Server] = []
        self._conns: dict[int, TcpConnection] = {}
        self._by_addr: dict[tuple[str, int], TcpConnection] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._peers: dict[Any, Peer] = {}
        self._udp_routes: dict[str, _UdpEndpoint | None] = {}
        self._budgets: dict[str, LogBudget] = {}
        self._drained: asyncio.Future[None] | None = None
        # counters (stats())
        self.udp_in = self.udp_out = self.tcp_in = self.tcp_out = 0
        self.parse_errors = self.error_responses = self.invalid_responses = self.keepalives = 0
        self.udp_dropped = self.udp_send_errors = self.callback_errors = self.internal_errors = 0
        self.tcp_accepted = self.tcp_connected = self.tcp_refused = self.connect_failures = 0
        self.slow_consumers = self.idle_closed = self.errors_reported = 0

    # ---- listeners -----------------------------------------------------------------------------
    async def listen_udp(self, host: str, port: int) -> tuple[str, int]:
        """Bind a UDP socket (``port`` 0: the OS picks one); returns the bound (host, port).
        ``host`` must be an IP address literal (``0.0.0.0`` and ``::`` for all). OSError if the
        address cannot be bound; an IPv6 socket is IPv6-only."""
        family = self._family(host)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):   # bursts and loop pauses (TransportLimits)
                sock.setsockopt(socket.SOL_SOCKET, option, self.limits.udp_buffer)
            sock.bind((host, port))
            sock.setblocking(False)
            _, endpoint = await self.loop.create_datagram_endpoint(lambda: _UdpEndpoint(self, family), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._udp.append(endpoint)
        self._udp_routes.clear()
        log.info("sip.udp.listen", extra={"local": f"{endpoint.local[0]}:{endpoint.local[1]}"})
        return endpoint.local

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Listen for TCP connections; like :meth:`listen_udp`."""
        self._family(host)
        server = await self.loop.create_server(lambda: TcpConnection(self, next(self._ids), None), host, port,
                                               backlog=self.limits.backlog, reuse_address=True)
        self._servers.append(server)
        name = server.sockets[0].getsockname()
        log.info("sip.tcp.listen", extra={"local": f"{name[0]}:{name[1]}"})
        return name[0], name[1]

    @staticmethod
    def _family(host: str) -> int:
        family = ip_family(host)
        if family is None:
            raise ValueError(f"listen address must be an IP address literal, not {host!r}")
        return family

    # ---- sending -------------------------------------------------------------------------------
    def send(self, data: bytes, peer: Peer) -> Peer:
        """Send a request (or ACK) to ``peer``; returns the Peer it went to.

        UDP: one ``sendto`` now. TCP: on ``peer.conn`` if that connection is still open, else on
        the open connection to (host, port), else on a new one (the bytes wait for the connect).
        Failures go to ``on_error``, later. ValueError only for a transport we do not have."""
        transport = peer.transport
        if transport == UDP:
            self._send_udp(data, peer)
            return peer
        if transport == TCP:
            return self._send_tcp(data, peer.host, peer.port, peer.conn)
        raise ValueError(f"unsupported transport {transport!r}")

    def send_outgoing(self, out: Outgoing) -> Peer:
        """Send what a sans-IO layer produced (:class:`~sipcore.net.Outgoing`): a response (the
        bytes start with ``SIP/``) through :meth:`send_response`, anything else through :meth:`send`."""
        if out.data[:4] == b"SIP/":
            return self.send_response(out.data, out.peer)
        return self.send(out.data, out.peer)

    def send_response(self, response: Response | bytes, peer: Peer) -> Peer:
        """Send a response to the request that came from ``peer`` (RFC 3261 §18.2.2).

        TCP: back on ``peer.conn`` while it is open, else on a connection to the top Via's
        ``received`` (or sent-by host) at the sent-by port (default 5060). UDP: to ``received``
        (or the sent-by host) at ``rport`` when filled in, else the sent-by port (5060).
        ``maddr`` is ignored (no multicast). Encoded bytes are accepted too (what the transaction
        layer's ``Outgoing`` holds); they are parsed only when the Via is needed (UDP, or a TCP
        connection that is gone). Returns the Peer used. Raises ParseError if there is no valid
        top Via (a bug of the caller: the Via of a validated request is copied)."""
        message: Response | None
        if isinstance(response, Response):
            message, data = response, response.to_bytes()
        else:
            message, data = None, bytes(response)
        if peer.transport == TCP:
            conn = self._conns.get(peer.conn) if peer.conn is not None else None
            if conn is not None and conn.usable:
                conn.write(data)
                self.tcp_out += 1
                return conn.peer
            try:
                host, port = response_target(self._response_via(message, data), True)
            except TransportError as exc:
                self.report(peer, exc)
                return peer
            return self._send_tcp(data, host, port, None)
        if peer.transport != UDP:
            raise ValueError(f"unsupported transport {peer.transport!r}")
        try:
            host, port = response_target(self._response_via(message, data), False)
        except TransportError as exc:
            self.report(peer, exc)
            return peer
        if host != peer.host or port != peer.port:
            peer = Peer(UDP, host, port)
        self._send_udp(data, peer)
        return peer

    @staticmethod
    def _response_via(response: Response | None, data: bytes) -> Via:
        """The top Via of a response (a memo hit: the request's Via was parsed, or stamped, on the
        way in). From bytes our serializer wrote, only the first ``Via:`` line is read."""
        if response is not None:
            return response.via
        if data[:4] != b"SIP/":
            raise ParseError("send_response needs a response, not a request")
        start = data.find(b"\r\nVia: ")
        if 0 < start < data.find(b"\r\n\r\n"):
            line = data[start + 7:data.find(b"\r\n", start + 7)].decode("utf-8", "surrogateescape")
            return parse_via(split_commas(line)[0] if "," in line else line)
        return parse_message(data).via  # another spelling (``v:``): parse it all

    def _send_udp(self, data: bytes, peer: Peer) -> None:
        if self.closing:
            self.report(peer, TransportError(TransportFailure.CLOSED, "the SIP transport is closed"))
            return
        host, port = peer.host, peer.port
        if not 0 < port < 65536:  # asyncio would close the socket over the OverflowError
            self.report(peer, TransportError(TransportFailure.BAD_ADDRESS, f"bad port in {peer}"))
            return
        try:
            endpoint = self._udp_routes[host]
        except KeyError:
            endpoint = self._udp_route(host)
        if endpoint is None:
            family = ip_family(host)
            if family is None:
                self.report(peer, TransportError(TransportFailure.BAD_ADDRESS,
                                                 f"{clean(host)!r} is not an IP address; names are not resolved"))
            else:
                self.report(peer, TransportError(TransportFailure.NO_LISTENER,
                                                 f"no UDP socket for {peer}: listen_udp on its address family first"))
            return
        if len(data) > endpoint.max_datagram:
            self.report(peer, TransportError(TransportFailure.TOO_LARGE,
                                             f"{len(data)} bytes do not fit a UDP datagram; use TCP"))
            return
        transport = endpoint.transport
        if endpoint.paused or transport is None or transport.is_closing():
            self.udp_dropped += 1
            return
        transport.sendto(data, (host, port))
        self.udp_out += 1

    def _udp_route(self, host: str) -> _UdpEndpoint | None:
        """The UDP socket that sends to ``host`` (None: a name, or no socket of its family)."""
        family = ip_family(host)
        endpoint = next((e for e in self._udp if e.family == family), None) if family else None
        if endpoint is not None:  # only addresses are remembered: names stay cheap to refuse
            if len(self._udp_routes) >= _HOST_CACHE_SIZE:
                self._udp_routes.clear()
            self._udp_routes[host] = endpoint
        return endpoint

    def _send_tcp(self, data: bytes, host: str, port: int, conn_id: int | None) -> Peer:
        conn = self._conns.get(conn_id) if conn_id is not None else None
        if conn is None or not conn.usable:
            conn = self._by_addr.get((host, port))
            if conn is None or not conn.usable:
                conn = self._connect(host, port)
                if conn is None:
                    return Peer(TCP, host, port)
        conn.write(data)
        self.tcp_out += 1
        return conn.peer

    def _connect(self, host: str, port: int) -> TcpConnection | None:
        peer = Peer(TCP, host, port)
        if self.closing:
            self.report(peer, TransportError(TransportFailure.CLOSED, "the SIP transport is closed"))
            return None
        if ip_family(host) is None or not 0 < port < 65536:
            self.report(peer, TransportError(TransportFailure.BAD_ADDRESS,
                                             f"{clean(host)!r}:{port} is not an IP address and port; "
                                             "names are not resolved"))
            return None
        if len(self._conns) >= self.limits.max_connections:
            self.report(peer, TransportError(TransportFailure.TOO_MANY_CONNECTIONS,
                                             f"{len(self._conns)} TCP connections open: no new one to {peer}"))
            return None
        conn_id = next(self._ids)
        conn = TcpConnection(self, conn_id, Peer(TCP, host, port, conn_id))
        self._conns[conn_id] = conn
        self._by_addr[(host, port)] = conn
        task = self.loop.create_task(self._open(conn))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)
        return conn

    async def _open(self, conn: TcpConnection) -> None:
        peer = conn.peer
        try:
            async with asyncio.timeout(self.limits.connect_timeout):
                await self.loop.create_connection(lambda: conn, peer.host, peer.port)
        except asyncio.CancelledError:  # close() gave up on it
            conn.connect_failed()
            self.forget(conn)
            raise
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, timed out: all a failed connect
            conn.connect_failed()
            self.forget(conn)
            self.connect_failures += 1
            reason = "timed out" if isinstance(exc, TimeoutError) else clean(f"{type(exc).__name__}: {exc}")
            self.warn("sip.tcp.connect_failed", {"conn": conn.id, "peer": str(peer), "error": reason})
            self.report(peer, TransportError(TransportFailure.CONNECT_FAILED, f"connect to {peer} failed: {reason}"))
            return
        self.tcp_connected += 1

    # ---- called by the endpoints and connections -----------------------------------------------
    def admit(self, conn: TcpConnection) -> bool:
        """An accepted connection: register it, or refuse it (max_connections, or closing)."""
        if self.closing or len(self._conns) >= self.limits.max_connections:
            self.tcp_refused += 1
            self.warn("sip.tcp.refused", {"conn": conn.id, "peer": str(conn.peer), "open": len(self._conns)})
            return False
        self.tcp_accepted += 1
        self._conns[conn.id] = conn
        self._by_addr[conn.peer.address] = conn
        return True

    def forget(self, conn: TcpConnection) -> None:
        if self._conns.pop(conn.id, None) is None:
            return
        if self._by_addr.get(conn.peer.address) is conn:
            del self._by_addr[conn.peer.address]
        if not self._conns and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _udp_peer(self, addr: Any) -> Peer:
        peer = Peer(UDP, addr[0], addr[1])
        if len(self._peers) >= _PEER_CACHE_SIZE:
            self._peers.clear()
        self._peers[addr] = peer
        return peer

    def _stamp(self, msg: Request, via: Via, peer: Peer) -> Request:
        try:
            return stamp_via(msg, via, peer.host, peer.port)
        except ParseError as exc:  # cannot happen with a validated Via and an IP source; keep going
            self.warn("sip.via_stamp_failed", {"peer": str(peer), "error": clean(str(exc))})
            return msg

    def deliver(self, msg: Request | Response, peer: Peer, conn: TcpConnection) -> None:
        """A framed message from a TCP connection: validate, stamp, hand up."""
        self.tcp_in += 1
        try:
            msg.validate()
        except ParseError as exc:
            self.reject(exc, peer, conn, None)
            return
        if type(msg) is Request:
            via = msg.vias[0]
            if via.host != peer.host or ("rport", None) in via.params:
                msg = self._stamp(msg, via, peer)
        try:
            self.on_message(msg, peer)
        except Exception as exc:  # noqa: BLE001 - the application's bug must not end the connection
            self.failed("sip.callback_failed", peer, exc)

    def reject(self, exc: ParseError, peer: Peer, source: _UdpEndpoint | TcpConnection,
               data: bytes | None) -> None:
        """Bytes that are not a valid message: answer the source if an answer is due, count, log."""
        if data is not None and not data.strip(b"\r\n"):
            self.keepalives += 1  # a CRLF keep-alive datagram
            return
        if exc.is_response:
            self.invalid_responses += 1  # §18.1.2: dropped
        else:
            self.parse_errors += 1
        if exc.status == 513 and exc.headers is None and data is not None:
            exc = self._oversized(exc, data)
        try:
            answer = make_error_response(exc)
        except ParseError:
            answer = None
        extra: dict[str, object] = {"peer": str(peer), "status": exc.status, "error": clean(str(exc)),
                                    "answered": answer is not None}
        if peer.conn is not None:
            extra["conn"] = peer.conn
            extra["fatal"] = exc.fatal
        self.warn("sip.bad_message", extra)
        if answer is None:
            return
        self.error_responses += 1
        if isinstance(source, TcpConnection):
            if source.usable:
                source.write(answer.to_bytes())
                self.tcp_out += 1
        else:
            source.reply(answer.to_bytes(), peer)

    def _oversized(self, exc: ParseError, data: bytes) -> ParseError:
        """A datagram over max_message_size was refused before its headers were read: read them
        now (bounded by the datagram size) so that the 513 can be answered."""
        limits = self._message_limits
        try:
            msg = parse_message(data, limits=MessageLimits(len(data), limits.max_headers, limits.max_line_length))
        except ParseError:
            return exc
        exc.headers = msg.headers
        if type(msg) is Request:
            exc.method = msg.method
        else:
            exc.is_response = True
        return exc

    def report(self, peer: Peer, exc: TransportError) -> None:
        """Tell the application of a failure, from a later loop callback (never re-entrantly)."""
        self.errors_reported += 1
        if self.on_error is not None and not self.closing:
            self.loop.call_soon(self._call_on_error, peer, exc)

    def _call_on_error(self, peer: Peer, exc: TransportError) -> None:
        if self.on_error is None or self.closing:
            return
        try:
            self.on_error(peer, exc)
        except Exception as error:  # noqa: BLE001 - the application's bug must not reach the loop
            self.failed("sip.callback_failed", peer, error)

    def failed(self, event: str, peer: Peer, exc: Exception) -> None:
        """An exception from the application's callback (``sip.callback_failed``) or a bug of ours
        (``sip.internal_error``): logged with its traceback within the budget, never re-raised."""
        if event == "sip.internal_error":
            self.internal_errors += 1
        else:
            self.callback_errors += 1
        dropped = self._budget(event).take(self.loop.time())
        if dropped is not None:
            log.error(event, exc_info=exc, extra={"peer": str(peer), "conn": peer.conn, "suppressed": dropped})

    def warn(self, event: str, extra: dict[str, object]) -> None:
        """A warning caused by a peer, within the log budget of its kind."""
        dropped = self._budget(event).take(self.loop.time())
        if dropped is not None:
            extra["suppressed"] = dropped
            log.warning(event, extra=extra)

    def _budget(self, event: str) -> LogBudget:
        budget = self._budgets.get(event)
        if budget is None:
            budget = self._budgets[event] = LogBudget(self.limits.log_burst, self.limits.log_interval)
        return budget

    # ---- introspection and shutdown ------------------------------------------------------------
    @property
    def udp_addresses(self) -> list[tuple[str, int]]:
        return [e.local for e in self._udp]

    @property
    def tcp_addresses(self) -> list[tuple[str, int]]:
        return [(s.getsockname()[0], s.getsockname()[1]) for srv in self._servers for s in srv.sockets]

    def connection(self, conn_id: int) -> Peer | None:
        """The Peer of an open TCP connection, None if it is closed (or never was)."""
        conn = self._conns.get(conn_id)
        return conn.peer if conn is not None and conn.usable else None

    def stats(self) -> dict[str, int]:
        """Counters since start, for metrics (all monotonic except ``tcp_open``)."""
        return {
            "udp_in": self.udp_in, "udp_out": self.udp_out, "udp_dropped": self.udp_dropped,
            "udp_send_errors": self.udp_send_errors, "tcp_in": self.tcp_in, "tcp_out": self.tcp_out,
            "tcp_open": len(self._conns), "tcp_accepted": self.tcp_accepted, "tcp_connected": self.tcp_connected,
            "tcp_refused": self.tcp_refused, "tcp_connect_failures": self.connect_failures,
            "tcp_slow_consumers": self.slow_consumers, "tcp_idle_closed": self.idle_closed,
            "parse_errors": self.parse_errors, "error_responses": self.error_responses,
            "invalid_responses": self.invalid_responses, "keepalives": self.keepalives,
            "errors_reported": self.errors_reported, "callback_errors": self.callback_errors,
            "internal_errors": self.internal_errors,
        }

    async def close(self) -> None:
        """Stop listening, close every socket. TCP bytes still queued get ``close_grace`` seconds
        to flush (connections still connecting too); then whatever is left is aborted. No
        ``on_error`` is called once closing has begun. Idempotent."""
        if self.closing:
            return
        self.closing = True
        for server in self._servers:
            server.close()
        for endpoint in self._udp:
            if endpoint.transport is not None:
                endpoint.transport.close()
        self._udp_routes.clear()
        for conn in tuple(self._conns.values()):
            if conn.transport is not None:
                conn.close("transport closing")
        if self._conns:
            self._drained = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), self.limits.close_grace)
            except TimeoutError:
                pass
        for task in tuple(self._connecting):
            task.cancel()
        for conn in tuple(self._conns.values()):
            conn.abort("transport closed")
        if self._connecting:
            await asyncio.gather(*self._connecting, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        await asyncio.sleep(0)  # let the aborted connections' connection_lost run
        self._conns.clear()
        self._by_addr.clear()

    async def __aenter__(self) -> SipTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
