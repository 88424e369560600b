"""Where SIP messages come from and go to: the one address type shared by the transports, the
transaction layer and the dialogs.

A :class:`Peer` names a transport (``"udp"`` or ``"tcp"``), a host (an IP address; names are
resolved before a Peer is made) and a port. For a message that arrived over TCP, ``conn`` is the
id of the connection it came on: responses go back on that connection while it is open (RFC 3261
§18.2.2), and a Peer with ``conn`` None makes the transport open (or reuse) one.
"""

from __future__ import annotations

from dataclasses import dataclass

UDP = "udp"
TCP = "tcp"
RELIABLE = frozenset({TCP})


@dataclass(frozen=True, slots=True)
class Peer:
    transport: str
    host: str
    port: int
    conn: int | None = None

    @property
    def reliable(self) -> bool:
        """Stream transports: no retransmissions (RFC 3261 §17.1.1.2), timers D/I/J/K are zero."""
        return self.transport in RELIABLE

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """Bytes a sans-IO layer wants sent to ``peer``."""

    data: bytes
    peer: Peer
