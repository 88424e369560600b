"""One SIP connection over TCP (RFC 3261 §18.3): the asyncio protocol under
:class:`sipcore.transport.SipTransport`.

It only moves bytes: :class:`~sipcore.framing.StreamDecoder` frames them, the owner validates and
hands messages up. What a connection does on its own:

- answers a CRLFCRLF keep-alive ping with a CRLF pong (RFC 5626 §3.5.1; pongs are dropped by
  the decoder);
- queues what is sent before an outbound connect completes, and writes it once connected;
- is dropped as a *slow consumer* when more than ``max_send_buffer`` bytes wait for it (queued
  before the connect, or in the transport's write buffer): the peer stopped reading;
- closes itself after ``idle_timeout`` seconds without a byte in either direction. While our
  bytes still sit in its write buffer it gets one more period; if they are still there then, it
  is dropped as stalled. One timer per connection, re-armed lazily: traffic only stores the time.
- after a fatal framing error, the owner writes the answer and closes it (the write is flushed
  first: ``close`` is not ``abort``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sipcore.framing import PING, PONG, StreamDecoder
from sipcore.message import Request, Response
from sipcore.net import TCP, Peer
from sipcore.syntax import ParseError
from sipcore.transport_common import TransportError, TransportFailure

if TYPE_CHECKING:
    from sipcore.transport import SipTransport

log = logging.getLogger("sipcore.transport")

__all__ = ["TcpConnection"]


class TcpConnection(asyncio.Protocol):
    """One TCP connection, inbound (accepted) or outbound (opened by a send)."""

    def __init__(self, owner: SipTransport, conn_id: int, peer: Peer | None) -> None:
        self.owner = owner
        self.id = conn_id
        self.outbound = peer is not None
        self.peer: Peer = peer or Peer(TCP, "?", 0, conn_id)  # inbound: set in connection_made
        self.transport: asyncio.Transport | None = None
        self.decoder = StreamDecoder(owner.limits.message)
        self.pending: list[bytes] = []  # written before the connect completed
        self.pending_size = 0
        self.closing = False  # no more writes: closed by us, by the peer, or failed
        self.refused = False  # an accepted connection over max_connections: never registered
        self.reason = ""  # why we closed it (for the close log line)
        self.last_active = owner.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._stalled = False

    # ---- asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        self.transport = t
        owner = self.owner
        if not self.outbound:
            name = transport.get_extra_info("peername")
            host, port = (name[0], name[1]) if isinstance(name, tuple) else ("?", 0)
            self.peer = Peer(TCP, host, port, self.id)
            if not owner.admit(self):
                self.refused = self.closing = True
                t.abort()
                return
        elif self.closing:  # dropped while connecting (its queue overflowed)
            t.abort()
            return
        log.debug("sip.tcp.open", extra={"conn": self.id, "peer": str(self.peer),
                                         "direction": "out" if self.outbound else "in"})
        self._arm(owner.limits.idle_timeout)
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self.pending_size = 0
            self._write(data)
        if owner.closing and not self.closing:
            self.close("transport closing")  # connected during close(): flush what was queued, then go

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        self.last_active = owner.loop.time()
        try:
            for event in self.decoder.feed(data):
                if type(event) is Request or type(event) is Response:
                    owner.deliver(event, self.peer, self)
                elif event is PING:
                    self._write(PONG)
                elif isinstance(event, ParseError):
                    owner.tcp_in += 1
                    owner.reject(event, self.peer, self, None)
                if self.closing:  # a write overflowed
                    return
        except Exception as exc:  # noqa: BLE001 - a bug of ours ends this connection, not the others
            owner.failed("sip.internal_error", self.peer, exc)
            self.abort("internal error")
            return
        if self.decoder.closed:
            self.close("framing error")

    def eof_received(self) -> bool | None:
        return None  # the peer is done sending: close our side too (what we queued is flushed first)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        was_closing, self.closing = self.closing, True
        if self.refused:
            return
        self.owner.forget(self)
        if exc is not None and not was_closing:
            self.owner.report(self.peer, TransportError(
                TransportFailure.CONNECTION_LOST, f"connection {self.id} to {self.peer} lost: {exc}"))
        log.debug("sip.tcp.close", extra={"conn": self.id, "peer": str(self.peer),
                                          "reason": self.reason or ("error" if exc else "peer closed")})

    def pause_writing(self) -> None:  # flow control is max_send_buffer, checked on every write
        pass

    def resume_writing(self) -> None:
        pass

    # ---- sending -------------------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        """Open (or connecting) and not closing: a send may use it."""
        t = self.transport
        return not self.closing and (t is None or not t.is_closing())

    def write(self, data: bytes) -> None:
        """Send ``data`` (queued until connected); the caller checked :attr:`usable`."""
        if self.transport is None:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > self.owner.limits.max_send_buffer:
                self.drop_slow(self.pending_size)
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        t.write(data)
        self.last_active = self.owner.loop.time()
        size = t.get_write_buffer_size()
        if size > self.owner.limits.max_send_buffer:
            self.drop_slow(size)

    def drop_slow(self, buffered: int) -> None:
        """The peer does not read (or cannot be reached fast enough): drop it, tell the owner."""
        self.owner.warn("sip.tcp.slow_consumer", {"conn": self.id, "peer": str(self.peer), "buffered": buffered})
        self.owner.slow_consumers += 1
        self.owner.report(self.peer, TransportError(
            TransportFailure.SLOW_CONSUMER, f"connection {self.id} to {self.peer}: {buffered} bytes not taken"))
        self.abort("slow consumer")

    # ---- ending --------------------------------------------------------------------------------
    def close(self, reason: str) -> None:
        """Close after what is queued is written."""
        if self.closing:
            return
        self.closing = True
        self.reason = reason
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str) -> None:
        """Close now, dropping what is queued."""
        self.closing = True
        self.reason = self.reason or reason
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()

    def connect_failed(self) -> None:
        """The outbound connect failed or was cancelled (the owner reports it)."""
        self.closing = True
        self.pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- idle timeout --------------------------------------------------------------------------
    def _arm(self, delay: float) -> None:
        self._timer = self.owner.loop.call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        self._timer = None
        if self.closing or self.transport is None:
            return
        idle = self.owner.limits.idle_timeout
        now = self.owner.loop.time()
        due = self.last_active + idle
        if now < due:
            self._stalled = False
            self._arm(due - now)
            return
        buffered = self.transport.get_write_buffer_size()
        if buffered and not self._stalled:  # our bytes are pending: one more period
            self._stalled = True
            self._arm(idle)
            return
        self.owner.idle_closed += 1
        log.info("sip.tcp.idle", extra={"conn": self.id, "peer": str(self.peer), "buffered": buffered})
        if buffered:
            self.abort("stalled")
        else:
            self.close("idle")
