"""What a routing IVR (our ivr-engine) asks of the core over SimProt (docs/simprot.md §16.4).

``ivr.route`` queues the caller the IVR is talking to, in the project the IVR's script chose, with
the data it collected; the IVR's account owns the contact, so its ``contact.waiting`` notices
(position, EWT, callback offer) and ``contact.state`` changes go to the IVR. ``ivr.transfer``
hands the caller to a number and answers when the transfer is settled. Both need the permission
``contacts.enqueue`` (the ``service`` role). The call is named by its id, which the IVR got in
the INVITE's ``X-Contact-Id`` header.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import asyncpg

from simprot.errors import ErrorCode, RequestError
from simprot.server import Connection, Operation

from ..acd import AcdError
from ..distribution import _arg
from .control import CallError

if TYPE_CHECKING:
    from .telephony import Telephony

TRANSFER_WAIT = 64.0   # seconds: longer than an INVITE's timer B (32 s) plus the re-INVITE to the caller
MAX_DATA = 64          # keys in the data an IVR attaches to a call


class IvrOps:
    def __init__(self, telephony: Telephony) -> None:
        self.tel = telephony

    def operations(self) -> list[Operation]:
        return [Operation("ivr.route", self.op_route, "contacts.enqueue"),
                Operation("ivr.transfer", self.op_transfer, "contacts.enqueue")]

    def _call(self, contact: object, fn: Any, *args: Any) -> Any:
        if type(contact) is not str or contact not in self.tel.control.calls:
            raise RequestError(ErrorCode.NOT_FOUND, "contact: no such call", {"field": "contact"})
        try:
            return fn(contact, *args)
        except CallError as exc:
            raise RequestError(ErrorCode.INVALID_STATE, f"contact: {exc}", {"field": "contact"}) from None

    async def op_route(self, conn: Connection, args: dict) -> dict:
        """Queue the IVR's caller in ``project``; answers once the contact is committed."""
        project = _arg(args, "project")
        data = _arg(args, "data", dict, required=False, default={})
        priority = _arg(args, "priority", int, required=False, default=0)
        if len(data) > MAX_DATA or not all(type(k) is str and type(v) in (str, int, float) for k, v in data.items()):
            raise RequestError(ErrorCode.INVALID_ARGUMENT, f"data: up to {MAX_DATA} keys, text or number values",
                               {"field": "data"})
        contact = args.get("contact")
        call = self._call(contact, self.tel.control.ivr_route)
        d = self.tel.distribution
        try:
            d.enqueue_call(call.contact_id, call.pilot, call.caller, data, project=project,
                           owner=conn.principal.username, priority=priority)
        except (AcdError, ValueError) as exc:
            self.tel.control.ivr_unroute(call.contact_id)
            code = ErrorCode[exc.hint] if isinstance(exc, AcdError) else ErrorCode.INVALID_ARGUMENT
            raise RequestError(code, f"project: {exc}", {"field": "project"}) from None
        self.tel._pump()
        try:
            await d.history.durable()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            raise RequestError(ErrorCode.INTERNAL_ERROR, "the call is queued but could not be saved yet; "
                               f"it will be retried ({str(exc)[:100]})") from None
        if call.contact_id not in d.contacts:   # offered and gone already, or the caller left meanwhile
            return {"contact": call.contact_id, "state": "gone"}
        return d.op_contact_status(conn, {"contact": call.contact_id})

    async def op_transfer(self, conn: Connection, args: dict) -> dict:
        """Blind transfer of the IVR's caller (not queued) to ``number``: answers ``transferred``
        once the caller talks to the target, or an error with the target's SIP status."""
        number = _arg(args, "number")
        why = self.tel.dialplan.check(number)
        if why is not None or not self.tel.settings.outbound_uri:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, f"number: {why or 'transfers need sip.outbound_uri'}",
                               {"field": "number"})
        contact = args.get("contact")
        target = self.tel.settings.outbound_uri.replace("{number}", number)
        actions = self._call(contact, self.tel.control.ivr_transfer, target)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.tel.transfer_waiters[contact] = waiter   # type: ignore[index]
        self.tel._perform(actions)
        self.tel._pump()
        try:
            status = await asyncio.wait_for(waiter, TRANSFER_WAIT)
        except TimeoutError:
            self.tel.transfer_waiters.pop(contact, None)   # type: ignore[arg-type]
            raise RequestError(ErrorCode.INTERNAL_ERROR, "number: the transfer was not settled in time",
                               {"field": "number"}) from None
        if status != 200:
            raise RequestError(ErrorCode.INVALID_STATE, f"number: the transfer failed (SIP {status})",
                               {"field": "number", "status": status})
        return {"contact": contact, "state": "transferred", "number": number}
