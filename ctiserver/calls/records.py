"""What the telephony records and shows: calls and legs, for history and for supervisors.

:class:`CallRecorder` is told what happens to calls and legs (by :class:`~ctiserver.calls.telephony.Telephony`)
and turns it into

* history rows (``cc.call_history`` when a call ends; ``cc.call_legs`` when a leg is over — each
  leg exactly once, with its times, the final SIP status of its INVITE and why it ended), written
  in batches by the history writer;
* live events on the SimProt topic ``calls`` (permission ``acd.supervise``): ``call.state``
  ``{call, state, caller, pilot, agent, cause, at}`` with state ``queued``, ``ivr``, ``offering``,
  ``connected``, ``ended``; its snapshot (and the ``calls.list`` operation) lists the calls in
  progress, which ``ctictl calls`` shows.

Times are wall-clock seconds (history is read by people). Memory: the calls in progress and the
legs not yet over.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..history import HistoryWriter

Publish = Callable[[str, str, Any], object]


@dataclass(slots=True)
class CallInfo:
    call: str
    caller: str
    pilot: str
    started: float
    state: str = "queued"
    agent: str | None = None
    answered: float | None = None


@dataclass(slots=True)
class LegInfo:
    leg: str
    call: str
    kind: str
    agent: str | None
    peer: str
    started: float
    ringing: float | None = None
    answered: float | None = None


class CallRecorder:
    def __init__(self, history: HistoryWriter, account_id: Callable[[str], int | None],
                 publish: Callable[[], Publish | None], clock: Callable[[], float] = time.time) -> None:
        self.history = history
        self.account_id = account_id   # agent user name -> accounts.id
        self.publish = publish          # the SimProt server's publish, once there is one
        self.clock = clock
        self.calls: dict[str, CallInfo] = {}
        self.legs: dict[str, LegInfo] = {}

    # ---- calls ----------------------------------------------------------------------------------
    def call_started(self, call: str, caller: str, pilot: str, leg: str, peer: str) -> None:
        now = self.clock()
        self.calls[call] = CallInfo(call, caller, pilot, now)
        self.legs[leg] = LegInfo(leg, call, "caller", None, peer, now)
        self._event(self.calls[call], None)

    def offering(self, call: str, leg: str, agent: str, peer: str) -> None:
        self.legs[leg] = LegInfo(leg, call, "agent", agent, peer, self.clock())
        info = self.calls.get(call)
        if info is not None:
            info.state, info.agent = "offering", agent
            self._event(info, None)

    def leg_started(self, call: str, leg: str, kind: str, agent: str | None, peer: str,
                    state: str | None = None) -> None:
        """Any other leg (the IVR's, an outbound call's); ``state`` changes the call's state."""
        self.legs[leg] = LegInfo(leg, call, kind, agent, peer, self.clock())
        info = self.calls.get(call)
        if info is not None and state is not None:
            info.state = state
            self._event(info, None)

    def ringing(self, leg: str) -> None:
        info = self.legs.get(leg)
        if info is not None and info.ringing is None:
            info.ringing = self.clock()

    def leg_answered(self, leg: str) -> None:
        info = self.legs.get(leg)
        if info is not None and info.answered is None:
            info.answered = self.clock()

    def connected(self, call: str, caller_leg: str, agent: str | None) -> None:
        now = self.clock()
        info = self.calls.get(call)
        if info is not None:
            info.state, info.agent, info.answered = "connected", agent, now
            self._event(info, None)
        self.leg_answered(caller_leg)

    def queued_again(self, call: str) -> None:
        info = self.calls.get(call)
        if info is not None and info.state == "offering":
            info.state, info.agent = "queued", None
            self._event(info, None)

    def call_ended(self, call: str, cause: str, connected: bool) -> None:
        info = self.calls.pop(call, None)
        if info is None:
            return
        now = self.clock()
        info.state = "ended"
        agent_id = self.account_id(info.agent) if info.agent and connected else None
        self.history.call(call, info.caller, info.pilot, agent_id, info.started, info.answered if connected else None,
                          now, connected, cause)
        self._event(info, cause)

    # ---- legs -----------------------------------------------------------------------------------
    def leg_over(self, leg: str, status: int | None, cause: str) -> None:
        """The leg is over (its INVITE failed, or BYE/CANCEL ended it): one history row."""
        info = self.legs.pop(leg, None)
        if info is None:
            return
        self.history.leg(leg, info.call, info.kind, self.account_id(info.agent) if info.agent else None, info.peer,
                         info.started, info.ringing, info.answered, self.clock(), status, cause)

    # ---- the calls topic ------------------------------------------------------------------------
    def _event(self, info: CallInfo, cause: str | None) -> None:
        publish = self.publish()
        if publish is not None:
            publish("calls", "call.state", {"call": info.call, "state": info.state, "caller": info.caller,
                                            "pilot": info.pilot, "agent": info.agent, "cause": cause,
                                            "at": self.clock()})

    def snapshot(self) -> dict:
        now = self.clock()
        return {"calls": [{"call": c.call, "state": c.state, "caller": c.caller, "pilot": c.pilot, "agent": c.agent,
                           "duration": round(now - c.started, 1),
                           "talking": None if c.answered is None else round(now - c.answered, 1)}
                          for c in self.calls.values()]}
