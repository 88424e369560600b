"""RTCP (RFC 3550 §6): SR/RR/SDES/BYE on the wire, report blocks per §A.3, LSR/DLSR/RTT, strict
parsing, and the §6.3 / §A.7 transmission interval."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpmedia.rtcp import (
    COMPENSATION,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    RtcpStats,
    SdesChunk,
    SdesItem,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build,
    deterministic_interval,
    dlsr_units,
    ntp_middle,
    ntp_timestamp,
    parse,
    report_block,
    round_trip,
    rtcp_interval,
    update_avg_size,
)
from rtpmedia.rtp import RtpPacket, RtpReceiver, SeqVerdict

BLOCK = ReportBlock(0xAABBCCDD, fraction_lost=0x40, cumulative_lost=-2, highest_sequence=0x10005, jitter=12,
                    lsr=0xB7052000, dlsr=0x54000)
SR_ = SenderReport(0x11223344, SenderInfo(0xE1A2B3C480000000, 0x01020304, 100, 16000), (BLOCK,))

ROUND_TRIP: list[tuple[RtcpPacket, bytes]] = [
    (SR_, bytes.fromhex("81c8000c" "11223344" "e1a2b3c480000000" "01020304" "00000064" "00003e80"
                        "aabbccdd" "40fffffe" "00010005" "0000000c" "b7052000" "00054000")),
    (ReceiverReport(0x01020304), bytes.fromhex("80c90001" "01020304")),
    (ReceiverReport(5, (ReportBlock(6, 255, 0x7FFFFF, 0xFFFFFFFF, 1, 2, 3),), extension=b"abcd"),
     bytes.fromhex("81c90008" "00000005" "00000006" "ff7fffff" "ffffffff" "00000001" "00000002" "00000003")
     + b"abcd"),
    (SourceDescription.cname_of(0x11223344, "user@host"),
     bytes.fromhex("81ca0004" "11223344" "0109") + b"user@host" + b"\x00"),
    (SourceDescription((SdesChunk(5, (SdesItem(1, b"ab"), SdesItem(6, b"x"))), SdesChunk(7))),
     bytes.fromhex("82ca0005" "00000005" "01026162" "06017800" "00000007" "00000000")),
    (SourceDescription((SdesChunk(9, (SdesItem(1, b"abc"),)),)),   # 5 item octets: 3 nulls
     bytes.fromhex("81ca0003" "00000009" "01036162" "63000000")),
    (Bye((0x11223344,), "bye"), bytes.fromhex("81cb0002" "11223344" "03627965")),
    (Bye((1, 2)), bytes.fromhex("82cb0002" "00000001" "00000002")),
    (Bye((1,), ""), bytes.fromhex("81cb0002" "00000001" "00000000")),
    (Bye((1,), "ciao"), bytes.fromhex("81cb0003" "00000001" "04636961" "6f000000")),
]


@pytest.mark.parametrize(("packet", "wire"), ROUND_TRIP)
def test_round_trip_table(packet: RtcpPacket, wire: bytes) -> None:
    assert packet.to_bytes() == wire
    assert build([packet]) == wire
    assert parse(wire, compound=False) == (packet,)


def test_compound_with_padding_on_the_last_packet() -> None:
    packets = (ReceiverReport(0x01020304), Bye((0x01020304,)))
    wire = build(packets, padding=4)
    assert wire == bytes.fromhex("80c90001" "01020304" "a1cb0002" "01020304" "00000004")
    assert parse(wire) == packets
    sr_sdes = (SR_, SourceDescription.cname_of(SR_.ssrc, "ivr@10.0.0.1"))
    assert parse(build(sr_sdes)) == sr_sdes


def test_hand_built_compound_from_the_rfc_layout() -> None:
    """SR + APP (unknown here: skipped) + SDES + BYE with 8 octets of padding, laid out field by
    field after RFC 3550 §6.4.1, §6.5, §6.6 and §6.7, not by our encoder."""
    ssrc, peer = 0xDEADBEEF, 0x01234567
    ntp_msw, ntp_lsw = 0xE8F0A1B2, 0x40000000           # x.25 s
    sr = struct.pack("!BBH", 0x80 | 0x01, 200, 12)      # V=2 P=0 RC=1, PT=SR, length 13 words - 1
    sr += struct.pack("!IIIIII", ssrc, ntp_msw, ntp_lsw, 123456, 500, 80000)
    sr += struct.pack("!I", peer) + bytes([26]) + (-3).to_bytes(3, "big", signed=True)
    sr += struct.pack("!IIII", (2 << 16) | 17, 40, 0xA1B2C3D4, 3 * 65536 + 32768)
    app = struct.pack("!BBHI4s", 0x80, 204, 2, ssrc, b"TEST")
    cname = b"alice@example.net"                          # 17 octets: 4 + 2 + 17 = 23, 1 null
    sdes = struct.pack("!BBHIBB", 0x81, 202, 6, ssrc, 1, len(cname)) + cname + b"\x00"
    reason = b"done"
    bye = struct.pack("!BBHIB", 0xA1, 203, 5, ssrc, len(reason)) + reason + bytes(3) + bytes(7) + b"\x08"
    packets = parse(sr + app + sdes + bye)
    assert len(packets) == 3
    got_sr, got_sdes, got_bye = packets
    assert isinstance(got_sr, SenderReport) and got_sr.ssrc == ssrc
    assert got_sr.sender == SenderInfo((ntp_msw << 32) | ntp_lsw, 123456, 500, 80000)
    assert got_sr.reports == (ReportBlock(peer, 26, -3, (2 << 16) | 17, 40, 0xA1B2C3D4, 3 * 65536 + 32768),)
    assert got_sr.reports[0].fraction == pytest.approx(26 / 256)
    assert isinstance(got_sdes, SourceDescription) and got_sdes.chunks[0].cname == "alice@example.net"
    assert got_bye == Bye((ssrc,), "done")


# -- report blocks from an RtpReceiver (§A.3, §A.8) --------------------------------------------------------

def _pkt(seq: int, ts: int = 0, ssrc: int = 0x99) -> RtpPacket:
    return RtpPacket(0, seq % 65536, ts % (1 << 32), ssrc)


def _feed(rx: RtpReceiver, seqs: list[int]) -> list[SeqVerdict]:
    return [rx.receive(_pkt(s), 0.0).verdict for s in seqs]


def test_fraction_and_cumulative_lost_with_losses_and_duplicates() -> None:
    rx = RtpReceiver()
    _feed(rx, [100, 101])                              # validated at 101 (§A.1: base_seq = 101)
    verdicts = _feed(rx, [102, 103, 105, 106, 106, 110])   # 104, 107..109 lost, 106 twice
    assert verdicts.count(SeqVerdict.DUPLICATE) == 1
    block = report_block(rx, 0.0)
    # expected 110 - 101 + 1 = 10, received 6: lost 4; fraction = (4 << 8) // 10
    assert (block.ssrc, block.highest_sequence, block.cumulative_lost) == (0x99, 110, 4)
    assert block.fraction_lost == (4 << 8) // 10 == 102
    _feed(rx, list(range(111, 121)))                    # a clean interval
    block = report_block(rx, 0.0)
    assert (block.fraction_lost, block.cumulative_lost, block.highest_sequence) == (0, 4, 120)
    _feed(rx, [104])                                    # a late packet: nothing new expected
    block = report_block(rx, 0.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, 3)
    _feed(rx, [122, 124])                               # 121, 123 lost of 4 expected
    assert report_block(rx, 0.0).fraction_lost == (2 << 8) // 4 == 128


def test_loss_across_sequence_wrap_and_restart() -> None:
    rx = RtpReceiver()
    _feed(rx, [65530, 65531, 65532, 65534, 0, 1, 3])     # 65533, 65535, 2 lost
    block = report_block(rx, 0.0)
    assert block.highest_sequence == 65536 + 3 == 0x00010003   # cycles in the high 16 bits
    assert block.cumulative_lost == 3 and block.fraction_lost == (3 << 8) // 9
    assert rx.take_interval() == (0, 0)
    _feed(rx, [40000, 40001, 40002])                    # a restart (§A.1): statistics afresh
    block = report_block(rx, 0.0)
    assert (block.highest_sequence, block.cumulative_lost, block.fraction_lost) == (40002, 0, 0)


def test_everything_lost_and_clamps() -> None:
    rx = RtpReceiver()
    _feed(rx, [10, 11])
    rx.take_interval()
    _feed(rx, [20])                                     # 9 expected, 1 received: 8 lost
    assert report_block(rx, 0.0).fraction_lost == (8 << 8) // 9
    rx._cycles += 1 << 24                               # as if 256 wraps went by unheard
    block = report_block(rx, 0.0)
    assert block.cumulative_lost == 0x7FFFFF            # clamped to 24-bit signed
    assert block.fraction_lost == 255                   # 256 would not fit in 8 bits
    assert block.highest_sequence == ((1 << 24) + 20) & 0xFFFFFFFF


def test_negative_cumulative_loss_is_signed_on_the_wire() -> None:
    rx = RtpReceiver()
    _feed(rx, [10, 11, 12, 10])                         # 10 counted late, before base_seq 11
    block = report_block(rx, 0.0)
    assert block.cumulative_lost == -1 and rx.lost == 0
    wire = ReceiverReport(1, (block,)).to_bytes()
    assert wire[12:16] == bytes([0]) + b"\xff\xff\xff"
    assert parse(wire) == (ReceiverReport(1, (block,)),)
    low = ReportBlock(1, cumulative_lost=-0x800000)
    assert parse(ReceiverReport(2, (low,)).to_bytes())[0] == ReceiverReport(2, (low,))


def test_jitter_is_the_receivers_estimate() -> None:
    rx = RtpReceiver()
    for i in range(40):
        rx.receive(_pkt(500 + i, ts=160 * i), i * 0.020 + (0.004 if i % 3 == 0 else 0.0))
    assert rx.jitter > 1
    assert report_block(rx, 0.0).jitter == int(rx.jitter)


def test_lsr_and_dlsr_from_the_last_sender_report() -> None:
    rx = RtpReceiver()
    _feed(rx, [1, 2])
    block = report_block(rx, 50.0)
    assert (block.lsr, block.dlsr) == (0, 0)            # no SR yet: both zero (§6.4.1)
    rx.sender_report(0xE1A2B3C4_80000000, arrival=100.0)
    rx.sender_report(0xE1A2B3C5_40000000, arrival=101.0)  # the last one counts
    block = report_block(rx, 101.25)
    assert block.lsr == 0xB3C54000 == ntp_middle(0xE1A2B3C5_40000000)
    assert block.dlsr == 16384                          # 0.25 s in 1/65536 s
    assert dlsr_units(-1.0) == 0 and dlsr_units(1e9) == 0xFFFFFFFF


def test_round_trip_example_of_rfc_3550() -> None:
    # §6.4.1 figure: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000 -> delay 0x0006:2000 = 6.125 s
    block = ReportBlock(1, lsr=0xB7052000, dlsr=0x00054000)
    assert round_trip(block, 0xB7108000 << 16) == 6.125
    assert round_trip(ReportBlock(1), 0xB7108000 << 16) is None   # no SR referred to
    assert round_trip(ReportBlock(1, lsr=0xFFFF8000, dlsr=0x8000), 0x00010000 << 16) == 1.0   # wraps
    assert round_trip(ReportBlock(1, lsr=0x10000, dlsr=0x8000), 0x17FFF << 16) == 0.0   # rounding: not < 0


def test_sr_to_rr_to_rtt_end_to_end() -> None:
    """A sends an SR at wall time t; it takes 30 ms to B, which reports 0.4 s later; the RR takes
    30 ms back: A computes an RTT of 60 ms."""
    t = 1_700_000_000.0
    sr = SenderReport(7, SenderInfo(ntp_timestamp(t), 0, 10, 1600))
    rx_b = RtpReceiver()
    _feed(rx_b, [1, 2, 3])
    rx_b.ssrc = 7
    rx_b.sender_report(sr.sender.ntp_timestamp, arrival=500.030)     # B's monotonic clock
    block = report_block(rx_b, 500.430)
    stats = RtcpStats()
    stats.note_block(block, ntp_timestamp(t + 0.460))
    assert stats.rtt_ms == pytest.approx(60.0, abs=0.1)
    assert stats.blocks_received == 1 and stats.fraction_lost == 0.0
    stats.note_block(ReportBlock(7, fraction_lost=64, cumulative_lost=9, jitter=80), ntp_timestamp(t + 1))
    assert (stats.fraction_lost, stats.cumulative_lost, stats.jitter_ms) == (0.25, 9, 10.0)
    assert stats.rtt_ms == pytest.approx(60.0, abs=0.1)  # kept: that block referred to no SR


def test_ntp_timestamp() -> None:
    assert ntp_timestamp(0.0) == 2208988800 << 32
    assert ntp_timestamp(1.5) == ((2208988800 + 1) << 32) | 0x80000000
    assert ntp_middle(ntp_timestamp(0.25)) == ((2208988800 & 0xFFFF) << 16) | 0x4000


def test_report_block_needs_a_source() -> None:
    with pytest.raises(RtcpError, match="no source"):
        report_block(RtpReceiver(), 0.0)


# -- strict parsing ---------------------------------------------------------------------------------------------

RR_HEX = "80c90001" "01020304"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "shorter than the 4-byte"),
        (bytes.fromhex("80c9"), "shorter than the 4-byte"),
        (bytes.fromhex("80c9000101"), "not a multiple of 4"),
        (bytes.fromhex("40c90001" "01020304"), "version 1"),
        (bytes.fromhex(RR_HEX + "c0cb0000"), "version 3"),
        (bytes.fromhex("80c90002" "01020304"), "runs past the end"),
        (bytes.fromhex("81c90001" "01020304"), "needs 28 bytes, has 4"),                    # RC=1, no block
        (bytes.fromhex("80c80001" "01020304"), "SR with 0 report blocks needs 24"),
        (bytes.fromhex("81ca0001" "00000001"), "not terminated"),
        (bytes.fromhex("81ca0002" "00000001" "01070000"), "runs past the end of the packet"),
        (bytes.fromhex("81ca0000"), "chunk 1 of 1 runs past"),
        (bytes.fromhex("80ca0001" "00000001"), "SDES has 4 bytes after its 0 chunks"),
        (bytes.fromhex("82cb0001" "00000001"), "BYE of 2 sources needs 8"),
        (bytes.fromhex("81cb0002" "00000001" "09616263"), "BYE reason of 9 bytes"),
        (bytes.fromhex("81cb0003" "00000001" "00000000" "00000000"), "after its reason"),
        (bytes.fromhex("81ca0003" "00000001" "01016100" "00000000"), "SDES has 4 bytes after its 1 chunks"),
    ],
)
def test_malformed_single_packets(wire: bytes, reason: str) -> None:
    with pytest.raises(RtcpError, match=reason):
        parse(wire, compound=False)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (bytes.fromhex("81ca0003" "00000009" "01036162" "63000000"), "begins with packet type 202"),
        (bytes.fromhex("a0c90002" "01020304" "00000004" + RR_HEX), "not the last of the compound"),
        (bytes.fromhex(RR_HEX + "a0cb0000"), "padding count 0"),        # no room for the count itself
        (bytes.fromhex(RR_HEX + "a0cb0001" "00000000"), "padding count 0"),
        (bytes.fromhex(RR_HEX + "a0cb0001" "00000008"), "padding count 8 is invalid"),   # beyond the packet
        (bytes.fromhex(RR_HEX + "a0cb0001" "00000003"), "padding count 3 is invalid"),   # not a multiple of 4
        (bytes.fromhex(RR_HEX + "81cb0001" "00000001" "80cb0005"), "runs past the end"),
    ],
)
def test_malformed_compounds(wire: bytes, reason: str) -> None:
    with pytest.raises(RtcpError, match=reason):
        parse(wire)


def test_bounds_on_size_and_report_blocks() -> None:
    three = ReceiverReport(1, tuple(ReportBlock(i) for i in range(3)))
    two = SenderReport(2, SenderInfo(0, 0, 0, 0), (ReportBlock(8), ReportBlock(9)))
    wire = build([three, two])
    assert len(parse(wire)) == 2
    with pytest.raises(RtcpError, match="more than 4 report blocks"):
        parse(wire, max_blocks=4)                       # counted over the whole compound
    with pytest.raises(RtcpError, match="exceeds the 64-byte limit"):
        parse(wire, max_size=64)
    big = build([ReceiverReport(1)] + [Bye(tuple(range(31)), "x" * 200)] * 14)
    assert len(big) > 4096
    with pytest.raises(RtcpError, match="exceeds"):
        parse(big)


def test_unknown_packet_types_are_skipped_and_texts_are_lenient() -> None:
    feedback = bytes.fromhex("81cd0002" "00000001" "00000002")    # RFC 4585 generic NACK
    xr = bytes.fromhex("80cf0001" "00000001")
    bye = bytes.fromhex("81cb0002" "00000001" "02ff6100")         # reason not UTF-8
    packets = parse(bytes.fromhex(RR_HEX) + feedback + xr + bye)
    assert packets == (ReceiverReport(0x01020304), Bye((1,), "\ufffda"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReportBlock(1 << 32), lambda: ReportBlock(1, fraction_lost=256),
        lambda: ReportBlock(1, cumulative_lost=0x800000), lambda: ReportBlock(1, cumulative_lost=-0x800001),
        lambda: ReportBlock(1, dlsr=-1), lambda: SenderInfo(1 << 64, 0, 0, 0),
        lambda: ReceiverReport(1, tuple(ReportBlock(i) for i in range(32))),
        lambda: ReceiverReport(1, extension=b"abc"), lambda: SdesItem(0, b""), lambda: SdesItem(1, bytes(256)),
        lambda: SourceDescription(tuple(SdesChunk(i) for i in range(32))), lambda: Bye((1,), "é" * 128),
        lambda: Bye(tuple(range(32))), lambda: build([]), lambda: build([Bye(())], padding=6),
        lambda: build([Bye(())], padding=256),
    ],
)
def test_records_validate(make: object) -> None:
    with pytest.raises(RtcpError):
        make()  # type: ignore[operator]


def test_rtcp_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError) as info:
        parse(b"\x00")
    assert isinstance(info.value, RtcpError) and "shorter" in info.value.reason


# -- the transmission interval (§6.3, §A.7) -----------------------------------------------------------------------

class FixedRandom(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_deterministic_interval() -> None:
    # a call: 2 members, ~100-octet compounds, 500 octets/s of RTCP: far below the 5 s minimum
    assert deterministic_interval(2, 2, 500.0, True, 100.0, initial=False) == 5.0
    assert deterministic_interval(2, 2, 500.0, True, 100.0, initial=True) == 2.5
    assert deterministic_interval(2, 1, 500.0, False, 100.0, False, min_time=0.2) == 0.4   # 100 * 2 / 500
    # 1000 members, 10 senders: receivers share 3/4 of the bandwidth, senders 1/4
    assert deterministic_interval(1000, 10, 500.0, False, 100.0, False) == pytest.approx(100 * 990 / 375)
    assert deterministic_interval(1000, 10, 500.0, True, 100.0, False) == 8.0            # 100 * 10 / 125
    with pytest.raises(ValueError):
        deterministic_interval(0, 0, 500.0, False, 100.0, False)


def test_interval_randomisation_bounds() -> None:
    low = rtcp_interval(2, 2, 500.0, True, 100.0, False, FixedRandom(0.0))
    high = rtcp_interval(2, 2, 500.0, True, 100.0, False, FixedRandom(0.999999))
    assert low == pytest.approx(5.0 * 0.5 / COMPENSATION) and COMPENSATION == pytest.approx(1.21828, abs=1e-5)
    assert high == pytest.approx(5.0 * 1.5 / COMPENSATION, rel=1e-5)
    initial = rtcp_interval(2, 2, 500.0, True, 100.0, True, FixedRandom(0.0))
    assert initial == pytest.approx(low / 2)
    rng = random.Random(3)
    draws = [rtcp_interval(2, 1, 500.0, True, 100.0, False, rng) for _ in range(2000)]
    assert all(d * COMPENSATION >= 2.5 for d in draws)          # at least 5 s * 0.5 before compensation
    assert min(draws) >= 2.5 / COMPENSATION and max(draws) < 7.5 / COMPENSATION
    assert sum(draws) / len(draws) == pytest.approx(5.0 / COMPENSATION, rel=0.05)   # mean: Td / (e - 3/2)
    firsts = [rtcp_interval(1, 0, 500.0, False, 100.0, True, rng) for _ in range(500)]
    assert min(firsts) >= 1.25 / COMPENSATION and max(firsts) < 3.75 / COMPENSATION


def test_average_size_update() -> None:
    assert update_avg_size(100.0, 72) == pytest.approx(100 + (72 + 28 - 100) / 16)
    assert update_avg_size(84.0, 100) == pytest.approx(84 + 44 / 16)


# -- properties ----------------------------------------------------------------------------------------------------

@given(st.binary(max_size=400))
def test_parse_raises_only_rtcp_error(data: bytes) -> None:
    try:
        parse(data)
    except RtcpError:
        pass


@given(st.lists(st.tuples(st.integers(0, 0x3F), st.sampled_from([200, 201, 202, 203, 204, 205]),
                          st.integers(0, 12), st.binary(max_size=60)), min_size=1, max_size=5),
       st.booleans())
def test_parse_raises_only_rtcp_error_on_version_2_noise(parts: list[tuple[int, int, int, bytes]],
                                                         compound: bool) -> None:
    data = b"".join(struct.pack("!BBH", 0x80 | bits, pt, length) + body for bits, pt, length, body in parts)
    try:
        parse(data, compound=compound)
    except RtcpError:
        pass


U32 = st.integers(0, 0xFFFFFFFF)
BLOCKS = st.lists(st.builds(ReportBlock, U32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF), U32, U32,
                            U32, U32), max_size=3).map(tuple)
EXTENSION = st.binary(max_size=12).map(lambda b: b[: len(b) - len(b) % 4])
REPORT = st.one_of(
    st.builds(SenderReport, U32, st.builds(SenderInfo, st.integers(0, (1 << 64) - 1), U32, U32, U32), BLOCKS,
              EXTENSION),
    st.builds(ReceiverReport, U32, BLOCKS, EXTENSION),
)
SDES = st.builds(SourceDescription, st.lists(st.builds(SdesChunk, U32, st.lists(
    st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=40)), max_size=3).map(tuple)), max_size=3).map(tuple))
BYE = st.builds(Bye, st.lists(U32, max_size=4).map(tuple),
                st.none() | st.text(max_size=40).filter(lambda t: len(t.encode()) <= 255))


@given(REPORT, st.lists(st.one_of(REPORT, SDES, BYE), max_size=4), st.sampled_from([0, 4, 8, 252]))
def test_parse_inverts_build(first: RtcpPacket, rest: list[RtcpPacket], padding: int) -> None:
    packets = (first, *rest)
    wire = build(packets, padding=padding)
    assert len(wire) % 4 == 0
    assert parse(wire) == packets
