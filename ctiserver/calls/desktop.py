"""The telephony operations an agent's desktop and a supervisor use over SimProt (docs/simprot.md §16.4).

``calls.list`` (supervisors); ``call.dial`` / ``call.hangup`` (an agent's own outbound calls, OUT-4);
``call.transfer`` (blind transfer of the agent's connected call to a number). Each checks its
arguments and answers a SimProt error naming the field; the work is :class:`Telephony`'s.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from simprot.errors import ErrorCode, RequestError
from simprot.server import Connection, Operation

from ..acd import AcdError
from .control import CallError

if TYPE_CHECKING:
    from .telephony import Telephony


class CallOps:
    def __init__(self, telephony: Telephony) -> None:
        self.tel = telephony

    def operations(self) -> list[Operation]:
        """SimProt: ``calls.list`` (supervisors) and the agent's own outbound calls (OUT-4)."""
        return [Operation("calls.list", lambda conn, args: self.tel.snapshot(), "acd.supervise"),
                Operation("call.dial", self.op_dial, "acd.agent"),
                Operation("call.hangup", self.op_hangup, "acd.agent"),
                Operation("call.transfer", self.op_transfer, "acd.agent"),
                Operation("call.hold", self.op_hold, "acd.agent"),
                Operation("call.unhold", self.op_unhold, "acd.agent")]

    def op_hold(self, conn: Connection, args: dict) -> dict:
        return self._hold(conn, args, True)

    def op_unhold(self, conn: Connection, args: dict) -> dict:
        return self._hold(conn, args, False)

    def _hold(self, conn: Connection, args: dict, on: bool) -> dict:
        contact = args.get("contact")
        call = self.tel.control.calls.get(contact) if type(contact) is str else None
        if call is None or call.agent_id != conn.principal.username:
            raise RequestError(ErrorCode.NOT_FOUND, "contact: not a call of yours", {"field": "contact"})
        try:
            self.tel._perform(self.tel.control.hold(call.contact_id, on))
        except CallError as exc:
            raise RequestError(ErrorCode.INVALID_STATE, f"contact: {exc}", {"field": "contact"}) from None
        self.tel._pump()
        return {"contact": call.contact_id, "held": on}

    def op_transfer(self, conn: Connection, args: dict) -> dict:
        """Blind transfer of the agent's connected call to a number (through sip.outbound_uri)."""
        contact, number = args.get("contact"), args.get("number")
        agent = conn.principal.username
        call = self.tel.control.calls.get(contact) if type(contact) is str else None
        if call is None or call.agent_id != agent:
            raise RequestError(ErrorCode.NOT_FOUND, "contact: not a call of yours", {"field": "contact"})
        why = "number: a string of digits" if type(number) is not str else self.tel.dialplan.check(number)
        if why is not None or not self.tel.settings.outbound_uri:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, f"number: {why or 'transfers need sip.outbound_uri'}",
                               {"field": "number"})
        try:
            target = self.tel.settings.outbound_uri.replace("{number}", str(number))
            actions = self.tel.control.transfer(call.contact_id, target)
        except CallError as exc:
            raise RequestError(ErrorCode.INVALID_STATE, f"contact: {exc}", {"field": "contact"}) from None
        self.tel._perform(actions)
        self.tel._pump()
        return {"contact": call.contact_id, "state": "transferring", "number": number}

    def op_dial(self, conn: Connection, args: dict) -> dict:
        number = args.get("number")
        if type(number) is not str:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "number: a string of digits", {"field": "number"})
        try:
            call = self.dial_out(conn.principal.username, number)
        except CallError as exc:
            raise RequestError(ErrorCode.INVALID_STATE, f"agent: {exc}", {"field": "agent"}) from None
        except (ValueError, AcdError) as exc:
            text = str(exc)
            field = text.split(":", 1)[0] if text.split(":", 1)[0] in ("number", "agent") else "number"
            code = ErrorCode.INVALID_STATE if field == "agent" else ErrorCode.INVALID_ARGUMENT
            raise RequestError(code, text, {"field": field}) from None
        return {"call": call, "state": "dialling", "number": number}

    def op_hangup(self, conn: Connection, args: dict) -> dict:
        call = args.get("call")
        try:
            self.hang_up_out(conn.principal.username, call if type(call) is str else "")
        except CallError as exc:
            raise RequestError(ErrorCode.NOT_FOUND, str(exc), {"field": "call"}) from None
        return {"call": call, "state": "ended"}

    # ---- the agent's own outbound calls (OUT-4) ---------------------------------------------------
    def dial_out(self, agent_id: str, number: str) -> str:
        """The agent calls a customer: his phone first, then the number through the trunk. Raises
        ValueError naming what is wrong (the SimProt adapter turns it into an error)."""
        tel = self.tel
        if not tel.settings.outbound_uri:
            raise ValueError("outbound calls are not configured (sip.outbound_uri)")
        why = tel.dialplan.check(number)
        if why is not None:
            raise ValueError(f"number: {why}")
        state = tel.distribution.engine.brief(agent_id)[0]
        if state.value not in ("ready", "not_ready"):
            raise ValueError(f"agent: {state.value}; outbound calls start from ready or not ready")
        phone = tel.target_of(agent_id)
        if phone is None:
            raise ValueError("agent: no phone at your workplace")
        call_id = "o" + secrets.token_hex(8)
        target = tel.settings.outbound_uri.replace("{number}", number.replace(" ", ""))
        actions = tel.outbound.dial(call_id, agent_id, phone, number, target)
        tel.records.call_started(call_id, agent_id, number, call_id, target)
        tel._perform(actions)   # type: ignore[arg-type]
        tel._pump()
        return call_id

    def hang_up_out(self, agent_id: str, call_id: str) -> None:
        call = self.tel.outbound.calls.get(call_id)
        if call is None or call.agent_id != agent_id:
            raise CallError(f"no outbound call {call_id} of yours")
        self.tel._perform(self.tel.outbound.hangup(call_id))   # type: ignore[arg-type]
        self.tel._pump()
