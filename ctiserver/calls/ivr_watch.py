"""Is the IVR still there for its callers? In-dialog OPTIONS on every IVR leg (RFC 3261 §11.2).

Every ``sip.ivr_ping_interval`` seconds the core sends an OPTIONS inside the dialog of each IVR leg
whose caller is with the IVR (first when the leg has been up for one interval). An IVR that
restarted answers 481 (it no longer knows the dialog); one that is gone does not answer at all (a
transaction timeout or a transport failure). Either way :meth:`CallControl.ivr_lost` takes over:
no caller is left in silence (a queued one stays queued; one still in the menus is queued by the
entry rules). Any other answer means the leg is alive. The pings of one round are spread over the
interval, so 2,000 IVR legs pinged every 20 s cost 100 small transactions a second.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sipcore.dialog import DialogError
from sipcore.transaction import TransactionError

from .control import CallState
from .legs import Leg

if TYPE_CHECKING:
    from .telephony import Telephony

log = logging.getLogger("ctiserver.sip")

LOST = frozenset({481, 408, 0})     # no such dialog; no answer (timeout); 0: a transport failure
IDLE = 5.0                          # seconds between looks at the setting while pings are off


class IvrWatch:
    def __init__(self, tel: Telephony) -> None:
        self.tel = tel
        self._queue: list[str] = []
        self._seen: dict[str, float] = {}   # IVR leg -> when a round first saw it
        self._timer: asyncio.TimerHandle | None = None
        self.lost = 0

    def start(self) -> None:
        assert self.tel.endpoint is not None
        self._timer = self.tel.endpoint.loop.call_later(1.0, self._round)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _round(self) -> None:
        """Ping the IVR legs of this round a few at a time, so that one round fills the interval."""
        assert self.tel.endpoint is not None
        interval = self.tel.settings.ivr_ping_interval   # (read each time: it may be changed at run time)
        if interval <= 0:
            self._queue.clear()
            self._timer = self.tel.endpoint.loop.call_later(IDLE, self._round)
            return
        if not self._queue:   # a new round: the legs that have been up for an interval at least
            now = self.tel.endpoint.now()
            live = {c.ivr_leg for c in self.tel.control.calls.values()
                    if c.ivr_leg is not None and c.answered_by_ivr and c.state is not CallState.ENDED}
            self._seen = {leg: self._seen.get(leg, now) for leg in live}
            self._queue = [leg for leg, since in self._seen.items() if now - since >= interval]
        steps = max(1, int(interval / 0.05))   # a batch every 50 ms
        batch = max(1, -(-len(self._queue) // steps))
        batch_legs = self._queue[:batch]
        for leg_id in batch_legs:
            self._ping(leg_id)
        del self._queue[:batch]
        self.tel.endpoint.flush()
        # (nothing to ping: look again soon, so a new call is pinged about one interval after it began)
        idle = not batch_legs
        self._timer = self.tel.endpoint.loop.call_later(
            0.05 if self._queue else min(interval, IDLE) if idle else interval, self._round)

    def _ping(self, leg_id: str) -> None:
        tel = self.tel
        leg = tel.legs.get(leg_id)
        if leg is None or leg.dialog is None or leg.ended or tel.endpoint is None:
            return
        req = leg.dialog.new_request("OPTIONS", transport=leg.peer.transport.upper(), sent_by=tel.sent_by)
        try:
            txn = tel.endpoint.dialogs.send_request(leg.dialog, req, tel._peer_of(leg.dialog), tel.endpoint.now())
        except (TransactionError, DialogError):   # too many transactions: next round
            return
        txn.context = ("ivr_ping", leg)

    def answered(self, leg: Leg, status: int) -> None:
        """The final answer to a ping (408 for a timeout, 0 for a transport failure). An IVR that
        answers 503 (overloaded) is alive."""
        if status not in LOST or leg.ended:
            return
        self.lost += 1
        log.warning("sip.ivr_lost", extra={"call": leg.id.split("/")[0], "leg": leg.id, "status": status})
        leg.ended = True
        tel = self.tel
        tel._perform(tel._safe(tel.control.ivr_lost, leg.id))
        tel._pump()
