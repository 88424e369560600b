"""A routing IVR (ivr-engine) in the call-control core: it queues the caller itself, keeps him when
the ACD lets go, and can transfer him away."""

from __future__ import annotations

import pytest

from ctiserver.acd import MissKind
from ctiserver.calls.control import (
    AcdAccept,
    AcdCancel,
    AcdEnqueue,
    AcdOfferFailed,
    AckAnswer,
    Answer,
    CallControl,
    CallEnded,
    CallError,
    CallState,
    Cancel,
    Dial,
    Hangup,
    Reinvite,
    Ring,
)

SDP_A, SDP_IVR, SDP_T = b"v=0 caller", b"v=0 ivr", b"v=0 target"
IVR = "sip:100@127.0.0.1:5070"


def talking_to_ivr(cc: CallControl) -> None:
    assert cc.caller_invite("k1", "in1", "420271004245", "100", SDP_A, ivr=IVR, ivr_routes=True) == [
        Ring("in1"), Dial("k1/ivr", "k1", "", IVR, "420271004245", SDP_A)]
    # the IVR answers: the caller talks to it, and nothing enters the ACD yet
    assert cc.ivr_answered("k1/ivr", SDP_IVR) == [Answer("in1", SDP_IVR)]
    assert cc.ivr_answered("k1/ivr", SDP_IVR) == []   # a retransmitted 200 changes nothing
    assert cc.calls["k1"].state is CallState.IVR and not cc.calls["k1"].enqueued


def test_the_ivr_routes_the_call_and_it_is_bridged_to_the_agent() -> None:
    cc = CallControl()
    with pytest.raises(CallError, match="no call k1"):
        cc.ivr_route("k1")
    talking_to_ivr(cc)
    call = cc.ivr_route("k1")
    assert call.enqueued
    with pytest.raises(CallError, match="queued"):
        cc.ivr_route("k1")
    assert cc.offer("k1", "agent1", "sip:agent1@127.0.0.1:5091") == [
        Dial("k1/1", "k1", "agent1", "sip:agent1@127.0.0.1:5091", "420271004245", b"")]
    assert cc.agent_answered("k1/1", b"v=0 phone") == [Reinvite("in1", b"v=0 phone")]
    assert cc.caller_reinvite_answered("in1", b"v=0 answer") == [
        AckAnswer("k1/1", b"v=0 answer"), Hangup("k1/ivr"), AcdAccept("agent1", "k1")]


def test_a_refused_route_can_be_retried() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    cc.ivr_route("k1")
    cc.ivr_unroute("k1")   # the ACD refused (no such project): the IVR may try again
    assert cc.ivr_route("k1").enqueued


def test_a_plain_ivr_cannot_route() -> None:
    cc = CallControl()
    cc.caller_invite("k1", "in1", "420271004245", "100", SDP_A, ivr=IVR)
    cc.ivr_answered("k1/ivr", SDP_IVR)
    with pytest.raises(CallError, match="not talking to a routing IVR"):
        cc.ivr_route("k1")


def test_when_the_acd_lets_go_the_caller_stays_with_the_ivr() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    cc.ivr_route("k1")
    assert cc.acd_ended("k1", "callback") == []   # the IVR confirms the callback and hangs up
    assert cc.calls["k1"].state is CallState.IVR and not cc.calls["k1"].enqueued
    cc.ivr_route("k1")
    cc.offer("k1", "agent1", "sip:agent1@127.0.0.1:5091")
    # ended while the phone rings: the phone is cancelled, the caller is back with the IVR
    assert cc.acd_ended("k1", "overflowed") == [Cancel("k1/1")]
    assert cc.calls["k1"].state is CallState.IVR and cc.calls["k1"].agent_leg is None
    assert cc.agent_failed("k1/1", 487) == []   # the cancelled phone's 487 is moot
    # the IVR hangs up: not queued, so nothing to cancel in the ACD
    assert cc.ivr_hangup("k1/ivr") == [Hangup("in1"), CallEnded("k1", "ivr_hangup", False)]


def test_the_caller_leaves_while_queued_by_the_ivr() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    cc.ivr_route("k1")
    assert cc.caller_hangup("in1") == [Hangup("k1/ivr"), AcdCancel("k1", "abandoned"),
                                       CallEnded("k1", "abandoned", False)]


def test_the_ivr_transfers_its_caller() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    assert cc.ivr_transfer("k1", "sip:800123456@127.0.0.1:5099") == [
        Dial("k1/t1", "k1", "", "sip:800123456@127.0.0.1:5099", "420271004245", b"")]
    assert cc.transfer_answered("k1/t1", SDP_T) == [Reinvite("in1", SDP_T)]
    assert cc.caller_reinvite_answered("in1", b"v=0 answer") == [AckAnswer("k1/t1", b"v=0 answer"),
                                                                 Hangup("k1/ivr")]
    assert cc.calls["k1"].state is CallState.CONNECTED and cc.calls["k1"].transferred
    assert cc.transfer_hangup("k1/t1") == [Hangup("in1"), CallEnded("k1", "target_hangup", True)]


def test_a_failed_ivr_transfer_leaves_the_caller_with_the_ivr() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    cc.ivr_route("k1")
    with pytest.raises(CallError, match="queued"):
        cc.ivr_transfer("k1", "sip:1@127.0.0.1")   # a queued caller is cancelled first
    cc.acd_ended("k1", "abandoned")
    cc.ivr_transfer("k1", "sip:1@127.0.0.1")
    assert cc.transfer_failed("k1/t1", 486) == []
    assert cc.calls["k1"].state is CallState.IVR
    cc.ivr_transfer("k1", "sip:1@127.0.0.1")
    cc.transfer_answered("k1/t2", SDP_T)
    # the caller refuses the re-INVITE: the target is released, he stays with the IVR
    assert cc.caller_reinvite_failed("in1", 488) == [AckAnswer("k1/t2", b""), Hangup("k1/t2")]
    assert cc.calls["k1"].state is CallState.IVR
    cc.ivr_transfer("k1", "sip:1@127.0.0.1")
    # the caller hangs up while the target rings: both the target and the IVR are released
    assert cc.caller_hangup("in1") == [Hangup("k1/t3"), Hangup("k1/ivr"), CallEnded("k1", "caller_hangup", False)]


def test_a_lost_ivr_drops_no_caller() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    # in the menus: queued by the entry rules, the IVR leg released
    assert cc.ivr_lost("k1/ivr") == [Hangup("k1/ivr"), AcdEnqueue("k1", "100", "420271004245", {"ivr_lost": True})]
    assert cc.ivr_lost("k1/ivr") == []
    # offered later: the phone makes the offer and the caller (answered by the IVR) is re-INVITEd
    assert cc.offer("k1", "agent1", "sip:agent1@127.0.0.1:5091") == [
        Dial("k1/1", "k1", "agent1", "sip:agent1@127.0.0.1:5091", "420271004245", b"")]
    assert cc.agent_failed("k1/1", 486) == [AcdOfferFailed("agent1", "k1", MissKind.REJECTED)]
    assert cc.calls["k1"].state is CallState.IVR   # (the caller is still answered: no ringback state)
    cc.offer("k1", "agent1", "sip:agent1@127.0.0.1:5091")
    assert cc.agent_answered("k1/2", b"v=0 phone") == [Reinvite("in1", b"v=0 phone")]
    assert cc.caller_reinvite_answered("in1", b"v=0 answer") == [AckAnswer("k1/2", b"v=0 answer"),
                                                                 AcdAccept("agent1", "k1")]


def test_a_lost_ivr_leaves_a_queued_caller_queued_and_an_unroutable_one_is_hung_up() -> None:
    cc = CallControl()
    talking_to_ivr(cc)
    cc.ivr_route("k1")
    assert cc.ivr_lost("k1/ivr") == [Hangup("k1/ivr")]   # queued already: he keeps his place
    cc2 = CallControl()
    talking_to_ivr(cc2)
    cc2.ivr_lost("k1/ivr")
    # no entry rule for the pilot: the caller was answered, so he gets a BYE (not an error response)
    assert cc2.enqueue_failed("k1", 404, "Not Found") == [Hangup("in1"), CallEnded("k1", "rejected:404", False)]
