"""The SIP side of the core: the trunk, the agents' phones, and the B2BUA legs between them.

:class:`Telephony` is the transaction user of one :class:`~sipcore.endpoint.SipEndpoint`. It turns
SIP into the leg events of :class:`~ctiserver.calls.control.CallControl` and performs its actions:

* an INVITE to a pilot from a trunk peer (``sip.trunk_peers``) becomes a *caller leg*: 180 at once,
  the contact enters the ACD through the entry rules (:meth:`Distribution.enqueue_call`);
* the ACD's offer becomes an *agent leg*: our INVITE, with the caller's SDP, to the phone of the
  workplace the agent logged in at (its registered contact, else its static ``sip_uri``); the
  phone's 180 is "ringing", its 200 connects the caller (200 with the phone's SDP, media end to
  end), its error is a miss; the ACD's ring timeout becomes a CANCEL;
* CANCEL/BYE from either side release the other; REGISTER goes to the registrar; OPTIONS is
  answered 200 (trunk keepalives).

Work is serialised through one queue (:meth:`_post`/:meth:`_pump`): the ACD calls back into us
while we call into it (an offer that fails at once leads to the next offer), and the queue keeps
that flat instead of recursive. Everything runs on the event loop; nothing blocks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from simprot.server import Operation
from sipcore.dialog import AckTimeout, Dialog, DialogError, ResponseKind, error_response
from sipcore.digest import Algorithm
from sipcore.endpoint import SipEndpoint
from sipcore.headers import Method
from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.registrar import Registrar
from sipcore.sdp import SdpError, parse_sdp
from sipcore.syntax import MessageLimits, ParseError
from sipcore.transaction import (
    CancelRequested,
    ClientTransaction,
    IncomingRequest,
    IncomingResponse,
    Overloaded,
    ServerTransaction,
    StrayResponse,
    TransactionError,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    new_tag,
)
from sipcore.transport import TransportLimits
from sipcore.uri import SipUri

from ..acd import AcdError, AgentState, MissKind
from ..settings import SipSettings
from . import refer
from .control import (
    AcdAccept,
    AcdCancel,
    AcdEnd,
    AcdEnqueue,
    AcdOfferFailed,
    AcdRinging,
    AckAnswer,
    Action,
    Answer,
    CallControl,
    CallEnded,
    CallError,
    Cancel,
    Dial,
    Hangup,
    Rehold,
    Reinvite,
    Reject,
    Ring,
)
from .desktop import CallOps
from .edge import DialPlan, RateLimiter, TrunkPeers
from .ivr_ops import IvrOps
from .ivr_watch import IvrWatch
from .keepalive import TrunkKeepalive
from .legs import ALLOW, HISTORY_KIND, SDP, Leg, build_invite, held_offer, reap, test_answer
from .outbound import AcdOutbound, DialOut, OutboundCalls
from .records import CallRecorder
from .registration import PhoneRegistry

if TYPE_CHECKING:
    from ..distribution import Distribution

log = logging.getLogger("ctiserver.sip")

class Telephony:
    def __init__(self, settings: SipSettings, distribution: Distribution) -> None:
        self.settings = settings
        self.distribution = distribution
        self.control = CallControl()
        self.registrar = Registrar()
        self.phones = PhoneRegistry(self.registrar, realm=settings.realm, workplace=self._workplace_by_extension,
                                    algorithms=tuple(Algorithm(a) for a in settings.digest_algorithms))
        self.trunk = TrunkPeers(settings.trunk_peers)
        self.limiter = RateLimiter(settings.rate_limit)
        self.endpoint: SipEndpoint | None = None
        self._housekeeping: asyncio.TimerHandle | None = None
        self.sent_by = ""
        self.legs: dict[str, Leg] = {}
        self.workplaces: dict[str, dict[str, Any]] = {}   # workplace id (text) and name -> row
        self._by_extension: dict[str, dict[str, Any]] = {}
        self._work: deque[tuple[Callable[..., Any], tuple]] = deque()
        self._pumping = False
        self._scheduled = False
        self.stats = {"calls": 0, "answered": 0, "rejected": 0, "refused": 0}
        self.outbound = OutboundCalls()
        self.dialplan = DialPlan()
        self._before_outbound: dict[str, tuple[str, str]] = {}   # agent -> (state, reason) to come back to
        c, o = self.control, self.outbound
        # per kind of leg: what a failure, an answer and a BYE from it mean
        self._handlers: dict[str, tuple[Callable[..., list], Callable[..., list], Callable[..., list]]] = {
            "caller": (c.caller_hangup, c.caller_hangup, c.caller_hangup),
            "agent": (c.agent_failed, c.agent_answered, c.agent_hangup),
            "ivr": (c.ivr_failed, c.ivr_answered, c.ivr_hangup),
            "out-phone": (o.phone_failed, o.phone_answered, o.phone_hangup),
            "customer": (o.customer_failed, o.customer_answered, o.customer_hangup),
            "transfer": (self._transfer_failed, c.transfer_answered, c.transfer_hangup),
        }
        server = lambda: distribution.server.publish if distribution.server is not None else None  # noqa: E731
        self.records = CallRecorder(distribution.history, distribution.account_ids.get, server,
                                    clock=distribution.clock)
        self.referred: dict[str, str] = {}   # call -> the agent leg whose REFER is being carried out
        self.transfer_waiters: dict[str, asyncio.Future[int]] = {}   # call -> the IVR's ivr.transfer
        self.keepalive = TrunkKeepalive(settings, lambda: self.sent_by, self.records)
        self.ivr_watch = IvrWatch(self)

    # ---- life -----------------------------------------------------------------------------------
    async def start(self) -> int:
        limits = TransportLimits(message=MessageLimits(max_message_size=self.settings.max_message))
        self.endpoint = SipEndpoint(self.on_event, limits=limits)
        port = await self.endpoint.listen(self.settings.host, self.settings.port)
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.sent_by = self.settings.advertise or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        await self.load_workplaces()
        self._housekeeping = self.endpoint.loop.call_later(30.0, self._housekeep)
        self.keepalive.start(self.endpoint)
        self.ivr_watch.start()
        log.info("sip.listening", extra={"host": self.settings.host, "port": port})
        return port

    def _housekeep(self) -> None:
        """Every 30 s: expired registrations out, and legs of ended calls whose INVITE is over."""
        assert self.endpoint is not None
        self.registrar.expire(self.endpoint.now())
        reap(self.legs, lambda call: call in self.control.calls or call in self.outbound.calls)
        self._housekeeping = self.endpoint.loop.call_later(30.0, self._housekeep)

    async def close(self) -> None:
        self.keepalive.close()
        self.ivr_watch.close()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self.endpoint is not None:
            await self.endpoint.close()

    async def load_workplaces(self) -> None:
        rows = await self.distribution.pool.fetch("SELECT * FROM cc.workplaces")
        self.workplaces = {str(r["id"]): dict(r) for r in rows}
        self.workplaces.update({r["name"]: dict(r) for r in rows})
        self._by_extension = {r["extension"]: dict(r) for r in rows}

    def _workplace_by_extension(self, extension: str) -> dict[str, Any] | None:
        """The workplace row (all columns of cc.workplaces) whose extension a phone registers."""
        return self._by_extension.get(extension)

    def target_of(self, agent_id: str) -> str | None:
        """The SIP URI to ring for an agent: his workplace's registered phone, else its sip_uri."""
        try:
            workplace = self.distribution.engine.brief(agent_id)[5]
        except AcdError:
            return None
        row = self.workplaces.get(workplace or "")
        if row is None:
            return None
        assert self.endpoint is not None
        bindings = self.registrar.lookup(row["extension"], self.endpoint.now())
        return bindings[0].contact if bindings else (row["sip_uri"] or None)

    # ---- the work queue -------------------------------------------------------------------------
    def _post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._work.append((fn, args))
        if not self._pumping and not self._scheduled and self.endpoint is not None:
            self._scheduled = True
            self.endpoint.loop.call_soon(self._pump)

    def _pump(self) -> None:
        self._scheduled = False
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._work:
                fn, args = self._work.popleft()
                try:
                    fn(*args)
                except (CallError, AcdError, TransactionError, DialogError, ParseError) as exc:
                    log.warning("sip.step_failed", extra={"step": getattr(fn, "__name__", "?"), "reason": str(exc)})
        finally:
            self._pumping = False
            if self.endpoint is not None:
                self.endpoint.flush()

    def _perform(self, actions: list[Action]) -> None:
        for a in actions:
            self._work.append((self._do, (a,)))

    # ---- from the ACD (Distribution._apply) ---------------------------------------------------------
    def acd_offer(self, contact_id: str, agent_id: str) -> None:
        self._post(lambda: self._perform(self.control.offer(contact_id, agent_id, self.target_of(agent_id))))

    def acd_offer_cancelled(self, contact_id: str, agent_id: str) -> None:
        def step() -> None:
            actions = self.control.offer_cancelled(contact_id, agent_id)
            if actions:
                self.records.queued_again(contact_id)
            self._perform(actions)
        self._post(step)

    def acd_ended(self, contact_id: str, state: str) -> None:
        self._post(lambda: self._perform(self.control.acd_ended(contact_id, state)))

    def snapshot(self) -> dict:
        return {**self.records.snapshot(), "trunks": dict(self.keepalive.up)}

    def operations(self) -> list[Operation]:
        return CallOps(self).operations() + IvrOps(self).operations()

    def is_call(self, contact_id: str) -> bool:
        return contact_id in self.control.calls

    # ---- SIP events -----------------------------------------------------------------------------
    def on_event(self, ev: object, now: float) -> None:
        if isinstance(ev, IncomingRequest):
            self._request(ev, now)
        elif isinstance(ev, IncomingResponse):
            self._response(ev.response, ev.transaction, now)
        elif isinstance(ev, CancelRequested):
            self._cancel(ev, now)
        elif isinstance(ev, (TransactionTimeout, TransportFailed)):
            txn = ev.transaction
            if isinstance(txn, ClientTransaction) and isinstance(txn.context, tuple) and txn.context[0] == "keepalive":
                self.keepalive.state(txn.context[1], False)
            elif isinstance(txn, ClientTransaction) and isinstance(txn.context, tuple) and txn.context[0] == "ivr_ping":
                self.ivr_watch.answered(txn.context[1], 408 if isinstance(ev, TransactionTimeout) else 0)
            elif isinstance(txn, ClientTransaction):
                assert self.endpoint is not None
                self.endpoint.dialogs.transaction_failed(txn)
                leg = txn.context
                if isinstance(leg, Leg) and txn.is_invite and not leg.final:
                    leg.final = True
                    status = 408 if isinstance(ev, TransactionTimeout) else 503
                    self.records.leg_over(leg.id, status, "timeout" if status == 408 else "unreachable")
                    self._perform(self._handlers[leg.kind][0](leg.id, status))
        elif isinstance(ev, StrayResponse):
            self._response(ev.response, None, now)
        elif isinstance(ev, AckTimeout):
            leg = ev.dialog.context
            if isinstance(leg, Leg) and leg.kind == "caller":
                self._perform(self._safe(self.control.caller_hangup, leg.id))
        elif isinstance(ev, TransactionTerminated):
            ev.transaction.context = None   # nothing comes for it any more: no leg <-> txn cycle left
        elif isinstance(ev, Overloaded):
            assert self.endpoint is not None
            self.endpoint.layer.send(make_response(ev.request, 503, headers=[("Retry-After", "5")]), ev.peer)
        if self._work:
            self._pump()

    @staticmethod
    def _safe(fn: Callable[..., list[Action]], *args: Any) -> list[Action]:
        try:
            return fn(*args)
        except CallError:
            return []

    def _request(self, ev: IncomingRequest, now: float) -> None:
        assert self.endpoint is not None
        req, txn, peer = ev.request, ev.transaction, ev.peer
        dialogs = self.endpoint.dialogs
        if txn is None:   # an ACK for a 2xx: stops our retransmissions
            dialogs.receive_request(req, None, now)
            return
        if not self.limiter.allow(peer.host, now):
            self.stats["refused"] += 1
            self._respond(txn, make_response(req, 503, "Rate Limited", headers=[("Retry-After", "1")]), now)
            return
        method = req.method
        if req.to_tag is not None:   # in a dialog
            try:
                dialog = dialogs.receive_request(req, txn, now)
            except DialogError as exc:
                self._respond(txn, error_response(req, exc), now)
                return
            leg = dialog.context if dialog is not None else None
            if method == Method.BYE:
                self._respond(txn, make_response(req, 200), now)
                if isinstance(leg, Leg):
                    leg.ended = True
                    self.records.leg_over(leg.id, 200, "bye")
                    going = leg.kind == "ivr" and "cause=503" in (req.header("Reason") or "").replace(" ", "")
                    # (an IVR that shuts down hands its callers back: Reason: SIP;cause=503; docs/ivr.md)
                    self._perform(self._safe(self.control.ivr_lost if going else self._handlers[leg.kind][2], leg.id))
            elif method == Method.REFER and isinstance(leg, Leg) and leg.kind == "agent":
                refer.on_refer(self, leg, req, txn, now)   # the phone's transfer button (RFC 3515)
            elif method == Method.INVITE and isinstance(leg, Leg) and leg.kind == "caller":
                # a re-INVITE (hold, codec change): the media stay end to end; we keep our answer
                answer = self._last_answer(leg)
                if answer:
                    self._respond(txn, make_response(req, 200, headers=[("Contact", self._contact()),
                                                                        ("Content-Type", SDP)], body=answer), now)
                else:
                    self._respond(txn, make_response(req, 488, "Not Acceptable Here"), now)
            else:
                self._respond(txn, make_response(req, 200 if method == Method.OPTIONS else 405,
                                                 headers=[("Allow", ALLOW)]), now)
            return
        if method == Method.INVITE:
            self._new_call(req, txn, peer, now)
        elif method == Method.REGISTER:
            self._respond(txn, self.phones.register(req, peer, now), now)
        elif method == Method.OPTIONS:
            self._respond(txn, make_response(req, 200, to_tag=new_tag(), headers=[("Allow", ALLOW),
                                                                                  ("Accept", SDP)]), now)
        elif method == Method.BYE:
            self._respond(txn, make_response(req, 481, "Call/Transaction Does Not Exist", to_tag=new_tag()), now)
        else:
            self._respond(txn, make_response(req, 405, to_tag=new_tag(), headers=[("Allow", ALLOW)]), now)

    def _last_answer(self, leg: Leg) -> bytes | None:
        resp = getattr(leg.txn, "response", None)
        return resp.body if isinstance(resp, Response) and resp.status == 200 else None

    def _respond(self, txn: ServerTransaction, resp: Response, now: float) -> None:
        assert self.endpoint is not None
        try:
            self.endpoint.dialogs.respond(txn, resp, now)
        except (TransactionError, DialogError) as exc:
            log.info("sip.respond_refused", extra={"status": resp.status, "reason": str(exc)})

    def _contact(self, user: str = "cti") -> str:
        return f"<sip:{user}@{self.sent_by}>"

    def _new_call(self, req: Request, txn: ServerTransaction, peer: Peer, now: float) -> None:
        tag = new_tag()
        if not self.trunk.admits(peer.host):
            # the same answer whatever was dialled: a stranger learns nothing about our numbers
            log.warning("sip.forbidden", extra={"peer": str(peer)})
            self._respond(txn, make_response(req, 403, to_tag=tag), now)
            return
        uri = req.uri
        pilot = uri.user if isinstance(uri, SipUri) else None
        if not pilot:
            self._respond(txn, make_response(req, 404, to_tag=tag), now)
            return
        if len(self.control.calls) >= self.settings.max_calls:
            self._respond(txn, make_response(req, 503, to_tag=tag, headers=[("Retry-After", "5")]), now)
            return
        if not req.body:
            self._respond(txn, make_response(req, 488, "Not Acceptable Here (an SDP offer is required)",
                                             to_tag=tag), now)
            return
        try:
            parse_sdp(req.body)
        except SdpError as exc:
            self._respond(txn, make_response(req, exc.status, str(exc)[:100], to_tag=tag), now)
            return
        if pilot == self.settings.test_pilot:
            self._answer_test_call(req, txn, tag, now)
            return
        caller_uri = req.from_.uri
        caller = (caller_uri.user if isinstance(caller_uri, SipUri) else None) or "anonymous"
        contact_id = "s" + secrets.token_hex(8)
        leg = Leg(contact_id, "caller", txn, req, peer, tag)
        txn.context = leg
        self.legs[leg.id] = leg
        self.stats["calls"] += 1
        self.records.call_started(contact_id, caller, pilot, leg.id, str(peer))
        log.info("sip.call", extra={"call": contact_id, "pilot": pilot, "caller": caller, "peer": str(peer)})
        ivr = (self.settings.ivr_uri.replace("{pilot}", pilot)
               if self.settings.ivr_uri and pilot in self.settings.ivr_pilots else None)
        self._perform(self.control.caller_invite(contact_id, leg.id, caller, pilot, req.body, {}, ivr=ivr,
                                                 ivr_routes=self.settings.ivr_routing == "ivr"))

    def _answer_test_call(self, req: Request, txn: ServerTransaction, tag: str, now: float) -> None:
        """The test pilot: the core answers by itself (a plain UAS), to check a trunk or measure the
        SIP stack without the ACD. The caller hangs up when he likes (BYE gets 200)."""
        try:
            answer = test_answer(req.body, self.sent_by.rsplit(":", 1)[0].strip("[]"))
        except SdpError as exc:
            self._respond(txn, make_response(req, exc.status, str(exc)[:100], to_tag=tag), now)
            return
        assert self.endpoint is not None
        dialog = self.endpoint.dialogs.respond(txn, make_response(req, 200, to_tag=tag, headers=[
            ("Contact", self._contact()), ("Content-Type", SDP)], body=answer), now)
        self.stats["test_calls"] = self.stats.get("test_calls", 0) + 1
        if dialog is not None:
            dialog.context = None

    def _cancel(self, ev: CancelRequested, now: float) -> None:
        assert self.endpoint is not None
        cancel = ev.transaction.request
        if ev.invite is None:
            self._respond(ev.transaction, make_response(cancel, 481, to_tag=new_tag()), now)
            return
        leg = ev.invite.context
        self._respond(ev.transaction, make_response(cancel, 200,
                                                    to_tag=leg.tag if isinstance(leg, Leg) else new_tag()), now)
        if isinstance(leg, Leg) and not leg.final:
            leg.final = leg.ended = True
            self._respond(ev.invite, make_response(leg.invite, 487, to_tag=leg.tag), now)
            self.records.leg_over(leg.id, 487, "cancel")
            self._perform(self._safe(self.control.caller_hangup, leg.id))

    def _response(self, resp: Response, txn: ClientTransaction | None, now: float) -> None:
        assert self.endpoint is not None
        dr = self.endpoint.dialogs.receive_response(resp, txn, now)
        leg = txn.context if txn is not None else None
        if isinstance(leg, tuple) and resp.status >= 200:   # ("reinvite" | "rehold" | "keepalive", ...)
            if leg[0] == "keepalive":
                self.keepalive.state(leg[1], True)
            elif leg[0] == "ivr_ping":
                self.ivr_watch.answered(leg[1], resp.status)
            elif leg[0] == "reinvite":   # the bridge
                self._reinvite_answered(leg[1], resp, dr)
            elif 200 <= resp.status < 300 and dr is not None and dr.kind is ResponseKind.ESTABLISHED and dr.dialog:
                self._ack(dr.dialog, resp)
            elif resp.status >= 300:
                log.warning("sip.hold_refused", extra={"leg": leg[1].id, "status": resp.status})
            return
        if not isinstance(leg, Leg) or resp.cseq.method != Method.INVITE:
            if dr is not None and dr.kind is ResponseKind.ESTABLISHED and dr.dialog is not None:
                self._ack(dr.dialog, resp)   # a 2xx nobody wants (stray): ACK and BYE
                self._bye(dr.dialog, now)
            return
        status = resp.status
        if status < 200:
            if status > 100 and not leg.rang:
                leg.rang = True
                self.records.ringing(leg.id)
                if leg.kind == "agent":
                    self._perform(self._safe(self.control.agent_ringing, leg.id))
            return
        if status < 300:
            if dr is None or dr.kind is not ResponseKind.ESTABLISHED or dr.dialog is None:
                return   # a retransmission (the ACK went again) or a second fork
            leg.dialog = dr.dialog
            dr.dialog.context = leg
            if not leg.invite.body and not leg.final:
                leg.pending_ok = (dr.dialog, resp)   # a late offer: the ACK carries the other side's answer
            else:
                self._ack(dr.dialog, resp)
            if not leg.final:
                leg.final = True
                self.records.leg_answered(leg.id)
                if leg.kind == "agent":
                    self.stats["answered"] += 1
                self._perform(self._handlers[leg.kind][1](leg.id, resp.body))
            return
        if not leg.final:   # the transaction ACKed it (§17.1.1.3)
            leg.final = True
            self.records.leg_over(leg.id, status, "cancelled" if status == 487 else "rejected"
                                  if status in (486, 600, 603) else "unreachable")
            self._perform(self._handlers[leg.kind][0](leg.id, status))

    def _transfer_failed(self, leg_id: str, status: int) -> list:
        refer.transfer_done(self, leg_id.split("/")[0], status)
        return self.control.transfer_failed(leg_id, status)

    def _reinvite_answered(self, caller_leg: Leg, resp: Response, dr: Any) -> None:
        """The caller's final answer to our re-INVITE (the RFC 3725 bridge)."""
        if 200 <= resp.status < 300:
            if dr is not None and dr.kind is ResponseKind.ESTABLISHED and dr.dialog is not None:
                self._ack(dr.dialog, resp)
                self._perform(self._safe(self.control.caller_reinvite_answered, caller_leg.id, resp.body))
        else:
            refer.transfer_done(self, caller_leg.id, resp.status)
            self._perform(self._safe(self.control.caller_reinvite_failed, caller_leg.id, resp.status))

    def _rehold(self, leg: Leg, on: bool, now: float) -> None:
        """Re-offer the leg what we last sent it, every stream inactive (hold) or sendrecv, with the
        o= version bumped (RFC 3264 §8)."""
        assert self.endpoint is not None
        new = held_offer(leg.sent_sdp, on)
        if leg.dialog is None or new is None:
            return
        req = leg.dialog.new_request("INVITE", transport=leg.peer.transport.upper(), sent_by=self.sent_by, body=new,
                                     content_type=SDP)
        try:
            txn = self.endpoint.dialogs.send_request(leg.dialog, req, self._peer_of(leg.dialog), now)
        except DialogError as exc:   # an INVITE is in progress on it: glare; the agent may try again
            log.warning("sip.hold_refused", extra={"leg": leg.id, "reason": str(exc)})
            return
        txn.context = ("rehold", leg)
        leg.sent_sdp = new

    def _ack(self, dialog: Dialog, resp: Response, body: bytes = b"") -> None:
        assert self.endpoint is not None
        transport = dialog.context.peer.transport if isinstance(dialog.context, Leg) else "udp"
        ack = dialog.new_ack(resp.cseq.number, transport=transport.upper(), sent_by=self.sent_by, body=body,
                             content_type=SDP if body else None)
        self.endpoint.dialogs.send_ack(dialog, ack, self._peer_of(dialog))

    def _bye(self, dialog: Dialog, now: float) -> None:
        assert self.endpoint is not None
        transport = dialog.context.peer.transport if isinstance(dialog.context, Leg) else "udp"
        bye = dialog.new_request("BYE", transport=transport.upper(), sent_by=self.sent_by)
        self.endpoint.dialogs.send_request(dialog, bye, self._peer_of(dialog), now)

    def _peer_of(self, dialog: Dialog) -> Peer:
        """Where in-dialog requests go: the next hop's address (no DNS: IP literals only)."""
        leg = dialog.context
        uri = dialog.next_hop
        if isinstance(leg, Leg) and leg.kind == "caller":
            return leg.peer   # back where the call came from (the trunk peer; NAT-safe)
        if isinstance(uri, SipUri):
            transport = (uri.transport or (leg.peer.transport if isinstance(leg, Leg) else "udp")).lower()
            return Peer(transport, uri.host.strip("[]"), uri.port or 5060)
        assert isinstance(leg, Leg)
        return leg.peer

    # ---- performing call-control actions --------------------------------------------------------
    def _do(self, a: Action) -> None:
        assert self.endpoint is not None
        now = self.endpoint.now()
        d = self.distribution
        leg: Leg | None = self.legs.get(getattr(a, "leg", ""))
        if isinstance(a, Ring):
            if leg is not None and not leg.final and isinstance(leg.txn, ServerTransaction):
                self._respond(leg.txn, make_response(leg.invite, 180, to_tag=leg.tag,
                                                     headers=[("Contact", self._contact())]), now)
        elif isinstance(a, Answer):
            if leg is not None and not leg.final:
                leg.final = True
                leg.sent_sdp = a.sdp
                resp = make_response(leg.invite, 200, to_tag=leg.tag, headers=[("Contact", self._contact()),
                                                                               ("Content-Type", SDP)], body=a.sdp)
                assert isinstance(leg.txn, ServerTransaction)
                leg.dialog = self.endpoint.dialogs.respond(leg.txn, resp, now)
                if leg.dialog is not None:
                    leg.dialog.context = leg
                call = self.control.calls.get(a.leg)
                if call is not None and call.state.value == "connected":   # (answered by the IVR: not yet)
                    self.records.connected(a.leg, a.leg, call.agent_id)
        elif isinstance(a, Reject):
            if leg is not None and not leg.final:
                leg.final = True
                self.stats["rejected"] += 1
                assert isinstance(leg.txn, ServerTransaction)
                self._respond(leg.txn, make_response(leg.invite, a.status, a.reason, to_tag=leg.tag), now)
                self.records.leg_over(leg.id, a.status, "rejected")
        elif isinstance(a, Dial):
            kind = ("out-phone" if self.outbound.owns(a.leg) else "agent" if a.agent_id
                    else "transfer" if "/t" in a.leg else "ivr")
            self._dial(a, kind, now)
        elif isinstance(a, DialOut):
            self._dial(a, "customer", now)
        elif isinstance(a, AcdOutbound):
            self._agent_outbound(a.agent_id, a.start)
        elif isinstance(a, Cancel):
            if leg is not None and not leg.final and isinstance(leg.txn, ClientTransaction):
                self.endpoint.layer.cancel(leg.txn, now)
        elif isinstance(a, Hangup):
            if leg is not None and not leg.ended:
                leg.ended = True
                if leg.pending_ok is not None:   # answered, never ACKed: ACK first (§13.2.2.4), then BYE
                    self._ack(*leg.pending_ok)
                    leg.pending_ok = None
                if leg.dialog is not None:
                    self._bye(leg.dialog, now)
                    self.records.leg_over(leg.id, 200, "bye_sent")
                elif isinstance(leg.txn, ClientTransaction) and not leg.final:
                    self.endpoint.layer.cancel(leg.txn, now)   # not answered yet: CANCEL it
        elif isinstance(a, Reinvite):
            if leg is not None and leg.dialog is not None:
                transport = leg.peer.transport.upper()
                req = leg.dialog.new_request("INVITE", transport=transport, sent_by=self.sent_by, body=a.sdp,
                                             content_type=SDP)
                txn = self.endpoint.dialogs.send_request(leg.dialog, req, self._peer_of(leg.dialog), now)
                txn.context = ("reinvite", leg)
                leg.sent_sdp = a.sdp
        elif isinstance(a, Rehold):
            if leg is not None:
                self._rehold(leg, a.hold, now)
        elif isinstance(a, AckAnswer):
            if leg is not None and leg.pending_ok is not None:
                self._ack(*leg.pending_ok, body=a.sdp)
                leg.pending_ok = None
                leg.sent_sdp = a.sdp
                if "/t" in a.leg:   # a transfer went through: a phone that asked by REFER hears so
                    refer.transfer_done(self, a.leg.split("/")[0], 200)
                call = self.control.calls.get(a.leg.split("/")[0])
                if call is not None and call.state.value == "connected":
                    self.records.connected(call.contact_id, call.caller_leg, call.agent_id)
        elif isinstance(a, AcdEnqueue):
            try:
                d.enqueue_call(a.contact_id, a.pilot, a.caller, a.data)
            except LookupError:
                self._perform(self.control.enqueue_failed(a.contact_id, 404, "Not Found"))
            except (AcdError, ValueError) as exc:
                log.warning("sip.enqueue_failed", extra={"call": a.contact_id, "reason": str(exc)})
                self._perform(self.control.enqueue_failed(a.contact_id, 503, "Service Unavailable"))
        elif isinstance(a, AcdRinging):
            d.engine_input(lambda e, t: e.ringing(a.agent_id, a.contact_id, t), "phone:ringing")
        elif isinstance(a, AcdAccept):
            d.engine_input(lambda e, t: e.accept(a.agent_id, a.contact_id, t), "phone:answered")
        elif isinstance(a, AcdOfferFailed):
            self.records.queued_again(a.contact_id)
            d.engine_input(lambda e, t: e.offer_failed(a.agent_id, a.contact_id, t, a.kind),
                           f"phone:{a.kind.value}")
        elif isinstance(a, AcdEnd):
            d.engine_input(lambda e, t: e.end_contact(a.agent_id, a.contact_id, t), "phone:hangup")
        elif isinstance(a, AcdCancel):
            d.engine_input(lambda e, t: e.cancel(a.contact_id, t, a.reason), "caller")
        elif isinstance(a, CallEnded):
            log.info("sip.call_ended", extra={"call": a.contact_id, "cause": a.cause, "connected": a.connected})
            self.records.call_ended(a.contact_id, a.cause, a.connected)
            for key in [k for k in self.legs if k == a.contact_id or k.startswith(a.contact_id + "/")]:
                leg = self.legs[key]
                if (leg.final or leg.ended) and leg.pending_ok is None and (leg.dialog is None or leg.ended):
                    del self.legs[key]   # its transaction may still get a late final: txn.context stays
                    if leg.dialog is not None and leg.dialog.context is leg:
                        leg.dialog.context = None   # break the cycle (see _forget)
                    leg.dialog = None

    # ---- outbound calls (OUT-4; started in desktop.py) ----------------------------------------
    def _agent_outbound(self, agent_id: str, start: bool) -> None:
        """Not offered ACD contacts while on an outbound call; back to where he was afterwards."""
        d = self.distribution
        if start:
            now_state, now_reason = d.engine.brief(agent_id)[:2]
            self._before_outbound[agent_id] = (now_state.value, now_reason)
            d.engine_input(lambda e, t: e.not_ready(agent_id, t, "outbound"), "agent:outbound")
            return
        state, reason = self._before_outbound.pop(agent_id, ("not_ready", "outbound"))
        if d.engine.brief(agent_id)[:2] != (AgentState.NOT_READY, "outbound"):
            return   # he changed it himself meanwhile
        if state == "ready":
            d.engine_input(lambda e, t: e.ready(agent_id, t), "agent:outbound_end")
        else:
            d.engine_input(lambda e, t: e.not_ready(agent_id, t, reason or "outbound_end"), "agent:outbound_end")

    def _dial(self, a: Dial | DialOut, kind: str, now: float) -> None:
        assert self.endpoint is not None
        try:
            req, peer, tag = build_invite(a.target, sent_by=self.sent_by, contact=self._contact(), sdp=a.sdp,
                                          caller=a.number if isinstance(a, DialOut) else a.caller,
                                          call=a.contact_id)
        except ValueError:
            self._perform(self._handlers[kind][0](a.leg, 404))
            return
        leg = Leg(a.leg, kind, None, req, peer, tag)  # type: ignore[arg-type]
        leg.sent_sdp = a.sdp
        self.legs[a.leg] = leg
        try:
            leg.txn = self.endpoint.layer.request(req, peer, now)
        except TransactionError:
            leg.final = True
            self._perform(self._handlers[kind][0](a.leg, 503))
            return
        leg.txn.context = leg
        if kind == "agent":
            self.records.offering(a.contact_id, a.leg, a.agent_id, str(peer))
        else:
            self.records.leg_started(a.contact_id, a.leg, HISTORY_KIND[kind], a.agent_id or None, str(peer),
                                     state="ivr" if kind == "ivr" else None)
        log.info("sip.dial", extra={"call": a.contact_id, "agent": a.agent_id, "leg": a.leg, "kind": kind,
                                    "peer": str(peer)})


__all__ = ["Leg", "MissKind", "Telephony"]
