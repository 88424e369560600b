"""B2BUA call control: the caller's leg, the agent's leg and the ACD — without SIP, without I/O.

The core is a signalling-only back-to-back user agent (ARCHITECTURE.md, Telephony model). A SIP
adapter turns messages into *leg events* (sippy's call-control events: try, ring, connect, fail,
disconnect) and performs the *actions* this core returns; the ACD adapter turns the engine's
offers into events here and performs the ``Acd*`` actions. The core never reads a clock.

A call is one contact of the ACD (its id is the contact id). Its life::

    caller INVITE ──> QUEUED ──ACD offer──> OFFERING ──agent 200──> CONNECTED ──BYE either side──> ENDED
     (180 to the       ^   (INVITE to the     |  agent fails / ring timeout:     (200 to the caller with
      caller, enqueue)  └── agent's phone) <──┘  back to QUEUED, the ACD offers   the agent's SDP)
                                                 the next agent

* The caller hears ringback (180, no SDP) from the moment he is queued until an agent answers; then
  he gets the agent's answer (200 with the agent phone's SDP: media flow end to end, we never touch
  RTP).
* The ring timeout is the ACD's (one source of truth): its ``CancelOffer`` becomes a CANCEL of the
  agent leg. A final error from the agent's phone is a miss of the kind :func:`miss_kind` says.
* Races are settled here: an agent's 200 that crosses our CANCEL (or arrives after the caller left)
  is answered with ACK + BYE (``Hangup``), never connected; a caller who hangs up while the agent's
  phone rings gets the agent leg cancelled and the contact abandoned in the ACD.

Leg ids are the adapter's for the caller leg; for agent legs the core makes them
(``<contact>/<n>``), so every INVITE to a phone has its own id even for the same agent twice.

**Through an IVR first** (pilots routed to the IVR): the caller's INVITE goes on to the IVR
(``<contact>/ivr``) with his SDP; the IVR's answer answers him (he talks to the IVR: state IVR) and
the contact enters the ACD. The offer to an agent is then an INVITE *without* SDP (RFC 3725, flow
I): the phone's 200 carries an offer, which goes to the caller in a re-INVITE (state BRIDGING);
the caller's answer goes back to the phone in the ACK, the IVR leg is released, and the call is
connected. A caller who refuses the re-INVITE ends the call (the agent's leg is ACKed and ended).
An IVR that *routes* (our ivr-engine) decides itself when and where the call is queued
(:meth:`CallControl.ivr_route`, SimProt ``ivr.route``) or transfers it (:meth:`CallControl.ivr_transfer`);
if the ACD lets go of such a call (a callback was chosen, the queue gave up) the caller stays with
the IVR, which tells him and hangs up. A plain IVR (any SIP UAS) only plays: its caller enters the
ACD by the entry rules as soon as it answers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from ..acd import MissKind


class CallState(enum.Enum):
    __hash__ = object.__hash__
    IVR = "ivr"               # the caller talks to the IVR (the contact may be queued meanwhile)
    QUEUED = "queued"         # the caller hears ringback; no agent leg (or a failed one) yet
    OFFERING = "offering"     # an agent's phone is being called
    BRIDGING = "bridging"     # the phone answered (with an offer); re-INVITE to the caller under way
    TRANSFERRING = "transferring"   # connected; the transfer target is being called (blind transfer)
    CONNECTED = "connected"   # caller and agent talk
    ENDED = "ended"


# ---- actions for the SIP adapter ------------------------------------------------------------------

class Ring(NamedTuple):
    """Send 180 Ringing (no SDP) to the caller."""
    leg: str


class Answer(NamedTuple):
    """Send 200 OK with ``sdp`` to the caller."""
    leg: str
    sdp: bytes


class Reject(NamedTuple):
    """Answer the caller's INVITE with a final error (before it was answered)."""
    leg: str
    status: int
    reason: str


class Dial(NamedTuple):
    """Send an INVITE to the agent's phone at ``target`` with the caller's SDP offer."""
    leg: str
    contact_id: str
    agent_id: str
    target: str
    caller: str
    sdp: bytes


class Reinvite(NamedTuple):
    """Send a re-INVITE with ``sdp`` (the agent phone's offer) to the caller's leg."""
    leg: str
    sdp: bytes


class AckAnswer(NamedTuple):
    """ACK the agent leg's 200 (its late offer) with ``sdp``, the caller's answer (RFC 3725)."""
    leg: str
    sdp: bytes


class Rehold(NamedTuple):
    """Re-offer a connected leg the session it has, with every stream ``inactive`` (hold) or
    ``sendrecv`` again (unhold); the adapter keeps what it last sent on each leg (RFC 3264 §8.4)."""
    leg: str
    hold: bool


class Cancel(NamedTuple):
    """CANCEL the agent leg's INVITE (it has not been answered; a 200 that crosses it gets Hangup)."""
    leg: str


class Hangup(NamedTuple):
    """End an answered leg with BYE (for an agent leg whose 200 just arrived: ACK first, then BYE)."""
    leg: str


# ---- actions for the ACD adapter ------------------------------------------------------------------

class AcdEnqueue(NamedTuple):
    contact_id: str
    pilot: str
    caller: str
    data: dict


class AcdCancel(NamedTuple):
    contact_id: str
    reason: str


class AcdRinging(NamedTuple):
    agent_id: str
    contact_id: str


class AcdAccept(NamedTuple):
    agent_id: str
    contact_id: str


class AcdOfferFailed(NamedTuple):
    agent_id: str
    contact_id: str
    kind: MissKind


class AcdEnd(NamedTuple):
    agent_id: str
    contact_id: str


class CallEnded(NamedTuple):
    """The call is over (for history and events): who ended it and how."""
    contact_id: str
    cause: str      # "caller_hangup", "agent_hangup", "abandoned", "rejected:<status>", "acd:<state>", ...
    connected: bool


Action = (Ring | Answer | Reject | Dial | Reinvite | AckAnswer | Rehold | Cancel | Hangup | AcdEnqueue | AcdCancel
          | AcdRinging | AcdAccept | AcdOfferFailed | AcdEnd | CallEnded)


class CallError(Exception):
    """An event that names no live call or leg (a late message): nothing changed."""


def miss_kind(status: int) -> MissKind:
    """What a final error from an agent's phone counts as (TEL-4): the phone refused (busy here,
    busy everywhere, decline) is a rejection; anything else — not found, unavailable, timeout,
    server errors, transport failures (we use 503 for those) — means the workplace could not be
    reached. A ring timeout is the ACD's NO_ANSWER and never arrives here."""
    return MissKind.REJECTED if status in (486, 600, 603) else MissKind.UNREACHABLE


@dataclass(slots=True)
class Call:
    contact_id: str
    caller_leg: str
    caller: str
    pilot: str
    offer: bytes                           # the caller's SDP offer (sent to each agent phone)
    state: CallState = CallState.QUEUED
    agent_leg: str | None = None           # the current agent leg (ringing or connected)
    agent_id: str | None = None
    dials: int = 0                         # agent legs made so far (numbers the leg ids)
    stale: set[str] = field(default_factory=set)   # agent legs we cancelled, whose outcome is moot
    ivr_leg: str | None = None             # the leg to the IVR (through-IVR calls only)
    enqueued: bool = False
    transfer_leg: str | None = None        # the leg to a blind-transfer target, while it is set up
    transferred: bool = False              # the caller now talks to a transfer target, not an agent
    held: bool = False
    answered_by_ivr: bool = False
    ivr_routes: bool = False               # the IVR decides where the call goes (SimProt ``ivr.route``)


class CallControl:
    """The calls in progress and the decisions; every method returns the actions to perform."""

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self._by_leg: dict[str, Call] = {}

    # ---- the caller ---------------------------------------------------------------------------
    def caller_invite(self, contact_id: str, leg: str, caller: str, pilot: str, sdp: bytes,
                      data: dict | None = None, ivr: str | None = None, ivr_routes: bool = False) -> list[Action]:
        """A new call to a pilot: ringback, and into the ACD (the entry rules choose the project);
        with ``ivr`` (the IVR's URI), to the IVR first. With ``ivr_routes`` the IVR queues the call
        itself (:meth:`ivr_route`); without, the entry rules do when the IVR answers."""
        if contact_id in self.calls or leg in self._by_leg:
            raise CallError(f"call {contact_id} / leg {leg} exists")
        call = Call(contact_id, leg, caller, pilot, sdp)
        self.calls[contact_id] = call
        self._by_leg[leg] = call
        if ivr:
            call.state, call.ivr_leg = CallState.IVR, f"{contact_id}/ivr"
            call.ivr_routes = ivr_routes
            self._by_leg[call.ivr_leg] = call
            return [Ring(leg), Dial(call.ivr_leg, contact_id, "", ivr, caller, sdp)]
        call.enqueued = True
        return [Ring(leg), AcdEnqueue(contact_id, pilot, caller, dict(data or {}))]

    # ---- the IVR --------------------------------------------------------------------------------
    def ivr_answered(self, leg: str, sdp: bytes) -> list[Action]:
        """The IVR answered: the caller talks to it. A plain IVR's contact enters the ACD now (entry
        rules); an IVR that routes waits until it asks (:meth:`ivr_route`)."""
        call = self._leg(leg)
        if leg != call.ivr_leg or call.enqueued or call.answered_by_ivr:
            return []
        call.answered_by_ivr = True
        if call.ivr_routes:
            return [Answer(call.caller_leg, sdp)]
        call.enqueued = True
        return [Answer(call.caller_leg, sdp), AcdEnqueue(call.contact_id, call.pilot, call.caller, {"ivr": True})]

    def ivr_route(self, contact_id: str) -> Call:
        """The IVR asks to queue its caller (the adapter enqueues; on failure it calls
        :meth:`ivr_unroute`). Only a call talking to the IVR, not queued already, not moving."""
        call = self._call(contact_id)
        if not call.ivr_routes or call.ivr_leg is None or not call.answered_by_ivr:
            raise CallError(f"call {contact_id} is not talking to a routing IVR")
        if call.state is not CallState.IVR or call.enqueued:
            raise CallError(f"call {contact_id} is {'queued' if call.enqueued else call.state.value}")
        call.enqueued = True
        return call

    def ivr_unroute(self, contact_id: str) -> None:
        call = self.calls.get(contact_id)
        if call is not None:
            call.enqueued = False

    def ivr_transfer(self, contact_id: str, target: str) -> list[Action]:
        """The IVR hands its caller to ``target`` (not queued: the IVR cancels first): the target is
        called without SDP, its offer goes to the caller by re-INVITE, then the IVR leg is released.
        If it fails the caller stays with the IVR."""
        call = self._call(contact_id)
        if call.state is not CallState.IVR or call.ivr_leg is None or call.enqueued or not call.answered_by_ivr:
            raise CallError(f"call {contact_id} is {'queued' if call.enqueued else call.state.value}: only a "
                            "call talking to the IVR, not queued, is transferred by it")
        call.dials += 1
        leg = f"{contact_id}/t{call.dials}"
        call.state, call.transfer_leg = CallState.TRANSFERRING, leg
        self._by_leg[leg] = call
        return [Dial(leg, contact_id, "", target, call.caller, b"")]

    def ivr_failed(self, leg: str, status: int) -> list[Action]:
        call = self._by_leg.pop(leg, None)
        if call is None or leg != call.ivr_leg or call.enqueued:
            return []
        call.ivr_leg = None
        return self._end(call, f"ivr_failed:{status}", [Reject(call.caller_leg, 480, "Temporarily Unavailable")])

    def ivr_hangup(self, leg: str) -> list[Action]:
        """The IVR ended the call (BYE) before an agent took it: the caller is released."""
        call = self._by_leg.get(leg)
        if call is None or leg != call.ivr_leg:
            self._by_leg.pop(leg, None)
            return []
        call.ivr_leg = None
        self._by_leg.pop(leg, None)
        out: list[Action] = [Hangup(call.caller_leg)]
        if call.state is CallState.OFFERING and call.agent_leg is not None:
            out.append(Cancel(call.agent_leg))
            call.stale.add(call.agent_leg)
        elif call.state is CallState.TRANSFERRING and call.transfer_leg is not None:
            out.append(Hangup(call.transfer_leg))
        if call.enqueued:
            out.append(AcdCancel(call.contact_id, "ivr_hangup"))
        return self._end(call, "ivr_hangup", out)

    def enqueue_failed(self, contact_id: str, status: int, reason: str) -> list[Action]:
        """The ACD refused the call (no project for the pilot: 404; overloaded: 503)."""
        call = self._call(contact_id)
        end: Action = Hangup(call.caller_leg) if call.answered_by_ivr else Reject(call.caller_leg, status, reason)
        if call.ivr_leg is not None and call.answered_by_ivr:
            return self._end(call, f"rejected:{status}", [end, Hangup(call.ivr_leg)])
        return self._end(call, f"rejected:{status}", [end])

    def ivr_lost(self, leg: str) -> list[Action]:
        """The IVR no longer knows the call (481 to our in-dialog OPTIONS, or no answer at all): it
        restarted or died. No caller is dropped for it: a queued one stays queued (he gets his agent,
        without the waiting treatment), one still in the IVR's menus is queued by the entry rules as
        a plain IVR's would be. The IVR leg gets a BYE anyway (an IVR that is stuck, not gone)."""
        call = self._by_leg.get(leg)
        if call is None or leg != call.ivr_leg or not call.answered_by_ivr:
            return []
        self._by_leg.pop(leg, None)
        call.ivr_leg = None
        out: list[Action] = [Hangup(leg)]
        if call.state is CallState.IVR and not call.enqueued:
            call.enqueued = True
            out.append(AcdEnqueue(call.contact_id, call.pilot, call.caller, {"ivr_lost": True}))
        return out

    def caller_hangup(self, leg: str) -> list[Action]:
        """CANCEL or BYE from the caller (the adapter answers them itself)."""
        call = self._leg(leg)
        if leg != call.caller_leg:
            raise CallError(f"{leg} is not a caller leg")
        if call.state is CallState.CONNECTED or call.state is CallState.TRANSFERRING:
            done: list[Action] = [Hangup(call.agent_leg)] if call.agent_leg is not None else []
            if call.transfer_leg is not None:
                done.append(Hangup(call.transfer_leg))
            if call.ivr_leg is not None:   # (transferring away from the IVR)
                done.append(Hangup(call.ivr_leg))
            if call.agent_id is not None:
                done.append(AcdEnd(call.agent_id, call.contact_id))
            return self._end(call, "caller_hangup", done)
        out: list[Action] = []
        if call.ivr_leg is not None:
            out.append(Hangup(call.ivr_leg))
        if call.state is CallState.OFFERING and call.agent_leg is not None:
            out.append(Cancel(call.agent_leg))
            call.stale.add(call.agent_leg)
        elif call.state is CallState.BRIDGING and call.agent_leg is not None:
            out.append(Hangup(call.agent_leg))   # answered but not yet ACKed: ACK, then BYE
        if call.enqueued:
            out.append(AcdCancel(call.contact_id, "abandoned"))
        return self._end(call, "abandoned", out)

    # ---- the ACD --------------------------------------------------------------------------------
    def offer(self, contact_id: str, agent_id: str, target: str | None) -> list[Action]:
        """The ACD offers the call to an agent: call his phone (no phone: unreachable at once)."""
        call = self._call(contact_id)
        if call.state not in (CallState.QUEUED, CallState.IVR) or call.agent_leg is not None:
            raise CallError(f"call {contact_id} is {call.state.value}, not queued")
        if not target:
            return [AcdOfferFailed(agent_id, contact_id, MissKind.UNREACHABLE)]
        call.dials += 1
        leg = f"{contact_id}/{call.dials}"
        call.state, call.agent_leg, call.agent_id = CallState.OFFERING, leg, agent_id
        self._by_leg[leg] = call
        # through the IVR the caller already has a session: the phone makes the offer (RFC 3725)
        return [Dial(leg, contact_id, agent_id, target, call.caller, b"" if call.answered_by_ivr else call.offer)]

    def offer_cancelled(self, contact_id: str, agent_id: str) -> list[Action]:
        """The ACD withdrew the offer (ring timeout, the agent went not ready, the contact left):
        cancel the phone's INVITE; the call waits for the next offer."""
        call = self.calls.get(contact_id)
        if call is None or call.state is not CallState.OFFERING or call.agent_id != agent_id:
            return []   # already settled here (the phone failed first, or the caller left)
        assert call.agent_leg is not None
        leg = call.agent_leg
        call.stale.add(leg)
        call.agent_leg, call.agent_id = None, None
        call.state = CallState.IVR if call.answered_by_ivr else CallState.QUEUED
        return [Cancel(leg)]

    def acd_ended(self, contact_id: str, why: str) -> list[Action]:
        """The ACD ended the contact on its own (overflowed with no target, ended from the agent's
        desktop): release whatever legs are up."""
        call = self.calls.get(contact_id)
        if call is None or call.transferred:   # after a transfer the call goes on without the ACD
            return []
        out: list[Action] = []
        if call.ivr_routes and call.ivr_leg is not None and call.state in (CallState.IVR, CallState.OFFERING):
            # a routing IVR keeps its caller (a callback was chosen, the queue gave up): it says so
            if call.state is CallState.OFFERING and call.agent_leg is not None:
                out.append(Cancel(call.agent_leg))
                call.stale.add(call.agent_leg)
            call.agent_leg = call.agent_id = None
            call.state, call.enqueued = CallState.IVR, False
            return out
        if call.ivr_leg is not None:
            out.append(Hangup(call.ivr_leg))
        if call.state is CallState.CONNECTED or call.state is CallState.IVR:
            out.append(Hangup(call.caller_leg))
            if call.agent_leg is not None:
                out.append(Hangup(call.agent_leg))
        else:
            if call.state is CallState.OFFERING and call.agent_leg is not None:
                out.append(Cancel(call.agent_leg))
                call.stale.add(call.agent_leg)
            out.append(Reject(call.caller_leg, 480, "Temporarily Unavailable"))
        return self._end(call, f"acd:{why}", out)

    # ---- the agent's phone ----------------------------------------------------------------------
    def agent_ringing(self, leg: str) -> list[Action]:
        call = self._leg(leg)
        if leg != call.agent_leg or call.state is not CallState.OFFERING:
            return []
        assert call.agent_id is not None
        return [AcdRinging(call.agent_id, call.contact_id)]

    def agent_answered(self, leg: str, sdp: bytes) -> list[Action]:
        """200 from the phone (the adapter ACKs it): connect the caller — or, if this leg is no
        longer wanted, hang it up."""
        call = self._by_leg.get(leg)
        if call is None or leg != call.agent_leg or call.state is not CallState.OFFERING:
            self._by_leg.pop(leg, None)
            return [Hangup(leg)]
        assert call.agent_id is not None
        if call.answered_by_ivr:   # the phone's late offer goes to the caller (RFC 3725 flow I)
            call.state = CallState.BRIDGING
            return [Reinvite(call.caller_leg, sdp)]
        call.state = CallState.CONNECTED
        return [Answer(call.caller_leg, sdp), AcdAccept(call.agent_id, call.contact_id)]

    # ---- hold -----------------------------------------------------------------------------------
    def hold(self, contact_id: str, on: bool) -> list[Action]:
        """The agent puts the caller on hold (both sides stop sending: both legs get the session
        re-offered ``inactive``) or takes him off it. Holding a held call changes nothing."""
        call = self._call(contact_id)
        if call.state is not CallState.CONNECTED or call.agent_leg is None or call.transferred:
            raise CallError(f"call {contact_id} is {call.state.value}: only a connected call is held")
        if call.held == on:
            return []
        call.held = on
        return [Rehold(call.caller_leg, on), Rehold(call.agent_leg, on)]

    # ---- blind transfer -------------------------------------------------------------------------
    def transfer(self, contact_id: str, target: str) -> list[Action]:
        """The agent hands the connected caller to ``target`` (blind): the target is called without
        SDP; its offer goes to the caller in a re-INVITE; once the caller answered, the agent's leg
        is released (the agent goes to wrap-up) and the caller talks to the target. If the target
        fails, or the caller refuses, the caller stays with the agent."""
        call = self._call(contact_id)
        if call.state is not CallState.CONNECTED or call.agent_id is None or call.held:
            raise CallError(f"call {contact_id} is {call.state.value}{' (held)' if call.held else ''}: only a "
                            "connected call that is not on hold is transferred")
        call.dials += 1
        leg = f"{contact_id}/t{call.dials}"
        call.state, call.transfer_leg = CallState.TRANSFERRING, leg
        self._by_leg[leg] = call
        return [Dial(leg, contact_id, "", target, call.caller, b"")]

    def transfer_answered(self, leg: str, sdp: bytes) -> list[Action]:
        call = self._by_leg.get(leg)
        if call is None or leg != call.transfer_leg or call.state is not CallState.TRANSFERRING:
            self._by_leg.pop(leg, None)
            return [Hangup(leg)]
        return [Reinvite(call.caller_leg, sdp)]

    def transfer_failed(self, leg: str, status: int) -> list[Action]:
        call = self._by_leg.pop(leg, None)
        if call is None or leg != call.transfer_leg:
            return []
        call.transfer_leg = None
        if call.ivr_leg is not None and call.agent_leg is None:   # the IVR's transfer: back to the IVR
            call.state = CallState.IVR
            return []
        call.state = CallState.CONNECTED   # back with the agent
        if call.agent_leg is None:          # ... who already left: nobody is there for the caller
            return self._end(call, f"transfer_failed:{status}", [Hangup(call.caller_leg)])
        return []

    def transfer_hangup(self, leg: str) -> list[Action]:
        """BYE from the transfer target: after the transfer it ends the call; before, it is a failure."""
        call = self._by_leg.get(leg)
        if call is None or leg != call.agent_leg or not call.transferred:
            return self.transfer_failed(leg, 0)
        return self._end(call, "target_hangup", [Hangup(call.caller_leg)])

    def caller_reinvite_answered(self, leg: str, sdp: bytes) -> list[Action]:
        """The caller's 200 to our re-INVITE: his answer goes to the phone in the ACK; the IVR
        leg is released; the call is connected. (For a transfer: to the target; the agent's leg
        is released.)"""
        call = self._leg(leg)
        if call.state is CallState.TRANSFERRING and leg == call.caller_leg and call.transfer_leg is not None:
            old, agent = call.agent_leg, call.agent_id
            if old is not None:
                self._by_leg.pop(old, None)
            call.agent_leg, call.transfer_leg, call.agent_id = call.transfer_leg, None, None
            call.state, call.transferred = CallState.CONNECTED, True
            out: list[Action] = [AckAnswer(call.agent_leg, sdp)]
            if old is not None:
                out.append(Hangup(old))
            if call.ivr_leg is not None:   # the IVR's transfer: the IVR leg is released
                out.append(Hangup(call.ivr_leg))
                self._by_leg.pop(call.ivr_leg, None)
                call.ivr_leg = None
            if agent is not None:
                out.append(AcdEnd(agent, call.contact_id))
            return out
        if call.state is not CallState.BRIDGING or leg != call.caller_leg:
            return []
        assert call.agent_leg is not None and call.agent_id is not None
        ivr, call.ivr_leg = call.ivr_leg, None
        call.state = CallState.CONNECTED
        if ivr is None:   # (the IVR was lost meanwhile: nothing to release)
            return [AckAnswer(call.agent_leg, sdp), AcdAccept(call.agent_id, call.contact_id)]
        self._by_leg.pop(ivr, None)
        return [AckAnswer(call.agent_leg, sdp), Hangup(ivr), AcdAccept(call.agent_id, call.contact_id)]

    def caller_reinvite_failed(self, leg: str, status: int) -> list[Action]:
        """The caller refused our re-INVITE: the call cannot be bridged; everything is released.
        (For a transfer: the target's leg is released and the caller stays with the agent.)"""
        call = self._leg(leg)
        if call.state is CallState.TRANSFERRING and leg == call.caller_leg and call.transfer_leg is not None:
            target, call.transfer_leg = call.transfer_leg, None
            self._by_leg.pop(target, None)
            if call.ivr_leg is not None and call.agent_leg is None:   # the IVR's transfer: back to the IVR
                call.state = CallState.IVR
                return [AckAnswer(target, b""), Hangup(target)]
            call.state = CallState.CONNECTED
            if call.agent_leg is None:
                return self._end(call, f"transfer_failed:{status}", [AckAnswer(target, b""), Hangup(target),
                                                                     Hangup(call.caller_leg)])
            return [AckAnswer(target, b""), Hangup(target)]
        if call.state is not CallState.BRIDGING or leg != call.caller_leg:
            return []
        assert call.agent_leg is not None
        out: list[Action] = [AckAnswer(call.agent_leg, b""), Hangup(call.agent_leg), Hangup(call.caller_leg)]
        if call.ivr_leg is not None:
            out.append(Hangup(call.ivr_leg))
        out.append(AcdCancel(call.contact_id, f"bridge_failed:{status}"))
        return self._end(call, f"bridge_failed:{status}", out)

    def agent_failed(self, leg: str, status: int) -> list[Action]:
        """A final error from the phone (or 408 for a transaction timeout, 503 for a transport
        failure). After our CANCEL (487) it is moot; else a miss and the ACD offers again."""
        call = self._by_leg.pop(leg, None)
        if call is None:
            return []
        if leg in call.stale or leg != call.agent_leg or call.state is not CallState.OFFERING:
            call.stale.discard(leg)
            return []
        assert call.agent_id is not None
        agent = call.agent_id
        call.agent_leg, call.agent_id = None, None
        call.state = CallState.IVR if call.answered_by_ivr else CallState.QUEUED
        return [AcdOfferFailed(agent, call.contact_id, miss_kind(status))]

    def agent_hangup(self, leg: str) -> list[Action]:
        """BYE from the agent's phone."""
        call = self._by_leg.get(leg)
        if call is None or leg != call.agent_leg or call.state not in (CallState.CONNECTED, CallState.BRIDGING,
                                                                       CallState.TRANSFERRING):
            self._by_leg.pop(leg, None)
            return []
        assert call.agent_id is not None
        if call.state is CallState.TRANSFERRING:   # a blind transfer: the agent may leave at once
            agent = call.agent_id
            self._by_leg.pop(leg, None)
            call.agent_leg = call.agent_id = None
            return [AcdEnd(agent, call.contact_id)]
        if call.state is CallState.BRIDGING:   # hung up before the bridge completed
            out: list[Action] = [Hangup(call.caller_leg)]
            if call.ivr_leg is not None:
                out.append(Hangup(call.ivr_leg))
            return self._end(call, "agent_hangup", out + [AcdCancel(call.contact_id, "agent_hangup")])
        return self._end(call, "agent_hangup", [Hangup(call.caller_leg), AcdEnd(call.agent_id, call.contact_id)])

    # ---- helpers --------------------------------------------------------------------------------
    def _end(self, call: Call, cause: str, out: list[Action]) -> list[Action]:
        connected = call.state is CallState.CONNECTED
        call.state = CallState.ENDED
        del self.calls[call.contact_id]
        self._by_leg.pop(call.caller_leg, None)
        if call.agent_leg is not None and call.agent_leg not in call.stale:
            self._by_leg.pop(call.agent_leg, None)
        if call.transfer_leg is not None:
            self._by_leg.pop(call.transfer_leg, None)
        if call.ivr_leg is not None:
            self._by_leg.pop(call.ivr_leg, None)
        out.append(CallEnded(call.contact_id, cause, connected))
        return out

    def _call(self, contact_id: str) -> Call:
        call = self.calls.get(contact_id)
        if call is None:
            raise CallError(f"no call {contact_id}")
        return call

    def _leg(self, leg: str) -> Call:
        call = self._by_leg.get(leg)
        if call is None:
            raise CallError(f"no leg {leg}")
        return call

    def leg_of(self, leg: str) -> Call | None:
        return self._by_leg.get(leg)
