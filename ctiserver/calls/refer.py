"""REFER from an agent's phone (RFC 3515): the transfer button on the phone.

The phone sends REFER in its call's dialog with ``Refer-To: <target>``. We accept it (202), tell
the phone how it goes with NOTIFY (``Event: refer``, a ``message/sipfrag`` body: ``SIP/2.0 100
Trying`` at once, then the final status of the transfer), and do the transfer ourselves the way
the desktop's ``call.transfer`` does (the target by late offer, the caller moved by re-INVITE):
the media never pass through us. When the caller has been moved the phone's leg gets BYE.

The target: a ``sip:`` URI with an IP-literal host is dialled as it is; a number (the user part,
for a URI without a usable host or with ``sip.outbound_uri`` set) goes through the dial plan and
``sip.outbound_uri``. Anything else is refused with 403 (a phone must not make the core call
where the dial plan would not).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from sipcore.message import Request, make_response
from sipcore.syntax import ParseError
from sipcore.transaction import ServerTransaction
from sipcore.uri import SipUri

from .control import CallError
from .legs import Leg

if TYPE_CHECKING:
    from .telephony import Telephony

log = logging.getLogger("ctiserver.sip")

SIPFRAG = "message/sipfrag;version=2.0"


def _ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def target_of(tel: Telephony, req: Request) -> str | None:
    """Where the phone wants the caller to go, as a URI we may dial; None if not allowed."""
    try:
        refer_to = req.header("Refer-To")
        if refer_to is None:
            return None
        from sipcore.headers import parse_name_addr

        uri = parse_name_addr(refer_to).uri
    except ParseError:
        return None
    if not isinstance(uri, SipUri):
        return None
    if tel.settings.outbound_uri and uri.user:
        if tel.dialplan.check(uri.user) is not None:
            return None
        return tel.settings.outbound_uri.replace("{number}", uri.user)
    if _ip(uri.host):
        return str(uri).split("?", 1)[0]
    return None


def on_refer(tel: Telephony, leg: Leg, req: Request, txn: ServerTransaction, now: float) -> None:
    """An in-dialog REFER on an agent's leg."""
    call = tel.control.calls.get(leg.id.split("/")[0])
    target = target_of(tel, req)
    if call is None or call.agent_leg != leg.id or target is None:
        tel._respond(txn, make_response(req, 403 if target is None else 481), now)
        return
    try:
        actions = tel.control.transfer(call.contact_id, target)
    except CallError as exc:
        log.info("sip.refer_refused", extra={"call": call.contact_id, "reason": str(exc)})
        tel._respond(txn, make_response(req, 488 if "hold" in str(exc) else 491), now)
        return
    tel._respond(txn, make_response(req, 202, "Accepted", headers=[("Contact", tel._contact())]), now)
    tel.referred[call.contact_id] = leg.id
    notify(tel, leg, "SIP/2.0 100 Trying", final=False)
    log.info("sip.refer", extra={"call": call.contact_id, "leg": leg.id, "target": target})
    tel._perform(actions)


def notify(tel: Telephony, leg: Leg, status_line: str, *, final: bool) -> None:
    """NOTIFY the phone of the transfer's progress (RFC 3515 §2.4.4)."""
    assert tel.endpoint is not None
    if leg.dialog is None:
        return
    state = "terminated;reason=noresource" if final else "active;expires=60"
    req = leg.dialog.new_request("NOTIFY", transport=leg.peer.transport.upper(), sent_by=tel.sent_by,
                                 headers=[("Event", "refer"), ("Subscription-State", state)],
                                 body=(status_line + "\r\n").encode(), content_type=SIPFRAG)
    tel.endpoint.dialogs.send_request(leg.dialog, req, tel._peer_of(leg.dialog), tel.endpoint.now())


def transfer_done(tel: Telephony, contact_id: str, status: int) -> None:
    """The transfer a phone asked for ended: 200 (the caller moved) or the failure's status."""
    waiter = tel.transfer_waiters.pop(contact_id, None)
    if waiter is not None and not waiter.done():   # the IVR's ivr.transfer waits for this
        waiter.set_result(status)
    leg_id = tel.referred.pop(contact_id, None)
    leg = tel.legs.get(leg_id or "")
    if leg is not None:
        reason = {200: "OK", 486: "Busy Here", 487: "Request Terminated"}.get(status, "Service Unavailable")
        notify(tel, leg, f"SIP/2.0 {status} {reason}", final=True)
