"""Agent-initiated outbound calls (OUT-4): the phone first, then the customer (RFC 3725 flow I)."""

from __future__ import annotations

import pytest

from ctiserver.calls.control import AckAnswer, CallEnded, CallError, Cancel, Dial, Hangup
from ctiserver.calls.outbound import AcdOutbound, DialOut, OutboundCalls, OutState

PHONE, CUSTOMER = "sip:agent1@127.0.0.1:5091", "sip:271004245@10.0.0.1"
OFFER, ANSWER = b"v=0 phone", b"v=0 customer"


def started(o: OutboundCalls) -> list:
    return o.dial("o1", "agent1", PHONE, "271004245", CUSTOMER)


def test_phone_then_customer_then_connected_and_hung_up() -> None:
    o = OutboundCalls()
    assert started(o) == [AcdOutbound("agent1", "o1", True), Dial("o1/1", "o1", "agent1", PHONE, "271004245", b"")]
    assert o.phone_answered("o1/1", OFFER) == [DialOut("o1", "o1", "agent1", CUSTOMER, "271004245", OFFER)]
    assert o.customer_answered("o1", ANSWER) == [AckAnswer("o1/1", ANSWER)]
    assert o.calls["o1"].state is OutState.CONNECTED
    assert o.customer_hangup("o1") == [Hangup("o1/1"), AcdOutbound("agent1", "o1", False),
                                       CallEnded("o1", "customer_hangup", True)]
    assert o.calls == {} and not o.owns("o1") and not o.owns("o1/1")


def test_failures_and_hangups() -> None:
    o = OutboundCalls()
    started(o)
    assert o.phone_failed("o1/1", 486) == [AcdOutbound("agent1", "o1", False), CallEnded("o1", "phone:486", False)]
    started(o)
    o.phone_answered("o1/1", OFFER)
    assert o.customer_failed("o1", 404) == [AckAnswer("o1/1", b""), Hangup("o1/1"),
                                            AcdOutbound("agent1", "o1", False), CallEnded("o1", "customer:404", False)]
    started(o)
    o.phone_answered("o1/1", OFFER)
    assert o.phone_hangup("o1/1") == [Cancel("o1"), AcdOutbound("agent1", "o1", False),
                                      CallEnded("o1", "agent_hangup", False)]
    assert o.customer_answered("o1", ANSWER) == [Hangup("o1")]   # too late: ACK and BYE


def test_one_outbound_call_per_agent_and_desktop_hangup() -> None:
    o = OutboundCalls()
    started(o)
    with pytest.raises(CallError):
        o.dial("o2", "agent1", PHONE, "1", CUSTOMER)
    assert o.hangup("o1") == [Cancel("o1/1"), AcdOutbound("agent1", "o1", False), CallEnded("o1", "cancelled", False)]
    with pytest.raises(CallError):
        o.hangup("o1")
    started(o)
    o.phone_answered("o1/1", OFFER)
    o.customer_answered("o1", ANSWER)
    assert o.hangup("o1") == [Hangup("o1"), Hangup("o1/1"), AcdOutbound("agent1", "o1", False),
                              CallEnded("o1", "agent_hangup", True)]
