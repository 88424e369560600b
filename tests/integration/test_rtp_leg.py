"""Media legs over real UDP on loopback: in-band DTMF and RFC 4733 digits arrive, once each; many legs
on one shared MediaClock; on_played and barge-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from rtpmedia import tones
from rtpmedia.clock import MediaClock
from rtpmedia.leg import MediaLeg, open_leg, open_rtcp
from rtpmedia.rtp import RtpPacket
from rtpmedia.tones import DIGITS, sequence


async def test_two_legs_exchange_inband_and_rfc4733_digits() -> None:
    got: list[tuple[str, str]] = []
    b = await open_leg(("127.0.0.1", 0), ("127.0.0.1", 9), on_digit=lambda d, src: got.append((d, src)))
    assert b.transport is not None
    b_port = b.transport.get_extra_info("sockname")[1]
    a = await open_leg(("127.0.0.1", 0), ("127.0.0.1", b_port), payload_type=0)
    try:
        a.play(sequence("159", tone_ms=60, gap_ms=60))   # in-band, PCMU
        deadline = asyncio.get_running_loop().time() + 3
        while len(got) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        a.send_digit("7", duration_ms=120)
        while len(got) < 4 and asyncio.get_running_loop().time() < deadline + 2:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)   # the end packets and any duplicate would have arrived by now
        assert got == [("1", "inband"), ("5", "inband"), ("9", "inband"), ("7", "rfc4733")]
        assert b.received > 10 and b.remote[1] == a.transport.get_extra_info("sockname")[1]   # symmetric RTP
        assert a.late_frames == 0
    finally:
        a.close()
        b.close()


# -- the shared MediaClock over real UDP ---------------------------------------------------------------

class Sink(asyncio.DatagramProtocol):
    """A bare receiver: every datagram with its arrival time."""

    def __init__(self) -> None:
        self.got: list[tuple[float, RtpPacket]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((time.monotonic(), RtpPacket.parse(data)))


async def sink() -> tuple[asyncio.DatagramTransport, Sink, int]:
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    return transport, proto, transport.get_extra_info("sockname")[1]


async def wait_for(cond: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        await asyncio.sleep(0.01)


async def test_on_played_once_and_barge_in_over_udp() -> None:
    tr, rx, port = await sink()
    played: list[float] = []
    a = await open_leg(("127.0.0.1", 0), ("127.0.0.1", port), on_played=lambda: played.append(time.monotonic()))
    try:
        a.play(tones.dtmf("1", 200))                       # 10 frames
        await wait_for(lambda: bool(played), 2.0)
        await asyncio.sleep(0.1)
        assert len(rx.got) == 10 and len(played) == 1 and not a.playing
        assert played[0] >= rx.got[-1][0] - 0.005           # after the last frame went out
        a.play(tones.speech_like(1.0, np.random.default_rng(1)), loop=True)
        await asyncio.sleep(0.1)
        a.stop()                                            # barge-in
        await asyncio.sleep(0.005)                          # (a packet already sent is still arriving)
        n = len(rx.got)
        await asyncio.sleep(0.15)
        assert len(rx.got) == n and 12 <= n <= 20 and len(played) == 1
    finally:
        a.close()
        tr.close()


async def test_fifty_legs_on_one_clock_send_continuous_paced_streams() -> None:
    tr, rx, port = await sink()
    clock = MediaClock(asyncio.get_running_loop())
    legs = [await open_leg(("127.0.0.1", 0), ("127.0.0.1", port), clock=clock) for _ in range(50)]
    try:
        prompt = tones.speech_like(0.5, np.random.default_rng(2))   # 25 frames, encoded once
        for leg in legs:
            leg.play(prompt)
        await wait_for(lambda: len(rx.got) >= 50 * 25, 3.0)
        await asyncio.sleep(0.1)
        by_ssrc: dict[int, list[tuple[float, RtpPacket]]] = {}
        for t, p in rx.got:
            by_ssrc.setdefault(p.ssrc, []).append((t, p))
        assert sorted(by_ssrc) == sorted(leg.ssrc for leg in legs)
        for stream in by_ssrc.values():
            pkts = [p for _, p in stream]
            assert len(pkts) == 25
            assert all((q.sequence - p.sequence) % 65536 == 1 for p, q in zip(pkts, pkts[1:], strict=False))
            assert all((q.timestamp - p.timestamp) % 2**32 == 160 for p, q in zip(pkts, pkts[1:], strict=False))
            span = stream[-1][0] - stream[0][0]
            assert 0.40 < span < 0.60                      # 24 intervals of 20 ms, loosely (a shared CI box)
        assert clock.legs == 50 and sum(leg.sent for leg in legs) == 1250
    finally:
        for leg in legs:
            leg.close()
        tr.close()
    assert clock.legs == 0


async def test_inband_digits_from_twenty_legs_through_the_batched_detector() -> None:
    clock = MediaClock(asyncio.get_running_loop())
    got: dict[int, list[tuple[str, str]]] = {}
    receivers = []
    for i in range(20):
        got[i] = []
        receivers.append(await open_leg(("127.0.0.1", 0), ("127.0.0.1", 9), clock=clock,
                                        on_digit=lambda d, s, i=i: got[i].append((d, s))))
    ports = [r.transport.get_extra_info("sockname")[1] for r in receivers if r.transport is not None]
    senders = [await open_leg(("127.0.0.1", 0), ("127.0.0.1", port), clock=clock) for port in ports]
    want = ["".join(DIGITS[(i + k) % 16] for k in range(3)) for i in range(20)]
    try:
        for s, digits in zip(senders, want, strict=True):
            s.play(sequence(digits, tone_ms=60, gap_ms=60))
        await wait_for(lambda: all(len(got[i]) >= 3 for i in range(20)), 4.0)
        await asyncio.sleep(0.3)
        assert [[d for d, _ in got[i]] for i in range(20)] == [list(w) for w in want]
        assert all(src == "inband" for i in range(20) for _, src in got[i])
        assert clock.dsp_frames > 0
    finally:
        for leg in senders + receivers:
            leg.close()


async def test_digits_from_a_second_source_of_the_same_peer_are_heard() -> None:
    """A peer whose telephone-events come under another SSRC than its audio (sipp replaying a
    capture does; some gateways do) is still heard; a new SSRC is checked on its own."""
    got: list[tuple[str, str]] = []
    b = await open_leg(("127.0.0.1", 0), ("127.0.0.1", 9), on_digit=lambda d, src: got.append((d, src)))
    assert b.transport is not None
    b_port = b.transport.get_extra_info("sockname")[1]
    audio = await open_leg(("127.0.0.1", 0), ("127.0.0.1", b_port), payload_type=0, ssrc=0x11111111)
    events = await open_leg(("127.0.0.1", 0), ("127.0.0.1", b_port), payload_type=0, ssrc=0x22222222)
    try:
        audio.play(np.zeros(8000, dtype=np.int16))   # a second of silence fixes the first source
        await wait_for(lambda: b.received >= 20, 3)
        assert b.receiver.ssrc == 0x11111111
        events.send_digit("4", duration_ms=120)
        await wait_for(lambda: bool(got), 3)
        await asyncio.sleep(0.3)
        assert got == [("4", "rfc4733")]
    finally:
        for leg in (audio, events, b):
            leg.close()


# -- RTCP on port P+1 ------------------------------------------------------------------------------------------

async def rtcp_leg(remote_port: int, min_interval: float, cname: str) -> MediaLeg:
    """A leg on a free port P whose P+1 is free too, with RTCP there (a short interval for tests)."""
    for _ in range(50):
        leg = await open_leg(("127.0.0.1", 0), ("127.0.0.1", remote_port))
        try:
            await open_rtcp(leg, min_interval=min_interval, cname=cname)
        except OSError:   # P+1 is taken: try another P
            leg.close()
            continue
        return leg
    raise AssertionError("no free port pair")


def port_of(transport: asyncio.BaseTransport | None) -> int:
    assert transport is not None
    return int(transport.get_extra_info("sockname")[1])


async def test_rtcp_between_two_legs_rtt_loss_and_bye() -> None:
    b = await rtcp_leg(9, 0.25, "b@test")
    b_port = port_of(b.transport)
    a = await rtcp_leg(b_port, 0.25, "a@test")
    assert a.rtcp is not None and b.rtcp is not None
    a_port = port_of(a.transport)
    assert port_of(a.rtcp.transport) == a_port + 1 and a.rtcp.destination == ("127.0.0.1", b_port + 1)
    try:
        prompt = tones.speech_like(0.5, np.random.default_rng(4))
        a.play(prompt, loop=True)
        b.play(prompt, loop=True)
        await asyncio.sleep(1.5)
        await wait_for(lambda: a.rtcp_stats.rtt_ms is not None and b.rtcp_stats.rtt_ms is not None, 2.0)
        for leg, peer, peer_cname in ((a, b, "b@test"), (b, a, "a@test")):
            stats = leg.rtcp_stats
            assert stats.sender_reports_received >= 2 and stats.reports_sent >= 2, stats
            assert stats.rtt_ms is not None and 0.0 <= stats.rtt_ms < 50.0, stats
            assert stats.fraction_lost == 0.0 and stats.cumulative_lost == 0, stats
            assert 0.0 <= stats.jitter_ms < 20.0 and stats.peer_cname == peer_cname and stats.errors == 0
            assert leg.rtcp is not None and peer.rtcp is not None
            assert leg.rtcp.remote == ("127.0.0.1", port_of(peer.rtcp.transport))   # symmetric RTCP
        # b goes quiet (its reports become RRs, §6.4) while a's sender skips sequence numbers:
        # b's receiver counts them lost and its RRs tell a.
        b.stop()
        rr_before = a.rtcp_stats.reports_received - a.rtcp_stats.sender_reports_received
        worst = 0.0
        for i in range(60):
            if i % 2 == 0:
                a.sender.sequence = (a.sender.sequence + 1) & 0xFFFF   # one packet "lost" every 40 ms
            worst = max(worst, a.rtcp_stats.fraction_lost)
            await asyncio.sleep(0.02)
        skipped = 30
        await wait_for(lambda: a.rtcp_stats.cumulative_lost >= skipped, 2.0)
        worst = max(worst, a.rtcp_stats.fraction_lost)
        assert b.receiver.lost == skipped
        assert a.rtcp_stats.cumulative_lost == skipped and 0.2 < worst < 0.8, a.rtcp_stats
        assert a.rtcp_stats.reports_received - a.rtcp_stats.sender_reports_received > rr_before   # RRs came
        assert not b.rtcp_stats.bye_received
        a.close("test over")
        await wait_for(lambda: b.rtcp_stats.bye_received, 1.0)
        assert b.rtcp_stats.bye_reason == "test over" and a.rtcp.closed
    finally:
        a.close()
        b.close()
    assert b.rtcp is not None and b.rtcp.closed
