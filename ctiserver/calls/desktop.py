"""The telephony operations an agent's desktop and a supervisor use over SimProt (docs/simprot.md §16.4).

``calls.list`` (supervisors); ``call.dial`` / ``call.hangup`` (an agent's own outbound calls, OUT-4);
``call.transfer`` (blind transfer of the agent's connected call to a number). Each checks its
arguments and answers a SimProt error naming the field; the work is :class:`Telephony`'s.
"""

from __future__ import annotations

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
            call = self.tel.dial_out(conn.principal.username, number)
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
            self.tel.hang_up_out(conn.principal.username, call if type(call) is str else "")
        except CallError as exc:
            raise RequestError(ErrorCode.NOT_FOUND, str(exc), {"field": "call"}) from None
        return {"call": call, "state": "ended"}
