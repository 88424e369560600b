"""Agents' phones registering their workplace extension (REGISTER, RFC 3261 §10).

:class:`PhoneRegistry` answers a REGISTER: it authenticates the phone, then hands the request to
the :class:`~sipcore.registrar.Registrar`. (First version: no authentication yet.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.registrar import Registrar


class PhoneRegistry:
    def __init__(self, registrar: Registrar, *, realm: str,
                 workplace: Callable[[str], dict[str, Any] | None]) -> None:
        self.registrar = registrar
        self.realm = realm
        self.workplace = workplace   # extension -> the cc.workplaces row (all columns), or None

    def register(self, req: Request, peer: Peer, now: float) -> Response:
        return self.registrar.register(req, peer, now)
