"""MediaClock + MediaLeg driven by an explicit fake clock (no sockets, no event loop): paced frames,
on_played / stop / loop, many legs on one timer, batched in-band DTMF, RFC 4733, closing during a
tick, no drift, channel reuse and the shared prompt encoding."""

from __future__ import annotations

import asyncio
import gc
import random

import numpy as np
import pytest

import rtpmedia.clock as clock_module
from rtpmedia import tones
from rtpmedia.clock import DELAY, MediaClock
from rtpmedia.g711 import alaw_encode, ulaw_encode
from rtpmedia.leg import FRAME, EncodedPrompt, MediaLeg, encode_cached, encode_prompt
from rtpmedia.rtp import RtpPacket

START = 1000.0
PEER = ("192.0.2.1", 4000)


class FakeTransport:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.sent: list[tuple[float, RtpPacket]] = []
        self.closed = False
        self.on_send: object = None   # callable run before each send (tests that close legs mid-tick)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if callable(self.on_send):
            self.on_send()
        self.sent.append((self.sim.now, RtpPacket.parse(data)))

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class Sim:
    """A MediaClock on a fake clock; ``run`` wakes it at each deadline plus a random delay."""

    def __init__(self, **kw: object) -> None:
        self.now = START
        self.clock = MediaClock(time_fn=lambda: self.now, **kw)  # type: ignore[arg-type]
        self.clock.start(START)

    def leg(self, **kw: object) -> tuple[MediaLeg, FakeTransport]:
        leg = MediaLeg(PEER, clock=self.clock, **kw)  # type: ignore[arg-type]
        tr = FakeTransport(self)
        leg.connection_made(tr)  # type: ignore[arg-type]
        return leg, tr

    def step(self, jitter: float = 0.0) -> None:
        deadline = self.clock.next_deadline()
        assert deadline is not None
        self.now = max(self.now, deadline + jitter)
        self.clock.tick(self.now)

    def run(self, seconds: float, jitter: float = 0.0, rng: random.Random | None = None) -> None:
        end = self.now + seconds
        rng = rng or random.Random(1)
        while self.now < end:
            self.step(rng.uniform(0.0, jitter) if jitter else 0.0)


def frames_of(n: int, base: int = 0) -> np.ndarray:
    """n frames, frame k filled with the value base + 100 * k (so payloads tell frames apart)."""
    return np.repeat(np.arange(n, dtype=np.int16) * 100 + base, FRAME).astype(np.int16)


def rtp(seq: int, ts: int, payload: bytes, pt: int = 0, ssrc: int = 0xABCD) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload).to_bytes()


# -- on_played, stop, loop ---------------------------------------------------------------------------

def test_on_played_fires_once_after_the_last_frame() -> None:
    sim = Sim()
    calls: list[int] = []
    leg, tr = sim.leg()
    leg.on_played = lambda: calls.append(len(tr.sent))
    leg.play(np.ones(560, np.int16))            # 3.5 frames: 4 packets, the last padded
    assert leg.playing
    sim.run(0.5)
    assert len(tr.sent) == 4 and calls == [4] and not leg.playing
    assert tr.sent[-1][1].payload == ulaw_encode(np.array([1] * 80 + [0] * 80, np.int16))
    leg.play(frames_of(2))                      # once per drained queue, again
    sim.run(0.2)
    assert len(tr.sent) == 6 and calls == [4, 6]


def test_queued_prompts_play_back_to_back_and_on_played_waits_for_the_last() -> None:
    sim = Sim()
    calls: list[int] = []
    leg, tr = sim.leg()
    leg.on_played = lambda: calls.append(len(tr.sent))
    leg.play(frames_of(2, base=1))
    leg.play(frames_of(3, base=7))
    sim.run(0.3)
    assert calls == [5]
    times = [t for t, _ in tr.sent]
    assert np.allclose(np.diff(times), 0.020)   # no gap between the two prompts


def test_stop_drops_queued_audio_and_cancels_on_played() -> None:
    sim = Sim()
    calls: list[int] = []
    leg, tr = sim.leg(on_played=lambda: calls.append(1))
    leg.play(frames_of(10))
    for _ in range(12):                          # 3 frames at 4 slots per frame (groups=4)
        sim.step()
    assert len(tr.sent) == 3
    leg.stop()
    assert not leg.playing
    sim.run(0.5)
    assert len(tr.sent) == 3 and calls == []
    leg.play(frames_of(1))                       # the next prompt starts a new talkspurt
    sim.run(0.1)
    assert len(tr.sent) == 4 and tr.sent[-1][1].marker and calls == [1]


def test_stop_after_the_last_frame_but_before_the_callback_suppresses_it() -> None:
    sim = Sim(groups=1)
    calls: list[str] = []
    a, _ = sim.leg(on_played=lambda: calls.append("a"))

    def b_done() -> None:
        calls.append("b")
        a.stop()

    b, _ = sim.leg(on_played=b_done)
    b.play(frames_of(1))      # b first: both drain in the same slot, b's callback runs first
    a.play(frames_of(1))
    sim.run(0.1)
    assert calls == ["b"]


def test_loop_repeats_until_stop() -> None:
    sim = Sim()
    calls: list[int] = []
    leg, tr = sim.leg(on_played=lambda: calls.append(1))
    prompt = frames_of(2, base=5)
    leg.play(prompt, loop=True)
    sim.run(0.5)
    payloads = [p.payload for _, p in tr.sent]
    one, two = ulaw_encode(prompt[:FRAME]), ulaw_encode(prompt[FRAME:])
    assert len(payloads) >= 24 and payloads[:6] == [one, two, one, two, one, two]
    assert all(p == (one if i % 2 == 0 else two) for i, p in enumerate(payloads))
    assert calls == [] and leg.playing
    leg.stop()
    n = len(tr.sent)
    sim.run(0.2)
    assert len(tr.sent) == n and calls == []


# -- many legs on one clock --------------------------------------------------------------------------

def test_many_legs_each_get_exactly_their_frames_20ms_apart() -> None:
    sim = Sim(groups=4)
    rng = random.Random(3)
    legs = []
    for i in range(200):
        leg, tr = sim.leg(ssrc=i + 1)
        want = rng.randint(5, 40)
        leg.play(frames_of(want, base=i))
        legs.append((leg, tr, want, i))
    assert sorted(g.members for g in sim.clock.groups) == [50, 50, 50, 50]
    sim.run(1.0, jitter=0.003, rng=rng)
    for leg, tr, want, i in legs:
        pkts = [p for _, p in tr.sent]
        times = np.array([t for t, _ in tr.sent])
        assert len(pkts) == want == leg.sent and leg.late_frames == 0
        assert all((b.sequence - a.sequence) % 65536 == 1 for a, b in zip(pkts, pkts[1:], strict=False))
        assert all((b.timestamp - a.timestamp) % 2**32 == FRAME for a, b in zip(pkts, pkts[1:], strict=False))
        assert pkts[0].marker and not any(p.marker for p in pkts[1:])
        assert {p.ssrc for p in pkts} == {i + 1}
        assert np.all(np.abs(np.diff(times) - 0.020) <= 0.0031)   # wake-ups 0-3 ms late, never drifting
        assert [p.payload for p in pkts] == [ulaw_encode(frames_of(want, base=i)[k * FRAME:(k + 1) * FRAME])
                                             for k in range(want)]
    assert sim.clock.frames_sent == sum(w for _, _, w, _ in legs) and sim.clock.late_frames == 0


def test_legs_in_different_groups_send_in_different_slots() -> None:
    sim = Sim(groups=4)
    trs = []
    for _ in range(4):
        leg, tr = sim.leg()
        leg.play(frames_of(3), loop=True)
        trs.append(tr)
    sim.run(0.1)
    firsts = sorted(tr.sent[0][0] - START for tr in trs)
    assert firsts == pytest.approx([0.0, 0.005, 0.010, 0.015])


# -- time: no drift, stalls, late frames -------------------------------------------------------------

def test_no_accumulated_drift_over_ten_minutes() -> None:
    sim = Sim(groups=4)
    leg, tr = sim.leg()
    leg.play(frames_of(50), loop=True)
    rng = random.Random(9)
    sim.run(600.0, jitter=0.004, rng=rng)
    times = np.array([t for t, _ in tr.sent])
    n = np.arange(times.size)
    assert times.size >= 29_999
    offset = times - (START + n * 0.020)          # frame n is due at START + n * 20 ms, after 10 minutes too
    assert offset.min() >= -0.001 - 1e-9 and offset.max() <= 0.004 + 1e-9
    ts = np.array([p.timestamp for _, p in tr.sent], dtype=np.int64)
    assert np.all((ts - ts[0]) % 2**32 == (n * FRAME) % 2**32)
    assert leg.late_frames == 0 and sim.clock.skipped_slots == 0


def test_a_stall_is_caught_up_then_skipped_and_counted_late() -> None:
    sim = Sim(groups=4, max_burst=5)
    leg, tr = sim.leg()
    leg.play(frames_of(100), loop=True)
    sim.run(0.1)
    before = len(tr.sent)
    last_ts = tr.sent[-1][1].timestamp
    sim.now += 0.300                              # the loop was blocked for 300 ms
    sim.clock.tick(sim.now)
    burst = tr.sent[before:]
    assert len(burst) == 5                        # max_burst frames of the leg's group, the rest skipped
    # the oldest slots sent are > 10 ms behind their deadlines, the newest is not
    assert leg.late_frames == sim.clock.late_frames == 4 and sim.clock.skipped_slots > 0
    assert burst[0][1].marker                     # a discontinuity: the next packet is marked
    assert (burst[0][1].timestamp - last_ts) % 2**32 > FRAME   # skipped frames advanced the timestamp
    sim.run(0.1)
    # back on the grid, and the timestamp kept pace with the clock through the stall
    (t0, p0), (t1, p1) = tr.sent[0], tr.sent[-1]
    assert (p1.timestamp - p0.timestamp) % 2**32 == round((t1 - t0) / 0.020) * FRAME
    assert (t1 - t0) / 0.020 == pytest.approx(round((t1 - t0) / 0.020))
    starts, ends, counts = sim.clock.lateness_history()
    busy = counts > 0
    assert starts[busy].max() > 0.010 and counts.sum() == len(tr.sent) and np.all(ends[busy] >= starts[busy])


# -- in-band DTMF through the batched detector -------------------------------------------------------

def feed_audio(sim: Sim, legs: list[MediaLeg], signals: list[np.ndarray], *, reorder: bool = False,
               tail_s: float = 0.4) -> None:
    """Deliver each signal to its leg as 20 ms PCMU packets, one per leg every 20 ms, ticking the
    clock in between (``reorder``: swap every other pair of packets)."""
    frames = [np.pad(s, (0, -s.size % FRAME)).reshape(-1, FRAME) for s in signals]
    n = max(f.shape[0] for f in frames)
    order = list(range(n))
    if reorder:
        for k in range(0, n - 1, 4):
            order[k], order[k + 1] = order[k + 1], order[k]
    for j, k in enumerate(order):
        for leg, f in zip(legs, frames, strict=True):
            if k < f.shape[0]:
                leg.datagram_received(rtp(7 + k, 5000 + k * FRAME, ulaw_encode(f[k])), PEER)
        target = START + (j + 1) * 0.020 if sim.now < START + 0.001 else sim.now + 0.020
        while sim.now < target - 1e-9:
            sim.step()
    sim.run(tail_s)


def test_inband_digits_are_detected_once_in_one_batched_classify_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = clock_module.classify

    def counting(frames: np.ndarray, params: object) -> np.ndarray:
        calls.append(len(frames))
        return real(frames, params)  # type: ignore[arg-type]

    monkeypatch.setattr(clock_module, "classify", counting)
    sim = Sim()
    got: list[list[tuple[str, str]]] = [[], [], []]
    legs = [sim.leg(on_digit=lambda d, s, i=i: got[i].append((d, s)))[0] for i in range(3)]
    digits = ["159", "2#", "*0D"]
    feed_audio(sim, legs, [tones.sequence(d, tone_ms=60, gap_ms=60) for d in digits])
    assert got == [[(d, "inband") for d in ds] for ds in digits]
    assert calls and len(calls) <= sim.clock.dsp_steps   # at most one classify() per step ...
    assert calls.count(3) >= 40                          # ... covering every leg that has audio
    assert all(leg.received > 10 for leg in legs)


def test_inband_digits_survive_reordered_packets_and_speech_does_not_talk_off() -> None:
    sim = Sim()
    got: list[str] = []
    leg, _ = sim.leg(on_digit=lambda d, s: got.append(d))
    quiet, _ = sim.leg(on_digit=lambda d, s: got.append("talk-off " + d))
    speech = tones.speech_like(2.0, np.random.default_rng(4))
    feed_audio(sim, [leg, quiet], [tones.sequence("4826", tone_ms=80, gap_ms=80), speech], reorder=True)
    assert got == list("4826")


def test_alaw_legs_are_decoded_as_alaw() -> None:
    sim = Sim()
    got: list[str] = []
    leg, _ = sim.leg(payload_type=8, on_digit=lambda d, s: got.append(d))
    x = tones.sequence("37", tone_ms=60, gap_ms=60)
    x = np.pad(x, (0, -x.size % FRAME)).reshape(-1, FRAME)
    for k, f in enumerate(x):
        leg.datagram_received(rtp(k, k * FRAME, alaw_encode(f), pt=8), PEER)
        sim.run(0.020)
    sim.run(0.4)
    assert got == ["3", "7"]


def test_channels_are_reused_chunks_grow_and_an_old_digit_never_reaches_a_new_leg() -> None:
    sim = Sim(dtmf_chunk=2)
    got: dict[str, list[str]] = {}

    def leg(name: str) -> MediaLeg:
        got[name] = []
        return sim.leg(on_digit=lambda d, s: got[name].append(d))[0]

    legs = [leg(f"l{i}") for i in range(5)]
    assert len(sim.clock.chunks) == 3
    old = legs[1]
    tone = tones.dtmf("9", 200)
    for k in range(5):                               # 100 ms of a digit, then the leg goes away
        old.datagram_received(rtp(k, k * FRAME, ulaw_encode(tone[k * FRAME:(k + 1) * FRAME])), PEER)
        sim.run(0.020)
    old.close()
    new = leg("new")
    assert new._member is not None and new._member.chunk is sim.clock.chunks[0] and new._member.channel == 1
    feed_audio(sim, [new, legs[4]], [tones.silence(300), tones.sequence("5", tone_ms=60)])
    assert got["new"] == [] and got["l1"] == [] and got["l4"] == ["5"]
    assert sim.clock.legs == 5


def test_jitter_buffer_reanchors_after_a_timestamp_jump() -> None:
    sim = Sim()
    got: list[str] = []
    leg, _ = sim.leg(on_digit=lambda d, s: got.append(d))
    x = np.pad(tones.sequence("8", tone_ms=80), (0, 0))
    x = np.pad(x, (0, -x.size % FRAME)).reshape(-1, FRAME)
    for k, f in enumerate(x):
        ts = k * FRAME if k < 3 else 10_000_000 + k * FRAME     # the peer's timestamp jumps once
        leg.datagram_received(rtp(k, ts, ulaw_encode(f)), PEER)
        sim.run(0.020)
    sim.run(0.4)
    assert got == ["8"] and sim.clock.chunks[0].resyncs == 1
    assert DELAY < clock_module.RING


# -- RFC 4733 ------------------------------------------------------------------------------------------

def test_rfc4733_digits_share_the_sequence_space_and_arrive_once() -> None:
    sim = Sim()
    got: list[tuple[str, str]] = []
    a, tr = sim.leg()
    b, _ = sim.leg(on_digit=lambda d, s: got.append((d, s)))
    a.play(frames_of(30))
    sim.run(0.1)
    a.send_digit("7", duration_ms=120)
    sim.run(0.6)
    pkts = [p for _, p in tr.sent]
    assert all((q.sequence - p.sequence) % 65536 == 1 for p, q in zip(pkts, pkts[1:], strict=False))
    events = [p for p in pkts if p.payload_type == 101]
    assert len(events) >= 4 and len({p.timestamp for p in events}) == 1 and events[0].marker
    for p in pkts:
        b.datagram_received(p.to_bytes(), PEER)
    assert got == [("7", "rfc4733")]
    with pytest.raises(ValueError):
        MediaLeg(PEER, clock=sim.clock, event_pt=None).send_digit("1")


def test_send_digit_on_an_idle_leg_sends_only_the_event() -> None:
    sim = Sim()
    a, tr = sim.leg()
    a.send_digit("#", duration_ms=60)
    sim.run(0.3)
    assert tr.sent and all(p.payload_type == 101 for _, p in tr.sent)
    assert a.timestamp is not None and not a.playing


# -- closing -----------------------------------------------------------------------------------------

def test_a_leg_closed_or_failing_during_a_tick_does_not_break_the_others() -> None:
    sim = Sim(groups=1)
    legs = [sim.leg() for _ in range(6)]
    for leg, _ in legs:
        leg.play(frames_of(10))
    legs[1][1].on_send = lambda: legs[3][0].close()         # closes a later leg of the same slot

    def boom() -> None:
        raise RuntimeError("socket gone")

    legs[2][1].on_send = boom                                 # a leg whose send raises
    legs[0][0].on_played = lambda: legs[5][0].close()
    sim.run(0.5)
    counts = [len(tr.sent) for _, tr in legs]
    assert counts[0] == counts[1] == counts[4] == 10
    assert counts[2] == 0 and counts[3] == 0 and counts[5] == 10
    assert legs[3][1].closed and legs[5][1].closed and sim.clock.legs == 4
    assert legs[3][0]._member is None


# -- prompts encoded once --------------------------------------------------------------------------------

def test_a_prompt_played_by_many_legs_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import rtpmedia.leg as leg_module

    encodes: list[int] = []
    real = leg_module.encode_prompt

    def counting(samples: np.ndarray, pt: int = 0) -> EncodedPrompt:
        encodes.append(pt)
        return real(samples, pt)

    monkeypatch.setattr(leg_module, "encode_prompt", counting)
    sim = Sim()
    prompt = tones.speech_like(0.5, np.random.default_rng(1))
    legs = [sim.leg()[0] for _ in range(100)]
    for leg in legs:
        leg.play(prompt)
    assert encodes == [0]
    assert len({id(leg.queue[0][0]) for leg in legs}) == 1
    alaw_leg = sim.leg(payload_type=8)[0]
    alaw_leg.play(prompt)
    assert encodes == [0, 8]
    assert encode_cached(prompt, 0) is encode_cached(prompt, 0)


def test_encoded_prompt_content_padding_and_cache_lifetime() -> None:
    x = tones.dtmf("1", 25)                                  # 200 samples: 2 frames, 120 padded
    p = encode_prompt(x, 0)
    assert isinstance(p, EncodedPrompt) and p.frames == 2 and p.samples == 200
    assert p.data == ulaw_encode(x) + b"\xff" * 120
    assert encode_prompt(x, 8).data == alaw_encode(x) + b"\xd5" * 120
    with pytest.raises(ValueError):
        encode_prompt(x, 9)
    with pytest.raises(TypeError):
        encode_prompt(np.zeros((2, 2), np.int16))
    y = x.copy()
    encode_cached(y, 0)
    key = (id(y), 0)
    assert key in leg_cache()
    del y
    gc.collect()
    assert key not in leg_cache()
    sim = Sim()
    leg, _ = sim.leg()
    with pytest.raises(ValueError):
        leg.play(encode_prompt(x, 8))                        # PCMA prompt on a PCMU leg


def leg_cache() -> dict[tuple[int, int], object]:
    import rtpmedia.leg as leg_module

    return leg_module._cache  # type: ignore[return-value]


def test_empty_prompt_reports_played_at_once() -> None:
    sim = Sim()
    calls: list[int] = []
    leg, tr = sim.leg(on_played=lambda: calls.append(1))
    leg.play(np.zeros(0, np.int16))
    sim.step()
    assert calls == [1] and tr.sent == []


# -- the shared clock of a loop ----------------------------------------------------------------------

async def test_default_clock_is_shared_per_loop_and_sleeps_without_legs() -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    a = MediaLeg(PEER, on_played=done.set)
    b = MediaLeg(PEER)
    tra, trb = FakeTransport(Sim()), FakeTransport(Sim())
    a.connection_made(tra)  # type: ignore[arg-type]
    b.connection_made(trb)  # type: ignore[arg-type]
    try:
        assert a.clock is b.clock is MediaClock.default(loop)
        a.play(frames_of(5))
        await asyncio.wait_for(done.wait(), 2.0)
        assert len(tra.sent) == 5
    finally:
        a.close()
        b.close()
    assert a.clock is not None and a.clock.legs == 0 and a.clock._timer is None


def test_bad_clock_parameters() -> None:
    for kw in ({"groups": 0}, {"groups": 11}, {"ptime": 0.001}, {"max_burst": 0}, {"early": 0.006},
               {"lead": 0.01}, {"late_after": 0.0}, {"dtmf_chunk": 0}):
        with pytest.raises(ValueError):
            MediaClock(**kw)  # type: ignore[arg-type]
    c = MediaClock()
    c.close()
    with pytest.raises(RuntimeError):
        c.register(MediaLeg(PEER))
