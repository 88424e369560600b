"""The asyncio adapter of one SIP endpoint: transports + transaction layer + dialogs + one timer.

The sans-IO layers decide; this moves bytes and time, nothing else (the aioquic pattern):

* a message from :class:`~sipcore.transport.SipTransport` goes to
  :meth:`TransactionLayer.receive` with ``now`` = the loop's monotonic clock; the events go to the
  transaction user's ``on_event(event, now)``; whatever the layers queued is sent; the one timer is
  re-armed at :meth:`TransactionLayer.next_deadline`;
* a transport error becomes :meth:`TransactionLayer.transport_error` for the peer;
* the TU calls the layers itself (``endpoint.layer.request(...)``, ``endpoint.dialogs.respond(...)``)
  and then :meth:`SipEndpoint.flush`, which sends and re-arms.

Events the TU raises on are logged and swallowed: one bad call must not stop the endpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sipcore.dialog import Dialogs
from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.transaction import Event, TransactionLayer
from sipcore.transport import SipTransport, TransportError, TransportLimits

log = logging.getLogger("sipcore.endpoint")

EventHandler = Callable[[Event | object, float], None]


class SipEndpoint:
    def __init__(self, on_event: EventHandler, *, limits: TransportLimits | None = None,
                 layer: TransactionLayer | None = None, max_dialogs: int = 100_000) -> None:
        self.loop = asyncio.get_running_loop()
        self.on_event = on_event
        self.layer = layer or TransactionLayer()
        self.dialogs = Dialogs(self.layer, max_dialogs=max_dialogs)
        self.transport = SipTransport(self._on_message, self._on_error, limits)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.errors = 0

    def now(self) -> float:
        return self.loop.time()

    async def listen(self, host: str, port: int, *, udp: bool = True, tcp: bool = True) -> int:
        """Listen on UDP and/or TCP at the same port (0: the UDP listener picks it); returns it."""
        if udp:
            port = (await self.transport.listen_udp(host, port))[1]
        if tcp:
            port = (await self.transport.listen_tcp(host, port))[1]
        return port

    # ---- inbound --------------------------------------------------------------------------------
    def _on_message(self, msg: Request | Response, peer: Peer) -> None:
        now = self.loop.time()
        self._deliver(self.layer.receive(msg, peer, now), now)

    def _on_error(self, peer: Peer, exc: TransportError) -> None:
        now = self.loop.time()
        log.info("sip.transport_error", extra={"peer": str(peer), "failure": exc.failure.name})
        self._deliver(self.layer.transport_error(peer, now), now)

    def _fire(self) -> None:
        self._timer = self._timer_at = None
        now = self.loop.time()
        self._deliver(self.layer.on_timer(now), now)

    def _deliver(self, events: list, now: float) -> None:
        for ev in events:
            try:
                self.on_event(ev, now)
            except Exception:  # noqa: BLE001 - a failing call must not stop the endpoint; logged
                self.errors += 1
                log.exception("sip.tu_failed", extra={"event": type(ev).__name__})
        self.flush()

    # ---- outbound -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Send what the layers queued and re-arm the timer; call after driving the layers."""
        send = self.transport.send_outgoing
        for out in self.layer.outgoing():
            send(out)
        deadline = self.layer.next_deadline()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None if deadline is None else self.loop.call_at(deadline, self._fire)
            self._timer_at = deadline

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.transport.close()
