"""RFC 4733 telephone-events: payload codec, sender plan, receiver de-duplication."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpmedia.rtp import RtpError, RtpPacket
from rtpmedia.telephone_event import (
    DigitReceived,
    EventPacket,
    TelephoneEvent,
    TelephoneEventError,
    TelephoneEventReceiver,
    TelephoneEventSender,
    digit_to_event,
    event_to_digit,
)

PAYLOADS = [
    (TelephoneEvent(5, False, 10, 400), bytes.fromhex("050a0190")),
    (TelephoneEvent(11, True, 63, 960), bytes.fromhex("0bbf03c0")),
    (TelephoneEvent(0, False, 0, 0), bytes.fromhex("00000000")),
    (TelephoneEvent(255, True, 0, 0xFFFF), bytes.fromhex("ff80ffff")),
]


@pytest.mark.parametrize(("event", "wire"), PAYLOADS)
def test_payload_round_trip(event: TelephoneEvent, wire: bytes) -> None:
    assert event.to_bytes() == wire
    assert TelephoneEvent.parse(wire) == event


def test_reserved_bit_is_ignored_and_bad_payloads_rejected() -> None:
    assert TelephoneEvent.parse(bytes.fromhex("05ca0190")) == TelephoneEvent(5, True, 10, 400)
    for wire in (b"", b"\x05\x0a\x01", b"\x05\x0a\x01\x90\x00"):
        with pytest.raises(TelephoneEventError):
            TelephoneEvent.parse(wire)
    with pytest.raises(TelephoneEventError):
        TelephoneEvent(1, volume=64)
    assert issubclass(TelephoneEventError, RtpError)


@given(st.binary(max_size=8))
def test_parse_raises_only_its_error(data: bytes) -> None:
    try:
        assert TelephoneEvent.parse(data).to_bytes()[0] == data[0]
    except TelephoneEventError:
        pass


def test_digit_mapping() -> None:
    assert [digit_to_event(d) for d in "09*#ad"] == [0, 9, 10, 11, 12, 15]
    assert event_to_digit(11) == "#" and event_to_digit(16) is None
    with pytest.raises(TelephoneEventError):
        digit_to_event("x")


def _summary(plan: list[EventPacket]) -> list[tuple[float, int, bool, bool, int]]:
    return [(p.offset_ms, p.timestamp, p.marker, p.event.end, p.event.duration) for p in plan]


def test_sender_plan_for_a_120_ms_digit() -> None:
    plan = TelephoneEventSender().packets("5", 120, start_ts=1000)
    assert _summary(plan) == [
        (50.0, 1000, True, False, 400),
        (100.0, 1000, False, False, 800),
        (120.0, 1000, False, True, 960),  # end packet, three times (§2.5.1.4)
        (140.0, 1000, False, True, 960),
        (160.0, 1000, False, True, 960),
    ]
    assert {p.event.event for p in plan} == {5} and {p.event.volume for p in plan} == {10}


def test_sender_short_digit_is_only_end_packets_first_one_marked() -> None:
    plan = TelephoneEventSender(end_spacing_ms=0).packets(11, 40, start_ts=0xFFFFFFFF)
    assert _summary(plan) == [(40.0, 0xFFFFFFFF, True, True, 320), (40.0, 0xFFFFFFFF, False, True, 320),
                              (40.0, 0xFFFFFFFF, False, True, 320)]


def test_sender_segments_long_events() -> None:
    plan = TelephoneEventSender().packets("1", 9000, start_ts=0xFFFF0000)  # 72000 units
    second_ts = (0xFFFF0000 + 0xFFFF) & 0xFFFFFFFF
    assert {p.timestamp for p in plan} == {0xFFFF0000, second_ts}
    first = [p for p in plan if p.timestamp == 0xFFFF0000]
    second = [p for p in plan if p.timestamp == second_ts]
    assert first[0].marker and not any(p.marker for p in plan[1:])
    assert first[-1].event.duration == 0xFFFF and not any(p.event.end for p in first)
    assert [p.event.end for p in second[-3:]] == [True] * 3
    assert second[-1].event.duration == 72000 - 0xFFFF
    assert all(p.event.duration <= 0xFFFF for p in plan)
    assert [p.offset_ms for p in plan] == sorted(p.offset_ms for p in plan)


def test_sender_rejects_bad_requests() -> None:
    sender = TelephoneEventSender()
    for args in (("5", 0, 0), ("5", 100, -1), ("Z", 100, 0), (256, 100, 0)):
        with pytest.raises(TelephoneEventError):
            sender.packets(*args)  # type: ignore[arg-type]


def _to_rtp(plan: list[EventPacket], seq0: int = 0) -> list[RtpPacket]:
    return [RtpPacket(101, (seq0 + i) % 65536, p.timestamp, 77, p.payload, p.marker) for i, p in enumerate(plan)]


def _run(receiver: TelephoneEventReceiver, packets: list[RtpPacket]) -> list[DigitReceived]:
    return [d for d in (receiver.receive(p) for p in packets) if d is not None]


def test_receiver_reports_once_despite_updates_and_end_triple() -> None:
    sender = TelephoneEventSender()
    packets = _to_rtp(sender.packets("5", 120, 1000) + sender.packets("#", 100, 3000))
    packets.insert(3, packets[1])  # a network duplicate too
    digits = _run(TelephoneEventReceiver(), packets)
    assert [(d.digit, d.timestamp, d.ended) for d in digits] == [("5", 1000, False), ("#", 3000, False)]


def test_receiver_same_digit_twice_is_two_events() -> None:
    sender = TelephoneEventSender()
    packets = _to_rtp(sender.packets("7", 100, 0) + sender.packets("7", 100, 1600))
    assert [d.timestamp for d in _run(TelephoneEventReceiver(), packets)] == [0, 1600]


def test_receiver_with_lost_first_packet_and_lone_end() -> None:
    sender = TelephoneEventSender()
    first = _to_rtp(sender.packets("3", 120, 500))[1:]  # marker packet lost
    second = _to_rtp(sender.packets("4", 120, 2000))[-1:]  # only the last end packet arrives
    digits = _run(TelephoneEventReceiver(), first + second)
    assert [(d.digit, d.duration, d.ended) for d in digits] == [("3", 800, False), ("4", 960, True)]


def test_receiver_drops_stale_packets_of_older_events() -> None:
    sender = TelephoneEventSender()
    one = _to_rtp(sender.packets("1", 100, 100))
    two = _to_rtp(sender.packets("2", 100, 5000))
    rx = TelephoneEventReceiver(memory=1)
    assert [d.digit for d in _run(rx, one[:1] + two[:1] + one[1:] + two[1:])] == ["1", "2"]


def test_receiver_long_event_reported_once() -> None:
    packets = _to_rtp(TelephoneEventSender().packets("9", 20000, 42))
    digits = _run(TelephoneEventReceiver(), packets)
    assert [(d.digit, d.timestamp) for d in digits] == [("9", 42)]
