"""OPTIONS keepalives towards the trunk peers (RFC 3261 §11): is the PBX there?

Every ``sip.keepalive_interval`` seconds an OPTIONS goes to each ``sip.keepalive`` peer
(``udp:host:port`` or ``tcp:host:port``). Any final answer means the peer is up; a transaction
timeout or a transport failure that it is down. A change is logged (``sip.trunk_up`` /
``sip.trunk_down``, a warning) and published on the SimProt topic ``calls`` as ``trunk.state``
``{peer, up}``; ``calls.list`` carries the last state of each (``trunks``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sipcore.endpoint import SipEndpoint
from sipcore.message import Request
from sipcore.net import Peer
from sipcore.transaction import TransactionError, new_branch, new_tag

from ..settings import SipSettings
from .legs import SDP
from .records import CallRecorder

log = logging.getLogger("ctiserver.sip")


class TrunkKeepalive:
    def __init__(self, settings: SipSettings, sent_by: Callable[[], str], records: CallRecorder) -> None:
        self.settings = settings
        self.sent_by = sent_by
        self.records = records
        self.up: dict[str, bool] = {}   # peer -> answered the last OPTIONS
        self._endpoint: SipEndpoint | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint
        if self.settings.keepalive:
            self._timer = endpoint.loop.call_later(0.0, self._ping)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ping(self) -> None:
        endpoint = self._endpoint
        assert endpoint is not None
        now, sent_by = endpoint.now(), self.sent_by()
        for entry in self.settings.keepalive:
            transport, address = entry.split(":", 1)
            host, port = address.rsplit(":", 1)
            target = f"sip:{host}:{port}" + (";transport=tcp" if transport == "tcp" else "")
            req = Request("OPTIONS", target, headers=[
                ("Via", f"SIP/2.0/{transport.upper()} {sent_by};branch={new_branch()};rport"),
                ("Max-Forwards", "70"), ("From", f"<sip:cti@{sent_by}>;tag={new_tag()}"), ("To", f"<{target}>"),
                ("Call-ID", f"{new_tag()}{new_tag()}@{sent_by}"), ("CSeq", "1 OPTIONS"), ("Accept", SDP)])
            try:
                endpoint.layer.request(req, Peer(transport, host.strip("[]"), int(port)), now).context = \
                    ("keepalive", entry)
            except TransactionError:   # too many transactions: skip this round
                pass
        endpoint.flush()
        self._timer = endpoint.loop.call_later(self.settings.keepalive_interval, self._ping)

    def state(self, entry: str, up: bool) -> None:
        """The outcome of a ping: logged and published when it changes."""
        if self.up.get(entry) is not up:
            (log.info if up else log.warning)("sip.trunk_up" if up else "sip.trunk_down", extra={"peer": entry})
            publish = self.records.publish()
            if publish is not None:
                publish("calls", "trunk.state", {"peer": entry, "up": up})
        self.up[entry] = up
