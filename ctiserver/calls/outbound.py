"""Agent-initiated outbound calls (SPEC OUT-4): the agent's phone first, then the customer through
the trunk — pure, no SIP, no I/O.

The core is a third-party call controller here (RFC 3725, flow I): it calls the agent's phone
*without* SDP; the phone answers (its 200 carries an offer); the core then calls the customer
through the trunk with that offer; the customer's answer goes back to the phone in the ACK. While
the call lasts the agent is not offered ACD contacts (``AcdOutbound(start=True)``: not ready with
reason ``outbound``; his previous state comes back after). Either side hanging up releases the other.

Legs: ``<call>/1`` is the agent's phone, ``<call>`` the customer. Actions are those of
:mod:`ctiserver.calls.control` plus :class:`AcdOutbound` and :class:`DialOut`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from .control import AckAnswer, Action, CallEnded, CallError, Cancel, Dial, Hangup


class OutState(enum.Enum):
    __hash__ = object.__hash__
    PHONE = "phone"             # the agent's phone is being called
    DIALLING = "dialling"       # the phone answered; the customer is being called
    CONNECTED = "connected"
    ENDED = "ended"


class AcdOutbound(NamedTuple):
    """The agent starts (not ready, reason ``outbound``) or ends an outbound call."""
    agent_id: str
    contact_id: str
    start: bool


class DialOut(NamedTuple):
    """INVITE the customer at ``target`` (through the trunk) with ``sdp``, the phone's offer."""
    leg: str
    contact_id: str
    agent_id: str
    target: str
    number: str
    sdp: bytes


@dataclass(slots=True)
class OutCall:
    call_id: str
    agent_id: str
    number: str
    target: str               # the customer's URI on the trunk
    state: OutState = OutState.PHONE

    @property
    def phone_leg(self) -> str:
        return f"{self.call_id}/1"


OutAction = Action | AcdOutbound | DialOut


class OutboundCalls:
    def __init__(self) -> None:
        self.calls: dict[str, OutCall] = {}
        self._by_leg: dict[str, OutCall] = {}

    def owns(self, leg: str) -> bool:
        return leg in self._by_leg

    def of_agent(self, agent_id: str) -> OutCall | None:
        return next((c for c in self.calls.values() if c.agent_id == agent_id), None)

    def dial(self, call_id: str, agent_id: str, phone: str, number: str, target: str) -> list[OutAction]:
        if call_id in self.calls or self.of_agent(agent_id) is not None:
            raise CallError(f"agent {agent_id} already has an outbound call")
        call = OutCall(call_id, agent_id, number, target)
        self.calls[call_id] = call
        self._by_leg[call.phone_leg] = call
        return [AcdOutbound(agent_id, call_id, True), Dial(call.phone_leg, call_id, agent_id, phone, number, b"")]

    # ---- the agent's phone ----------------------------------------------------------------------
    def phone_answered(self, leg: str, sdp: bytes) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or call.state is not OutState.PHONE:
            return [Hangup(leg)]
        call.state = OutState.DIALLING
        self._by_leg[call.call_id] = call
        return [DialOut(call.call_id, call.call_id, call.agent_id, call.target, call.number, sdp)]

    def phone_failed(self, leg: str, status: int) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or call.state is not OutState.PHONE:
            return []
        return self._end(call, f"phone:{status}", [])

    def phone_hangup(self, leg: str) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or leg != call.phone_leg:
            return []
        if call.state is OutState.DIALLING:
            return self._end(call, "agent_hangup", [Cancel(call.call_id)])
        return self._end(call, "agent_hangup", [Hangup(call.call_id)])

    # ---- the customer ---------------------------------------------------------------------------
    def customer_answered(self, leg: str, sdp: bytes) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or call.state is not OutState.DIALLING:
            return [Hangup(leg)]
        call.state = OutState.CONNECTED
        return [AckAnswer(call.phone_leg, sdp)]

    def customer_failed(self, leg: str, status: int) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or call.state is not OutState.DIALLING:
            return []
        return self._end(call, f"customer:{status}", [AckAnswer(call.phone_leg, b""), Hangup(call.phone_leg)])

    def customer_hangup(self, leg: str) -> list[OutAction]:
        call = self._by_leg.get(leg)
        if call is None or leg != call.call_id or call.state is not OutState.CONNECTED:
            return []
        return self._end(call, "customer_hangup", [Hangup(call.phone_leg)])

    def hangup(self, call_id: str) -> list[OutAction]:
        """The agent ends the call from his desktop."""
        call = self.calls.get(call_id)
        if call is None:
            raise CallError(f"no outbound call {call_id}")
        if call.state is OutState.PHONE:
            return self._end(call, "cancelled", [Cancel(call.phone_leg)])
        if call.state is OutState.DIALLING:
            return self._end(call, "cancelled", [Cancel(call.call_id), AckAnswer(call.phone_leg, b""),
                                                  Hangup(call.phone_leg)])
        return self._end(call, "agent_hangup", [Hangup(call.call_id), Hangup(call.phone_leg)])

    def _end(self, call: OutCall, cause: str, out: list[OutAction]) -> list[OutAction]:
        connected = call.state is OutState.CONNECTED
        call.state = OutState.ENDED
        del self.calls[call.call_id]
        self._by_leg.pop(call.phone_leg, None)
        self._by_leg.pop(call.call_id, None)
        out += [AcdOutbound(call.agent_id, call.call_id, False), CallEnded(call.call_id, cause, connected)]
        return out
