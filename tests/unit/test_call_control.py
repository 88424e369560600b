"""The B2BUA call-control core: every path of a call, and the races between phones, callers and the ACD."""

from __future__ import annotations

import pytest

from ctiserver.acd import MissKind
from ctiserver.calls.control import (
    AcdAccept,
    AcdCancel,
    AcdEnd,
    AcdEnqueue,
    AcdOfferFailed,
    AcdRinging,
    AckAnswer,
    Answer,
    CallControl,
    CallEnded,
    CallError,
    CallState,
    Cancel,
    Dial,
    Hangup,
    Rehold,
    Reinvite,
    Reject,
    Ring,
    miss_kind,
)

SDP_A, SDP_B = b"v=0 caller", b"v=0 agent"


def queued(cc: CallControl, cid: str = "k1") -> list:
    return cc.caller_invite(cid, "in1", "420271004245", "200", SDP_A, {"lang": "cs"})


def test_a_call_rings_back_is_offered_answered_and_hung_up_by_the_caller() -> None:
    cc = CallControl()
    assert queued(cc) == [Ring("in1"), AcdEnqueue("k1", "200", "420271004245", {"lang": "cs"})]
    assert cc.offer("k1", "agent1", "sip:agent1@127.0.0.1:5091") == [
        Dial("k1/1", "k1", "agent1", "sip:agent1@127.0.0.1:5091", "420271004245", SDP_A)]
    assert cc.agent_ringing("k1/1") == [AcdRinging("agent1", "k1")]
    assert cc.agent_answered("k1/1", SDP_B) == [Answer("in1", SDP_B), AcdAccept("agent1", "k1")]
    assert cc.calls["k1"].state is CallState.CONNECTED
    assert cc.caller_hangup("in1") == [Hangup("k1/1"), AcdEnd("agent1", "k1"), CallEnded("k1", "caller_hangup", True)]
    assert cc.calls == {} and cc.leg_of("in1") is None and cc.leg_of("k1/1") is None


def test_the_agent_hangs_up() -> None:
    cc = CallControl()
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    cc.agent_answered("k1/1", SDP_B)
    assert cc.agent_hangup("k1/1") == [Hangup("in1"), AcdEnd("agent1", "k1"), CallEnded("k1", "agent_hangup", True)]
    assert cc.agent_hangup("k1/1") == []   # a retransmitted BYE after the end: nothing


@pytest.mark.parametrize(("status", "kind"), [(486, MissKind.REJECTED), (603, MissKind.REJECTED),
                                              (600, MissKind.REJECTED), (480, MissKind.UNREACHABLE),
                                              (404, MissKind.UNREACHABLE), (408, MissKind.UNREACHABLE),
                                              (503, MissKind.UNREACHABLE)])
def test_a_failing_phone_is_a_miss_and_the_call_waits_again(status: int, kind: MissKind) -> None:
    cc = CallControl()
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    assert cc.agent_failed("k1/1", status) == [AcdOfferFailed("agent1", "k1", kind)]
    assert cc.calls["k1"].state is CallState.QUEUED
    assert cc.offer("k1", "agent2", "sip:b@h")[0].leg == "k1/2"   # the next agent, a new leg
    assert miss_kind(status) is kind


def test_ring_timeout_cancels_the_phone_and_its_487_is_not_a_miss() -> None:
    cc = CallControl()
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    assert cc.offer_cancelled("k1", "agent1") == [Cancel("k1/1")]
    assert cc.agent_failed("k1/1", 487) == []
    assert cc.offer_cancelled("k1", "agent1") == []   # twice: already settled


def test_a_200_crossing_our_cancel_is_hung_up_not_connected() -> None:
    cc = CallControl()
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    cc.offer_cancelled("k1", "agent1")
    cc.offer("k1", "agent2", "sip:b@h")
    assert cc.agent_answered("k1/1", SDP_B) == [Hangup("k1/1")]
    assert cc.calls["k1"].state is CallState.OFFERING and cc.calls["k1"].agent_id == "agent2"
    assert cc.agent_answered("k1/2", SDP_B) == [Answer("in1", SDP_B), AcdAccept("agent2", "k1")]


def test_the_caller_hangs_up_while_the_phone_rings() -> None:
    cc = CallControl()
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    assert cc.caller_hangup("in1") == [Cancel("k1/1"), AcdCancel("k1", "abandoned"),
                                       CallEnded("k1", "abandoned", False)]
    assert cc.offer_cancelled("k1", "agent1") == []   # the ACD's own CancelOffer that follows
    assert cc.agent_answered("k1/1", SDP_B) == [Hangup("k1/1")]   # answered anyway: ACK + BYE
    assert cc.leg_of("k1/1") is None


def test_the_caller_hangs_up_while_queued() -> None:
    cc = CallControl()
    queued(cc)
    assert cc.caller_hangup("in1") == [AcdCancel("k1", "abandoned"), CallEnded("k1", "abandoned", False)]


def test_no_phone_for_the_agent_is_unreachable_at_once() -> None:
    cc = CallControl()
    queued(cc)
    assert cc.offer("k1", "agent1", None) == [AcdOfferFailed("agent1", "k1", MissKind.UNREACHABLE)]
    assert cc.calls["k1"].state is CallState.QUEUED


def test_enqueue_refused_and_acd_endings() -> None:
    cc = CallControl()
    queued(cc)
    assert cc.enqueue_failed("k1", 404, "Not Found") == [Reject("in1", 404, "Not Found"),
                                                        CallEnded("k1", "rejected:404", False)]
    queued(cc, "k2")
    cc.offer("k2", "agent1", "sip:a@h")
    assert cc.acd_ended("k2", "overflowed") == [Cancel("k2/1"), Reject("in1", 480, "Temporarily Unavailable"),
                                                CallEnded("k2", "acd:overflowed", False)]
    cc.caller_invite("k3", "in3", "1", "200", SDP_A)
    cc.offer("k3", "agent1", "sip:a@h")
    cc.agent_answered("k3/1", SDP_B)
    assert cc.acd_ended("k3", "ended") == [Hangup("in3"), Hangup("k3/1"), CallEnded("k3", "acd:ended", True)]
    assert cc.acd_ended("nope", "ended") == []


def test_late_and_wrong_events_are_errors_or_ignored() -> None:
    cc = CallControl()
    with pytest.raises(CallError):
        cc.caller_hangup("nope")
    queued(cc)
    with pytest.raises(CallError):
        queued(cc)                       # the same contact twice
    with pytest.raises(CallError):
        cc.caller_hangup("k1/1")         # not a leg yet
    cc.offer("k1", "agent1", "sip:a@h")
    with pytest.raises(CallError):
        cc.offer("k1", "agent2", "sip:b@h")   # already offering
    with pytest.raises(CallError):
        cc.caller_hangup("k1/1")         # an agent leg is not a caller leg
    assert cc.agent_ringing("k1/1") == [AcdRinging("agent1", "k1")]
    assert cc.agent_failed("zz", 486) == []


# ==== through the IVR: the RFC 3725 re-INVITE bridge ================================================

SDP_IVR = b"v=0 ivr"


def via_ivr(cc: CallControl) -> list:
    return cc.caller_invite("k1", "in1", "420271004245", "100", SDP_A, ivr="sip:ivr@127.0.0.1:5070")


def test_through_the_ivr_then_bridged_to_the_agent() -> None:
    cc = CallControl()
    assert via_ivr(cc) == [Ring("in1"), Dial("k1/ivr", "k1", "", "sip:ivr@127.0.0.1:5070", "420271004245", SDP_A)]
    assert cc.ivr_answered("k1/ivr", SDP_IVR) == [Answer("in1", SDP_IVR),
                                                  AcdEnqueue("k1", "100", "420271004245", {"ivr": True})]
    assert cc.calls["k1"].state is CallState.IVR
    # the offer to the phone carries no SDP: the phone makes the offer
    assert cc.offer("k1", "agent1", "sip:a@h") == [Dial("k1/1", "k1", "agent1", "sip:a@h", "420271004245", b"")]
    assert cc.agent_answered("k1/1", SDP_B) == [Reinvite("in1", SDP_B)]
    assert cc.calls["k1"].state is CallState.BRIDGING
    assert cc.caller_reinvite_answered("in1", b"v=0 answer") == [
        AckAnswer("k1/1", b"v=0 answer"), Hangup("k1/ivr"), AcdAccept("agent1", "k1")]
    assert cc.calls["k1"].state is CallState.CONNECTED and cc.leg_of("k1/ivr") is None
    assert cc.agent_hangup("k1/1") == [Hangup("in1"), AcdEnd("agent1", "k1"), CallEnded("k1", "agent_hangup", True)]


def test_ivr_failures_and_hangups() -> None:
    cc = CallControl()
    via_ivr(cc)
    assert cc.ivr_failed("k1/ivr", 503) == [Reject("in1", 480, "Temporarily Unavailable"),
                                            CallEnded("k1", "ivr_failed:503", False)]
    via_ivr(cc)
    cc.ivr_answered("k1/ivr", SDP_IVR)
    cc.offer("k1", "agent1", "sip:a@h")
    assert cc.ivr_hangup("k1/ivr") == [Hangup("in1"), Cancel("k1/1"), AcdCancel("k1", "ivr_hangup"),
                                       CallEnded("k1", "ivr_hangup", False)]
    via_ivr(cc)
    cc.ivr_answered("k1/ivr", SDP_IVR)
    assert cc.caller_hangup("in1") == [Hangup("k1/ivr"), AcdCancel("k1", "abandoned"),
                                       CallEnded("k1", "abandoned", False)]


def test_a_ring_timeout_in_the_ivr_keeps_the_caller_with_the_ivr() -> None:
    cc = CallControl()
    via_ivr(cc)
    cc.ivr_answered("k1/ivr", SDP_IVR)
    cc.offer("k1", "agent1", "sip:a@h")
    assert cc.offer_cancelled("k1", "agent1") == [Cancel("k1/1")]
    assert cc.calls["k1"].state is CallState.IVR
    assert cc.offer("k1", "agent2", "sip:b@h")[0].leg == "k1/2"


def test_the_caller_refuses_the_bridge() -> None:
    cc = CallControl()
    via_ivr(cc)
    cc.ivr_answered("k1/ivr", SDP_IVR)
    cc.offer("k1", "agent1", "sip:a@h")
    cc.agent_answered("k1/1", SDP_B)
    assert cc.caller_reinvite_failed("in1", 488) == [
        AckAnswer("k1/1", b""), Hangup("k1/1"), Hangup("in1"), Hangup("k1/ivr"), AcdCancel("k1", "bridge_failed:488"),
        CallEnded("k1", "bridge_failed:488", False)]


# ==== blind transfer ===================================================================================

def connected(cc: CallControl) -> None:
    queued(cc)
    cc.offer("k1", "agent1", "sip:a@h")
    cc.agent_answered("k1/1", SDP_B)


def test_blind_transfer_to_a_number() -> None:
    cc = CallControl()
    connected(cc)
    assert cc.transfer("k1", "sip:271004245@pbx") == [Dial("k1/t2", "k1", "", "sip:271004245@pbx", "420271004245",
                                                            b"")]
    assert cc.calls["k1"].state is CallState.TRANSFERRING
    assert cc.transfer_answered("k1/t2", b"v=0 target") == [Reinvite("in1", b"v=0 target")]
    assert cc.caller_reinvite_answered("in1", b"v=0 answer") == [AckAnswer("k1/t2", b"v=0 answer"), Hangup("k1/1"),
                                                                 AcdEnd("agent1", "k1")]
    call = cc.calls["k1"]
    assert call.state is CallState.CONNECTED and call.transferred and call.agent_id is None
    assert cc.transfer_hangup("k1/t2") == [Hangup("in1"), CallEnded("k1", "target_hangup", True)]


def test_transfer_fails_and_the_caller_stays_with_the_agent() -> None:
    cc = CallControl()
    connected(cc)
    cc.transfer("k1", "sip:x@pbx")
    assert cc.transfer_failed("k1/t2", 486) == [] and cc.calls["k1"].state is CallState.CONNECTED
    cc.transfer("k1", "sip:x@pbx")
    cc.transfer_answered("k1/t3", b"v=0 t")
    assert cc.caller_reinvite_failed("in1", 488) == [AckAnswer("k1/t3", b""), Hangup("k1/t3")]
    assert cc.calls["k1"].agent_id == "agent1"
    assert cc.caller_hangup("in1") == [Hangup("k1/1"), AcdEnd("agent1", "k1"), CallEnded("k1", "caller_hangup", True)]


def test_the_agent_leaves_during_a_blind_transfer() -> None:
    cc = CallControl()
    connected(cc)
    cc.transfer("k1", "sip:x@pbx")
    assert cc.agent_hangup("k1/1") == [AcdEnd("agent1", "k1")]
    assert cc.transfer_answered("k1/t2", b"v=0 t") == [Reinvite("in1", b"v=0 t")]
    assert cc.caller_reinvite_answered("in1", b"a") == [AckAnswer("k1/t2", b"a")]
    cc2 = CallControl()
    connected(cc2)
    cc2.transfer("k1", "sip:x@pbx")
    cc2.agent_hangup("k1/1")
    assert cc2.transfer_failed("k1/t2", 404) == [Hangup("in1"), CallEnded("k1", "transfer_failed:404", True)]
    with pytest.raises(CallError):
        CallControl().transfer("nope", "sip:x@pbx")


def test_the_acd_ending_the_contact_after_a_transfer_leaves_the_call_up() -> None:
    cc = CallControl()
    connected(cc)
    cc.transfer("k1", "sip:x@pbx")
    cc.transfer_answered("k1/t2", b"v=0 t")
    cc.caller_reinvite_answered("in1", b"a")
    assert cc.acd_ended("k1", "ended") == [] and cc.calls["k1"].state is CallState.CONNECTED


def test_hold_and_unhold_reoffer_both_legs() -> None:
    cc = CallControl()
    connected(cc)
    assert cc.hold("k1", True) == [Rehold("in1", True), Rehold("k1/1", True)]
    assert cc.hold("k1", True) == []                       # already held
    with pytest.raises(CallError):
        cc.transfer("k1", "sip:x@pbx")                      # not while held
    assert cc.hold("k1", False) == [Rehold("in1", False), Rehold("k1/1", False)]
    cc.caller_invite("k2", "in2", "1", "200", SDP_A)
    with pytest.raises(CallError):
        cc.hold("k2", True)                                 # not connected
