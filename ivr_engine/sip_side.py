"""The IVR's SIP side: a user-agent server on :mod:`sipcore` that answers the core's INVITEs.

Each INVITE from an admitted peer (``ivr.trunk_peers``; others get 403) is one IVR call: its SDP
offer is answered with our own RTP address (PCMU or PCMA, and telephone-event when offered;
488 when nothing fits), a 200 is sent, and once the ACK arrives the call is handed to the engine
(``on_call``). A BYE from the core (the caller left, or the core bridged him to an agent: the
engine learns which from the core's events) or our own hangup ends it (``on_end``). CANCEL before
the answer, an ACK that never comes (RFC 3261 §13.3.1.4) and transport failures end it too.

The call's id is the ``X-Contact-Id`` header the core puts on its INVITE (the contact id the IVR
names in SimProt ``ivr.route``); an INVITE without one (a test, a PBX straight to the IVR) gets a
generated id. Re-INVITEs are answered with the session we have (the media stay as they are).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sipcore.dialog import AckTimeout, Dialog, DialogError, error_response
from sipcore.endpoint import SipEndpoint
from sipcore.headers import Method
from sipcore.message import Request, make_response
from sipcore.net import Peer
from sipcore.offer_answer import LocalMedia, Negotiated, build_answer, make_origin
from sipcore.sdp import SdpError, parse_sdp
from sipcore.transaction import (
    CancelRequested,
    ClientTransaction,
    IncomingRequest,
    Overloaded,
    ServerTransaction,
    TransactionError,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    new_tag,
)
from sipcore.uri import SipUri

log = logging.getLogger("ivr_engine.sip")

SDP = "application/sdp"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


@dataclass(eq=False)
class IvrCall:
    id: str                  # the core's contact id (X-Contact-Id)
    caller: str
    pilot: str
    invite: Request
    txn: ServerTransaction
    peer: Peer
    tag: str
    media: Any = None        # the engine's media leg (set by on_invite)
    negotiated: Negotiated | None = None
    answer: bytes = b""
    dialog: Dialog | None = None
    confirmed: bool = False  # the ACK came: the session runs
    ended: bool = False


class IvrSip:
    """``on_invite(call) -> (local RTP port, media)`` opens the media leg (raise to refuse with 503);
    ``on_call(call)`` starts the session; ``on_end(call, why)`` ends it (close its media)."""

    def __init__(self, *, host: str, port: int, advertise: str, peers: tuple[str, ...], max_calls: int,
                 on_invite: Callable[[IvrCall], Awaitable[int]], on_call: Callable[[IvrCall], None],
                 on_end: Callable[[IvrCall, str], None]) -> None:
        self.host, self.port, self.advertise = host, port, advertise
        self.peers = [ipaddress.ip_network(p, strict=False) for p in peers]
        self.max_calls = max_calls
        self.on_invite, self.on_call, self.on_end = on_invite, on_call, on_end
        self.endpoint: SipEndpoint | None = None
        self.sent_by = ""
        self.calls: dict[str, IvrCall] = {}
        self._tasks: set[asyncio.Task] = set()
        self.stats = {"invites": 0, "answered": 0, "refused": 0}

    async def start(self) -> int:
        self.endpoint = SipEndpoint(self.on_event)
        port = await self.endpoint.listen(self.host, self.port)
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.sent_by = self.advertise or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return port

    async def close(self) -> None:
        """Hand every call back to the core: a BYE with ``Reason: SIP;cause=503`` tells it the IVR
        is going away (the caller is queued or stays queued), not that the flow hung up."""
        for call in list(self.calls.values()):
            self.hangup(call, "shutdown", reason='SIP;cause=503;text="IVR shutting down"')
        if self.endpoint is not None:
            self.endpoint.flush()
            await asyncio.sleep(0.05)   # the BYEs leave before the sockets close
            await self.endpoint.close()

    # ---- from the engine --------------------------------------------------------------------------
    def hangup(self, call: IvrCall, why: str, *, reason: str = "") -> None:
        """End the call from our side: BYE once answered (with a Reason header, RFC 3326, if
        given), else a final error."""
        if call.ended:
            return
        assert self.endpoint is not None
        now = self.endpoint.now()
        if call.dialog is not None:
            bye = call.dialog.new_request("BYE", transport=call.peer.transport.upper(), sent_by=self.sent_by,
                                          headers=[("Reason", reason)] if reason else ())
            try:
                self.endpoint.dialogs.send_request(call.dialog, bye, call.peer, now)
            except (TransactionError, DialogError) as exc:
                log.info("ivr.bye_failed", extra={"call": call.id, "reason": str(exc)})
        else:
            self._respond(call.txn, make_response(call.invite, 480, "Temporarily Unavailable", to_tag=call.tag), now)
        self.endpoint.flush()
        self._end(call, why)

    # ---- SIP events ---------------------------------------------------------------------------------
    def on_event(self, ev: object, now: float) -> None:
        if isinstance(ev, IncomingRequest):
            self._request(ev, now)
        elif isinstance(ev, CancelRequested):
            invite = ev.invite
            call = invite.context if invite is not None else None
            self._respond(ev.transaction, make_response(ev.transaction.request, 200 if call else 481,
                                                        to_tag=call.tag if isinstance(call, IvrCall) else new_tag()),
                          now)
            if isinstance(call, IvrCall) and call.dialog is None and not call.ended:
                self._respond(call.txn, make_response(call.invite, 487, to_tag=call.tag), now)
                self._end(call, "cancel")
        elif isinstance(ev, AckTimeout):
            call = ev.dialog.context
            if isinstance(call, IvrCall):
                self.hangup(call, "no_ack")
        elif isinstance(ev, (TransactionTimeout, TransportFailed)):
            if isinstance(ev.transaction, ClientTransaction) and self.endpoint is not None:
                self.endpoint.dialogs.transaction_failed(ev.transaction)
        elif isinstance(ev, TransactionTerminated):
            ev.transaction.context = None
        elif isinstance(ev, Overloaded) and self.endpoint is not None:
            self.endpoint.layer.send(make_response(ev.request, 503, headers=[("Retry-After", "5")]), ev.peer)

    def _request(self, ev: IncomingRequest, now: float) -> None:
        assert self.endpoint is not None
        req, txn, peer = ev.request, ev.transaction, ev.peer
        dialogs = self.endpoint.dialogs
        if txn is None:   # ACK for our 200
            dialog = dialogs.receive_request(req, None, now)
            call = dialog.context if dialog is not None else None
            if isinstance(call, IvrCall) and not call.confirmed and not call.ended:
                call.confirmed = True
                self.on_call(call)
            return
        if req.to_tag is not None:
            try:
                dialog = dialogs.receive_request(req, txn, now)
            except DialogError as exc:
                self._respond(txn, error_response(req, exc), now)
                return
            call = dialog.context if dialog is not None else None
            if req.method == Method.BYE:
                self._respond(txn, make_response(req, 200), now)
                if isinstance(call, IvrCall):
                    self._end(call, "bye")
            elif req.method == Method.INVITE and isinstance(call, IvrCall):
                self._respond(txn, make_response(req, 200, headers=[("Contact", self._contact()),
                                                                    ("Content-Type", SDP)], body=call.answer), now)
            else:
                self._respond(txn, make_response(req, 200 if req.method == Method.OPTIONS else 405,
                                                 headers=[("Allow", ALLOW)]), now)
            return
        if req.method == Method.INVITE:
            self._invite(req, txn, peer, now)
        elif req.method == Method.OPTIONS:
            self._respond(txn, make_response(req, 200, to_tag=new_tag(), headers=[("Allow", ALLOW),
                                                                                  ("Accept", SDP)]), now)
        else:
            self._respond(txn, make_response(req, 481 if req.method == Method.BYE else 405, to_tag=new_tag(),
                                             headers=[("Allow", ALLOW)]), now)

    def _invite(self, req: Request, txn: ServerTransaction, peer: Peer, now: float) -> None:
        tag = new_tag()
        self.stats["invites"] += 1
        try:
            admitted = any(ipaddress.ip_address(peer.host) in net for net in self.peers)
        except ValueError:
            admitted = False
        if not admitted:
            log.warning("ivr.forbidden", extra={"peer": str(peer)})
            self._refuse(txn, req, 403, None, tag, now)
            return
        if len(self.calls) >= self.max_calls:
            self._refuse(txn, req, 503, "Too Many Calls", tag, now, [("Retry-After", "5")])
            return
        try:
            offer = parse_sdp(req.body)
        except SdpError as exc:
            self._refuse(txn, req, 488 if req.body else 400, str(exc)[:80] if req.body else "Offer Required", tag, now)
            return
        cid = req.header("X-Contact-Id") or "i" + secrets.token_hex(8)
        if cid in self.calls or len(cid) > 64:
            self._refuse(txn, req, 482 if cid in self.calls else 400, None, tag, now)
            return
        uri, frm = req.uri, req.from_.uri
        call = IvrCall(cid, (frm.user if isinstance(frm, SipUri) else None) or "anonymous",
                       (uri.user if isinstance(uri, SipUri) else None) or "", req, txn, peer, tag)
        txn.context = call
        self.calls[cid] = call
        task = asyncio.get_running_loop().create_task(self._answer(call, offer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: IvrCall, offer: Any) -> None:
        assert self.endpoint is not None
        try:
            port = await self.on_invite(call)
        except Exception as exc:   # no RTP port, no flow for the pilot, ...: the engine said why
            log.warning("ivr.refused", extra={"call": call.id, "pilot": call.pilot, "reason": str(exc)})
            status = getattr(exc, "status", 503)
            self._refuse(call.txn, call.invite, status, None, call.tag, self.endpoint.now())
            self._end(call, f"refused:{status}")
            return
        if call.ended:   # cancelled meanwhile
            return
        host = self.sent_by.rsplit(":", 1)[0].strip("[]")
        try:
            answer = build_answer(offer, LocalMedia(address=host, port=port), make_origin(host, secrets.randbits(31)))
        except SdpError as exc:
            self._refuse(call.txn, call.invite, 488, str(exc)[:80], call.tag, self.endpoint.now())
            self._end(call, "sdp")
            return
        call.negotiated, call.answer = answer.negotiated, answer.sdp.to_bytes()
        resp = make_response(call.invite, 200, to_tag=call.tag, headers=[
            ("Contact", self._contact()), ("Allow", ALLOW), ("Content-Type", SDP)], body=call.answer)
        try:
            call.dialog = self.endpoint.dialogs.respond(call.txn, resp, self.endpoint.now())
        except (TransactionError, DialogError) as exc:
            log.info("ivr.answer_failed", extra={"call": call.id, "reason": str(exc)})
            self._end(call, "answer_failed")
            return
        if call.dialog is not None:
            call.dialog.context = call
        self.stats["answered"] += 1
        self.endpoint.flush()

    # ---- helpers --------------------------------------------------------------------------------------
    def _contact(self) -> str:
        return f"<sip:ivr@{self.sent_by}>"

    def _refuse(self, txn: ServerTransaction, req: Request, status: int, reason: str | None, tag: str, now: float,
                headers: list[tuple[str, str]] | None = None) -> None:
        self.stats["refused"] += 1
        self._respond(txn, make_response(req, status, reason, to_tag=tag, headers=headers or []), now)

    def _respond(self, txn: ServerTransaction, resp: Any, now: float) -> None:
        assert self.endpoint is not None
        try:
            self.endpoint.dialogs.respond(txn, resp, now)
        except (TransactionError, DialogError) as exc:
            log.info("ivr.respond_refused", extra={"status": resp.status, "reason": str(exc)})
        self.endpoint.flush()

    def _end(self, call: IvrCall, why: str) -> None:
        if call.ended:
            return
        call.ended = True
        self.calls.pop(call.id, None)
        if call.dialog is not None:
            call.dialog.context = None
        self.on_end(call, why)
