"""What the SIP transports share (no I/O here): limits, errors, the received/rport rule of RFC 3261
§18.2.1 and RFC 3581 §4, the response routing of §18.2.2, address checks and a log budget.

Everything here is pure: the asyncio side (:mod:`sipcore.transport`, :mod:`sipcore.transport_tcp`)
calls it with the source address of a message, or the clock reading, and acts on the answer.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass
from enum import StrEnum

from sipcore.errors import SipError
from sipcore.headers import Via
from sipcore.message import Request
from sipcore.syntax import DEFAULT_LIMITS, MessageLimits

__all__ = [
    "DEFAULT_PORT", "MAX_DATAGRAM_V4", "MAX_DATAGRAM_V6", "LogBudget", "TransportError", "TransportFailure",
    "TransportLimits", "clean", "ip_family", "response_target", "stamp_via",
]

DEFAULT_PORT = 5060
"""The port of a sent-by without one, for UDP and TCP (RFC 3261 §18.2.2, §19.1.2)."""
MAX_DATAGRAM_V4 = 65_507  # 65,535 - 20 (IP header) - 8 (UDP header)
MAX_DATAGRAM_V6 = 65_527  # 65,535 - 8: the IPv6 payload length excludes its own 40-byte header


class TransportFailure(StrEnum):
    """Why a message could not be sent, or a connection ended badly (``TransportError.failure``)."""

    CONNECT_FAILED = "connect_failed"        # refused, unreachable, or connect_timeout elapsed
    CONNECTION_LOST = "connection_lost"      # reset or I/O error on an open connection
    SLOW_CONSUMER = "slow_consumer"          # the peer stopped reading: max_send_buffer exceeded
    TOO_MANY_CONNECTIONS = "too_many_connections"  # max_connections reached: no new outbound one
    TOO_LARGE = "too_large"                  # larger than a UDP datagram can be
    NO_LISTENER = "no_listener"              # UDP to an address family we have no socket for
    BAD_ADDRESS = "bad_address"              # a host name (never resolved: no DNS/SRV here), or a bad port
    CLOSED = "closed"                        # the transport is closing or closed


class TransportError(SipError):
    """A transport failure. RFC 3261 §8.1.3.1: the UAC treats it like a 503 response; a client
    transaction told of one moves to Terminated (§17.1.4)."""

    status = 503
    reason = "Service Unavailable"

    def __init__(self, failure: TransportFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Bounds on what a peer can make one :class:`~sipcore.transport.SipTransport` hold or do
    (STYLE habit 7). Every field is checked when the object is built (ValueError names it).

    - ``message``: the parser's bounds (message size, header count, line length). A larger
      message gets 513 and, on TCP, the connection is closed (framing cannot resume).
    - ``max_connections``: TCP connections open or being opened, inbound and outbound together.
      Beyond it an accepted connection is closed at once and a send that needs a new connection
      fails with ``TOO_MANY_CONNECTIONS``.
    - ``max_send_buffer``: bytes queued for one TCP connection (before it connects, or in its
      write buffer; the kernel's socket buffer comes on top). Beyond it the connection is dropped
      as a slow consumer. It must hold the largest message we send; a healthy peer keeps it
      near zero.
    - ``idle_timeout``: seconds without a byte in either direction after which a TCP connection
      is closed. Not while our bytes are still queued for it: then it gets one more period, and
      if the queue is still there it is dropped as stalled.
    - ``connect_timeout``: seconds an outbound TCP connect may take.
    - ``close_grace``: seconds :meth:`close` waits for queued TCP bytes to flush.
    - ``log_burst`` / ``log_interval``: at most this many warning lines per kind of peer-caused
      event (bad message, refused connection, slow consumer, ...) per interval; the rest are
      counted and the count is attached to the next line (``suppressed``).
    - ``backlog``: the TCP listen backlog.
    - ``udp_buffer``: bytes asked for the UDP sockets' receive and send buffers (SO_RCVBUF /
      SO_SNDBUF; the kernel caps them at ``net.core.rmem_max`` / ``wmem_max``). The default of the
      kernel (~208 KiB) holds ~35 ms of traffic at 1,000 calls/s: a pause of the loop longer than
      that drops datagrams and costs the peers a 500 ms retransmission.

    Worst case memory held for peers: ``max_connections`` x (``message.max_message_size`` of a
    partial message being received + ``max_send_buffer``): about 3.2 GB with the defaults, if
    10,000 hostile peers each trickle in a 64 KiB message and never read our answers. Lower
    ``max_connections`` where that matters. UDP holds no per-peer state (beyond a bounded
    cache of 4,096 source addresses).
    """

    message: MessageLimits = DEFAULT_LIMITS
    max_connections: int = 10_000
    max_send_buffer: int = 262_144
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0
    close_grace: float = 2.0
    log_burst: int = 10
    log_interval: float = 10.0
    backlog: int = 1024
    udp_buffer: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if not isinstance(self.message, MessageLimits):
            raise ValueError(f"TransportLimits.message must be a MessageLimits, not {self.message!r}")
        for name in ("max_connections", "max_send_buffer", "log_burst", "backlog", "udp_buffer"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"TransportLimits.{name} must be a positive int, not {value!r}")
        for name in ("idle_timeout", "connect_timeout", "close_grace", "log_interval"):
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"TransportLimits.{name} must be a positive number of seconds, not {value!r}")


class LogBudget:
    """At most ``burst`` log lines per ``interval`` seconds (a fixed window); the rest are counted.

    ``take(now)`` returns None when the line must be dropped, else how many were dropped since the
    last line that was written (to log with it). Time is passed in."""

    __slots__ = ("burst", "interval", "_window_end", "_used", "_dropped")

    def __init__(self, burst: int, interval: float) -> None:
        self.burst = burst
        self.interval = interval
        self._window_end = -math.inf
        self._used = 0
        self._dropped = 0

    def take(self, now: float) -> int | None:
        if now >= self._window_end:
            self._window_end = now + self.interval
            self._used = 0
        if self._used >= self.burst:
            self._dropped += 1
            return None
        self._used += 1
        dropped, self._dropped = self._dropped, 0
        return dropped


def clean(text: str, limit: int = 160) -> str:
    """Peer text made safe for a log field: cut to ``limit`` characters, control and other
    non-printable characters escaped (no forged log lines)."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return text.encode("unicode_escape", "backslashreplace").decode("ascii")


def ip_family(host: str) -> int | None:
    """``AF_INET`` / ``AF_INET6`` for an IP address literal (an IPv6 zone ``%eth0`` is allowed,
    brackets are not), None for anything else: a name, which we do not resolve."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        return socket.AF_INET6
    except OSError:
        return None


def _same_address(sent_by: str, source: str) -> bool:
    """Whether the Via sent-by host (brackets removed) is the source IP address (§18.2.1)."""
    if sent_by == source:
        return True
    if ":" in sent_by and ":" in source:  # two spellings of one IPv6 address?
        try:
            return socket.inet_pton(socket.AF_INET6, sent_by) == \
                socket.inet_pton(socket.AF_INET6, source.partition("%")[0])
        except OSError:
            return False
    return False


_RPORT_BARE = ("rport", None)


def stamp_via(msg: Request, via: Via, host: str, port: int) -> Request:
    """The request as the transport hands it up: RFC 3261 §18.2.1 and RFC 3581 §4 applied to its
    top Via ``via`` (``msg.vias[0]`` of a validated message), for a request from ``host:port``.

    - ``received=<source IP>`` is added when the sent-by host is a name or another address.
    - A bare ``rport`` gets the source port, and then ``received`` is added even when it equals
      the sent-by host (RFC 3581 §4 requires it).

    Returns ``msg`` itself when nothing changes (the common case costs two comparisons), else a
    copy whose top Via value is re-rendered (other values on the same line, and other Via lines,
    are kept as they were). A stale ``received`` is overwritten; an ``rport`` that already has a
    value is left alone.
    """
    params = via.params
    rport = _RPORT_BARE in params
    if not rport:
        if via.host == host:
            return msg
        if _same_address(via.address, host) or via.received == host.partition("%")[0]:
            return msg
    received = host.partition("%")[0]  # a zone is local to this machine: not for the wire
    out = []
    placed = False
    for name, value in params:
        if name == "rport" and value is None:
            value = str(port)
        elif name == "received":
            if placed:
                continue
            value, placed = received, True
        out.append((name, value))
    if not placed:
        out.append(("received", received))
    new_via = Via(via.transport, via.host, via.port, tuple(out), via.protocol)
    return msg.with_top_via(new_via)


def response_target(via: Via, reliable: bool) -> tuple[str, int]:
    """Where a response goes when it cannot use the request's connection (RFC 3261 §18.2.2).

    The host is the top Via's ``received`` (or its sent-by host; the receive side added
    ``received`` whenever the two differ). On UDP the port is ``rport`` when filled in (RFC 3581
    §4: the request's source port), else the sent-by port, else 5060. On TCP it is the sent-by
    port (else 5060): a TCP source port is ephemeral, nothing listens on it.

    ``maddr`` is ignored: we do not send to multicast groups, and §18.2.2 only uses it for them.
    ``via`` is the response's top Via. TransportError(BAD_ADDRESS) if the result is a name
    (we never resolve names, RFC 3263 §5 is not implemented).
    """
    host = via.received or via.address
    port = None if reliable else via.rport
    if port is None:
        port = via.port or DEFAULT_PORT
    if ip_family(host) is None:
        raise TransportError(TransportFailure.BAD_ADDRESS,
                             f"response Via names {clean(host)!r}, not an IP address; names are not resolved")
    return host, port
