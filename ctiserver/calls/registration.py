"""Agents' phones registering their workplace extension (REGISTER, RFC 3261 §10).

:class:`PhoneRegistry` answers a REGISTER: it authenticates the phone, then hands the request to
the :class:`~sipcore.registrar.Registrar`. (First version: no authentication yet.)
"""

from __future__ import annotations

from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.registrar import Registrar


class PhoneRegistry:
    def __init__(self, registrar: Registrar) -> None:
        self.registrar = registrar

    def register(self, req: Request, peer: Peer, now: float) -> Response:
        return self.registrar.register(req, peer, now)
