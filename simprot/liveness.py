"""Liveness decisions for one connection: handshake deadline, heartbeat ping and timeout.

Pure: the adapter passes the times it noted and ``now``; the answer says what to do.  One sweeper
per server walks all connections about once a second, which is far cheaper than a timer per
connection at ten thousand clients.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    OK = "ok"
    SEND_PING = "send_ping"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"


@dataclass(frozen=True, slots=True)
class LivenessPolicy:
    heartbeat_interval: float
    heartbeat_timeout: float
    handshake_timeout: float

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval < self.heartbeat_timeout:
            raise ValueError("need 0 < heartbeat_interval < heartbeat_timeout")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")

    def check(self, now: float, opened: float, last_rx: float, last_tx: float, authenticated: bool) -> Verdict:
        if not authenticated:
            # before login only the handshake deadline applies; no pings to a peer that has not
            # said hello (a PONG before hello would be a protocol error on its side)
            return Verdict.HANDSHAKE_TIMEOUT if now - opened >= self.handshake_timeout else Verdict.OK
        if now - last_rx >= self.heartbeat_timeout:
            return Verdict.HEARTBEAT_TIMEOUT
        if now - last_tx >= self.heartbeat_interval:
            # each side pings when it has itself been silent for an interval; the peer does the
            # same, so a healthy peer is never silent for long even when only we are talking
            return Verdict.SEND_PING
        return Verdict.OK
