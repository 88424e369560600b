"""RTP packets (RFC 3550 §5.1), the sender, and the receiver's §A.1 / §A.8 logic."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpmedia.rtp import (
    MAX_PACKET_SIZE,
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiver,
    RtpSender,
    SeqVerdict,
)

ROUND_TRIP = [
    (
        RtpPacket(0, 1, 160, 0x12345678, b"\xff" * 160, marker=True),
        bytes.fromhex("80800001000000a012345678") + b"\xff" * 160,
    ),
    (
        RtpPacket(8, 0xFFFF, 0xFFFFFFFF, 1, b"ab", csrcs=(7, 9)),
        bytes.fromhex("8208ffffffffffff00000001" "00000007" "00000009") + b"ab",
    ),
    (
        RtpPacket(101, 5, 6, 7, b"\x01\x02\x03\x04", extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00")),
        bytes.fromhex("9065000500000006" "00000007" "bede0001" "10aa0000" "01020304"),
    ),
    (
        RtpPacket(0, 2, 3, 4, b"x", padding=3),
        bytes.fromhex("a0000002000000030000000478000003"),
    ),
    (RtpPacket(127, 0, 0, 0), bytes.fromhex("807f0000" "00000000" "00000000")),
]


@pytest.mark.parametrize(("packet", "wire"), ROUND_TRIP)
def test_round_trip_table(packet: RtpPacket, wire: bytes) -> None:
    assert packet.to_bytes() == wire
    assert RtpPacket.parse(wire) == packet


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x80\x00\x00", "shorter than the 12-byte"),
        (bytes.fromhex("400000000000000000000000"), "version 1"),
        (bytes.fromhex("810000000000000000000000"), "CSRC count 1"),
        (bytes.fromhex("900000000000000000000000"), "header extension runs past"),
        (bytes.fromhex("900000000000000000000000bede0002aaaaaaaa"), "2 words"),
        (bytes.fromhex("a00000000000000000000000"), "padding count 0"),
        (bytes.fromhex("a000000000000000000000007805"), "padding count 5"),
        (b"\x80" + bytes(MAX_PACKET_SIZE), "exceeds"),
    ],
)
def test_parse_errors_name_the_reason(wire: bytes, reason: str) -> None:
    with pytest.raises(RtpError, match=reason):
        RtpPacket.parse(wire)


@pytest.mark.parametrize(
    "kwargs",
    [dict(payload_type=128), dict(sequence=65536), dict(timestamp=-1), dict(ssrc=1 << 32),
     dict(csrcs=tuple(range(16))), dict(padding=256)],
)
def test_record_validates_fields(kwargs: dict[str, int]) -> None:
    fields: dict[str, object] = dict(payload_type=0, sequence=0, timestamp=0, ssrc=0)
    fields.update(kwargs)
    with pytest.raises(RtpError):
        RtpPacket(**fields)  # type: ignore[arg-type]


@given(st.binary(max_size=300))
def test_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except RtpError:
        return
    assert RtpPacket.parse(packet.to_bytes()) == packet


@given(st.binary(min_size=12, max_size=200).map(lambda b: bytes([0x80 | (b[0] & 0x3F)]) + b[1:]))
def test_parse_raises_only_rtp_error_on_version_2_noise(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
    except RtpError:
        pass


def test_sender_numbers_frames_and_wraps() -> None:
    sender = RtpSender(ssrc=42, payload_type=0, seq=65534, ts=0xFFFFFF00)
    packets = [sender.audio_frame(b"\xff" * 160) for _ in range(4)]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]
    assert [p.marker for p in packets] == [True, False, False, False]
    assert {p.ssrc for p in packets} == {42}


def test_sender_marks_first_packet_after_silence() -> None:
    sender = RtpSender(ssrc=1, payload_type=8, seq=10, ts=1000)
    first = sender.audio_frame(b"")
    sender.skip_frames(3)
    after = sender.audio_frame(b"")
    assert first.marker and after.marker
    assert after.sequence == 11  # no sequence gap for silence (RFC 3551 §4.1)
    assert after.timestamp == 1000 + 4 * 160


def test_sender_random_initial_values_and_shared_sequence_space() -> None:
    sender = RtpSender(ssrc=1, payload_type=0, rng=random.Random(7))
    seq, ts = sender.sequence, sender.timestamp
    event = sender.packet(b"\x05\x0a\x01\x90", payload_type=101, timestamp=ts, marker=True)
    frame = sender.audio_frame(b"")
    assert (event.sequence, frame.sequence) == (seq, (seq + 1) % 65536)
    assert sender.timestamp == (ts + 160) % (1 << 32)
    assert RtpSender(ssrc=1, payload_type=0, clock_rate=16000, ptime=30).samples_per_frame == 480
    with pytest.raises(RtpError):
        RtpSender(ssrc=1, payload_type=0, clock_rate=8000, ptime=0)


def _pkt(seq: int, ts: int = 0, ssrc: int = 9) -> RtpPacket:
    return RtpPacket(0, seq % 65536, ts % (1 << 32), ssrc)


def _feed(receiver: RtpReceiver, seqs: list[int]) -> list[SeqVerdict]:
    return [receiver.receive(_pkt(s), 0.0).verdict for s in seqs]


def test_probation_then_wrap_extends_sequence() -> None:
    rx = RtpReceiver()
    assert rx.receive(_pkt(65533), 0.0).verdict is SeqVerdict.PROBATION
    results = [rx.receive(_pkt(s), 0.0) for s in (65534, 65535, 0, 1)]
    assert [r.extended_sequence for r in results] == [65534, 65535, 65536, 65537]
    assert rx.received == 4 and rx.lost == 0 and rx.expected == 4


def test_probation_restarts_on_out_of_order_start() -> None:
    rx = RtpReceiver()
    assert _feed(rx, [100, 300, 301, 302]) == [
        SeqVerdict.PROBATION, SeqVerdict.PROBATION, SeqVerdict.ACCEPTED, SeqVerdict.ACCEPTED,
    ]


def test_duplicates_and_reordering() -> None:
    rx = RtpReceiver()
    verdicts = _feed(rx, [1, 2, 3, 5, 4, 5, 3, 6])
    assert verdicts == [
        SeqVerdict.PROBATION, SeqVerdict.ACCEPTED, SeqVerdict.ACCEPTED, SeqVerdict.ACCEPTED,
        SeqVerdict.ACCEPTED, SeqVerdict.DUPLICATE, SeqVerdict.DUPLICATE, SeqVerdict.ACCEPTED,
    ]
    assert rx.duplicates == 2 and rx.received == 5 and rx.lost == 0
    assert rx.receive(_pkt(4), 0.0).verdict is SeqVerdict.DUPLICATE


def test_loss_is_counted() -> None:
    rx = RtpReceiver()
    _feed(rx, [10, 11, 12, 15, 16, 20])
    assert rx.expected == 10 and rx.received == 6 - 1 and rx.lost == 5


def test_big_jump_resyncs_after_two_in_sequence() -> None:
    rx = RtpReceiver()
    _feed(rx, [1000, 1001, 1002])
    assert rx.receive(_pkt(40000), 0.0).verdict is SeqVerdict.BAD_JUMP
    assert rx.receive(_pkt(1003), 0.0).verdict is SeqVerdict.ACCEPTED  # old stream goes on
    assert rx.receive(_pkt(40010), 0.0).verdict is SeqVerdict.BAD_JUMP
    restart = rx.receive(_pkt(40011), 0.0)
    assert restart.verdict is SeqVerdict.ACCEPTED and restart.extended_sequence == 40011
    assert rx.receive(_pkt(40012), 0.0).extended_sequence == 40012
    assert rx.received == 2 and rx.lost == 0  # statistics restart with the source


def test_late_packet_far_behind_is_not_a_jump() -> None:
    rx = RtpReceiver()
    _feed(rx, [500, 501, 502])
    assert rx.receive(_pkt(450), 0.0).verdict is SeqVerdict.ACCEPTED  # within MAX_MISORDER


def test_other_ssrc_is_refused() -> None:
    rx = RtpReceiver()
    rx.receive(_pkt(1, ssrc=5), 0.0)
    assert rx.ssrc == 5
    assert rx.receive(_pkt(2, ssrc=6), 0.0).verdict is SeqVerdict.WRONG_SSRC


def test_jitter_on_alternating_arrivals() -> None:
    # Packets 20 ms apart in media time; every other one arrives 5 ms late, so each transit
    # difference is 40 timestamp units and J follows J += (40 - J) / 16 (§A.8).
    rx = RtpReceiver(clock_rate=8000)
    arrivals = [i * 0.020 + (0.005 if i % 2 else 0.0) for i in range(60)]
    for i, arrival in enumerate(arrivals):
        rx.receive(_pkt(100 + i, ts=5000 + 160 * i), arrival)
    expected = 0.0
    for _ in range(58):  # two probation packets, so 59 accepted and 58 differences
        expected += (40 - expected) / 16
    assert rx.jitter == pytest.approx(expected, rel=1e-6)
    assert rx.jitter_seconds == pytest.approx(expected / 8000)


def test_jitter_zero_for_perfect_pacing_across_timestamp_wrap() -> None:
    rx = RtpReceiver()
    for i in range(10):
        rx.receive(_pkt(i, ts=(1 << 32) - 480 + 160 * i), i * 0.020)
    assert rx.jitter == pytest.approx(0.0, abs=1e-6)
