"""One media clock per event loop: paced RTP for every leg and batched in-band DTMF, on one timer.

Why: a leg that arms its own ``loop.call_at`` every 20 ms and feeds its own detector per packet
costs a timer handle, a callback and a few numpy calls per leg and frame; at 1,000 legs that is
50,000 of each per second. :class:`MediaClock` runs ONE timer on a grid of ``ptime / groups``
(a :class:`~rtpmedia.pacing.Pacer`, so the grid never drifts: slot *s* is due at
``start + s * ptime / groups`` however late the wake-ups are).

Sending. Legs are spread over ``groups`` phase groups (least-loaded group on registration);
slot *s* belongs to group ``s % groups``, so each group's legs send every ``ptime`` and the
groups are ``ptime / groups`` apart: 1,000 legs in 4 groups make 4 bursts of 250 packets per
20 ms instead of one of 1,000. Only *active* legs (audio queued or RFC 4733 packets pending) are
visited; an idle leg costs nothing per tick: its RTP timestamp is derived from its group's frame
counter (``FrameGroup.frame_no``), so it stays in step without being touched.

Timer precision. Loop timers have millisecond granularity (libuv counts in ms; the default
loop's epoll timeout is rounded up to a ms), which alone spreads the send times over ~1 ms. So
the timer is armed ``lead`` (1 ms) before the slot and the callback sleeps the rest with
``time.sleep`` (nanosleep: no CPU, ~50 us precise); the loop is held at most ``lead`` + 1 ms per
slot. With ``lead=0`` the loop timer alone decides and a wake-up up to ``early`` (1 ms) before the
deadline sends the slot. After a stall the clock catches up at most ``max_burst`` frames per
group; older slots are skipped (the legs' timestamps still advance and the next packet is
marked). Frames whose slot started more than ``late_after`` (10 ms) after its deadline are
late: counted per leg (``MediaLeg.late_frames``) and in total (:attr:`MediaClock.late_frames`);
every slot's lateness (at the first and after the last packet of its burst) goes to a bounded
history for the benchmark (:meth:`MediaClock.lateness_history`).

In-band DTMF. Each leg gets a channel in a chunk of ``dtmf_chunk`` channels with one
:class:`~rtpmedia.dtmf.DtmfBank`; chunks are added as legs come and freed channels are reused.
A channel is a 2,100-byte jitter buffer of received G.711 indexed by RTP timestamp (the leg's
``datagram_received`` copies the payload into place, nothing else; see :class:`_Chunk`). Every
105 samples of wall time (13.125 ms, a second Pacer) the clock reads the same 105-sample window
of every channel that had audio lately (one column slice: the per-channel remainder of a
160-sample packet simply waits in the ring for the next window), decodes them with the G.711
tables and classifies ALL of them in ONE :func:`~rtpmedia.dtmf.classify` call; each chunk's bank
then advances its state machine (``DtmfBank.step``, -1 for channels without audio). A digit is
heard ``DELAY`` (60 ms) later than it arrives, and is only reported to the leg if it began after
the leg got the channel (reuse is safe).

Callbacks (``on_played``, in-band ``on_digit``) are collected during a tick and run after all
packets of the tick are out, each guarded, so user code neither delays nor breaks the sending.

Without a loop (``MediaClock()``) nothing is scheduled: tests drive :meth:`MediaClock.tick` with
an explicit ``now``. :meth:`MediaClock.default` gives the shared timer-driven clock of a loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .dtmf import FS, DtmfBank, DtmfParams, classify
from .dtmf import N as DTMF_N
from .g711 import ALAW_DECODE_TABLE, ULAW_DECODE_TABLE
from .pacing import Pacer

__all__ = ["Clocked", "DELAY", "FrameGroup", "MediaClock", "Membership", "RING"]

log = logging.getLogger("rtpmedia.clock")

FRAMES_IN_RING = 20
RING = FRAMES_IN_RING * DTMF_N  # 2,100 samples (262.5 ms) of received audio per channel
DELAY = 480  # a (re)anchored channel's packets land this far ahead of the read position (60 ms)
HEARD = RING  # a channel is analysed while it had a packet within this many samples
_ULAW_F32 = ULAW_DECODE_TABLE.astype(np.float32)  # classify() works in float32: decode straight to it
_ALAW_F32 = ALAW_DECODE_TABLE.astype(np.float32)


class Clocked(Protocol):
    """What the clock calls on a leg (``MediaLeg`` implements it)."""

    def media_frame(self, frame_no: int, late: bool) -> bool:
        """Send the frame of slot ``frame_no`` of the leg's group; True if a packet went out."""
        ...

    def media_gap(self) -> None:
        """Frames of the leg's group were skipped after a stall: mark the next packet."""
        ...

    def inband_digit(self, digit: str) -> None:
        """An in-band digit ended on the leg's channel."""
        ...


class FrameGroup:
    """Legs sending in the same phase: ``frame_no`` counts the group's slots run so far."""

    __slots__ = ("index", "frame_no", "members", "active")

    def __init__(self, index: int) -> None:
        self.index = index
        self.frame_no = 0
        self.members = 0
        self.active: dict[Clocked, None] = {}  # ordered: the send order is stable from slot to slot


class _Chunk:
    """``size`` DTMF channels: jitter buffers of received G.711 bytes and one DtmfBank.

    A channel's ring is indexed by RTP timestamp: sample ``ts`` goes to the absolute position
    ``ts - anchor`` (mod 2**32) on the clock's read timeline ``pos`` (a multiple of 105, the same
    for every channel), so all channels are read with ONE column slice per step, a late or
    reordered packet still lands in its place, and a lost one reads as silence (read windows are
    reset to silence). The first packet, or one that would land behind the read window or past
    the ring (a timestamp jump, a new talkspurt clock, drift), re-anchors the channel so that
    it lands ``DELAY`` samples ahead."""

    def __init__(self, size: int, params: DtmfParams, pos: int) -> None:
        self.size = size
        self.bank = DtmfBank(size, params)
        self.pos = pos  # absolute sample index of the next window to read (the clock's)
        self.store = bytearray(b"\xff" * (size * RING))
        self.view = memoryview(self.store)
        self.ring = np.frombuffer(self.store, np.uint8).reshape(size, RING)
        self.silence = np.full((size, 1), 0xFF, np.uint8)  # the code of sample 0 per channel
        self.alaw = np.zeros(size, bool)
        self.anchor: list[int | None] = [None] * size
        self.heard = [-HEARD - 1] * size  # read position when the channel last got a packet
        self.legs: list[Clocked | None] = [None] * size
        self.since = [0] * size  # bank.pos when the channel was given to its leg
        self.used = 0
        self.resyncs = 0

    def push(self, i: int, ts: int, payload: bytes) -> None:
        """Store one packet's G.711 payload (RTP timestamp ``ts``) in channel ``i``."""
        n = len(payload)
        pos = self.pos
        anchor = self.anchor[i]
        delta = -1 if anchor is None else ((ts - anchor - pos + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        if delta < 0 or delta + n > RING:
            if n > RING - DELAY:
                payload, n = payload[n - (RING - DELAY) :], RING - DELAY
            self.anchor[i] = (ts - pos - DELAY) & 0xFFFFFFFF
            if anchor is not None:
                self.resyncs += 1
                self.ring[i] = self.silence[i, 0]
            delta = DELAY
        off = (pos + delta) % RING
        base = i * RING
        if off + n <= RING:
            self.view[base + off : base + off + n] = payload
        else:
            k = RING - off
            self.view[base + off : base + RING] = payload[:k]
            self.view[base : base + n - k] = payload[k:]
        self.heard[i] = pos

    def attach(self, i: int, leg: Clocked, alaw: bool) -> None:
        self.legs[i] = leg
        self.since[i] = self.bank.pos
        self.anchor[i] = None
        self.heard[i] = -HEARD - 1
        self.alaw[i] = alaw
        self.silence[i, 0] = 0xD5 if alaw else 0xFF
        self.ring[i] = self.silence[i, 0]
        self.used += 1

    def detach(self, i: int) -> None:
        self.legs[i] = None
        self.anchor[i] = None
        self.heard[i] = -HEARD - 1
        self.used -= 1

    def read(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        """The window at ``pos`` of every channel heard lately: (channel indices, (R, N) samples);
        the window is reset to silence and ``pos`` moves on by N."""
        pos = self.pos
        col = pos % RING
        window = self.ring[:, col : col + DTMF_N]
        rows = np.flatnonzero(np.array(self.heard) >= pos - HEARD)
        codes = window[rows]
        pcm = _ULAW_F32.take(codes)
        alaw = self.alaw[rows]
        if alaw.any():
            pcm[alaw] = _ALAW_F32.take(codes[alaw])
        window[:] = self.silence
        self.pos = pos + DTMF_N
        return rows, pcm


@dataclass(slots=True)
class Membership:
    """A leg's place in a clock: its phase group and its DTMF channel (``chunk.push(channel, ts, payload)``)."""

    group: FrameGroup
    chunk: _Chunk
    channel: int


class MediaClock:
    """The shared 20 ms scheduler of many legs (see the module docstring).

    ``loop``: schedule ticks on it (``None``: drive :meth:`tick` yourself). ``time_fn``: the
    clock read for deadlines and lateness (seconds, monotonic). ``history``: how many slots of
    lateness statistics are kept.
    """

    _defaults: dict[asyncio.AbstractEventLoop, MediaClock] = {}

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        groups: int = 4,
        ptime: float = 0.020,
        late_after: float = 0.010,
        early: float = 0.001,
        lead: float = 0.001,
        max_burst: int = 5,
        time_fn: Callable[[], float] = time.monotonic,
        dtmf_params: DtmfParams | None = None,
        dtmf_chunk: int = 256,
        history: int = 16384,
    ) -> None:
        if not (1 <= groups <= 10 and 0.005 <= ptime <= 0.2 and max_burst >= 1 and dtmf_chunk >= 1):
            raise ValueError("need 1 <= groups <= 10, 5 ms <= ptime <= 200 ms, max_burst >= 1, dtmf_chunk >= 1")
        if not (0.0 <= early < ptime / groups and 0.0 <= lead <= 0.005 and late_after > 0 and history >= 1):
            raise ValueError("need 0 <= early < ptime / groups, 0 <= lead <= 5 ms, late_after > 0, history >= 1")
        self.loop = loop
        self.ptime = ptime
        self.late_after = late_after
        self.early = early
        self.lead = lead
        self.max_burst = max_burst
        self.time_fn = time_fn
        self.dtmf_params = dtmf_params if dtmf_params is not None else DtmfParams()
        self.dtmf_chunk = dtmf_chunk
        self.groups = [FrameGroup(i) for i in range(groups)]
        self.chunks: list[_Chunk] = []
        self._free: list[tuple[int, int]] = []  # (chunk, channel) given back by closed legs
        self._channels = 0  # channels ever handed out (free ones included)
        self._read_pos = 0  # absolute sample index of the next DTMF window (all channels)
        self._pacer: Pacer | None = None
        self._dsp: Pacer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._deferred: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        self._closed = False
        self.legs = 0
        # statistics
        self.ticks = 0
        self.slots = 0
        self.frames_sent = 0
        self.late_frames = 0
        self.skipped_slots = 0
        self.max_lateness = 0.0
        self.dsp_steps = 0
        self.dsp_frames = 0
        self.callback_errors = 0
        self._hist_start = np.zeros(history)
        self._hist_end = np.zeros(history)
        self._hist_frames = np.zeros(history, np.int32)
        self._hist_n = 0

    # ---- the shared clock of a loop -------------------------------------------------------------
    @classmethod
    def default(cls, loop: asyncio.AbstractEventLoop | None = None) -> MediaClock:
        """The loop's shared timer-driven clock (created on first use)."""
        loop = loop if loop is not None else asyncio.get_running_loop()
        for old in [lp for lp in cls._defaults if lp.is_closed()]:  # (a clock holds its loop)
            del cls._defaults[old]
        clock = cls._defaults.get(loop)
        if clock is None or clock._closed:
            clock = cls._defaults[loop] = cls(loop)
        return clock

    # ---- legs -----------------------------------------------------------------------------------
    def register(self, leg: Clocked, *, alaw: bool = False) -> Membership:
        """Give ``leg`` a phase group and a DTMF channel; start the timer if it is not running."""
        if self._closed:
            raise RuntimeError("media clock is closed")
        group = min(self.groups, key=lambda g: g.members)
        group.members += 1
        if self._free:
            self._free.sort(reverse=True)  # lowest index first: keeps the used chunks dense
            ci, i = self._free.pop()
        else:
            ci, i = divmod(self._channels, self.dtmf_chunk)
            self._channels += 1
            if ci == len(self.chunks):
                self.chunks.append(_Chunk(self.dtmf_chunk, self.dtmf_params, self._read_pos))
        chunk = self.chunks[ci]
        chunk.attach(i, leg, alaw)
        self.legs += 1
        if self.loop is not None and self._timer is None:
            self.start()
            self._arm()
        return Membership(group, chunk, i)

    def unregister(self, leg: Clocked, membership: Membership) -> None:
        group, chunk, i = membership.group, membership.chunk, membership.channel
        if chunk.legs[i] is not leg:
            return  # already gone
        group.members -= 1
        group.active.pop(leg, None)
        chunk.detach(i)
        self._free.append((self.chunks.index(chunk), i))
        self.legs -= 1
        if self.legs == 0 and self._timer is not None:  # nothing to pace: sleep until the next leg
            self._timer.cancel()
            self._timer = None
            self._pacer = self._dsp = None

    def activate(self, leg: Clocked, membership: Membership) -> None:
        """The leg has something to send: visit it from its group's next slot on."""
        membership.group.active[leg] = None

    def defer(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` after the packets of the current (or next) tick are out."""
        self._deferred.append((fn, args))

    # ---- time -----------------------------------------------------------------------------------
    def start(self, now: float | None = None) -> None:
        """Put the grid's slot 0 at ``now`` (default: ``time_fn()``). Called by the first tick or
        registration if not called before."""
        now = self.time_fn() if now is None else now
        slot = self.ptime / len(self.groups)
        self._pacer = Pacer(now, slot, max_burst=self.max_burst * len(self.groups))
        self._dsp = Pacer(now, DTMF_N / FS, max_burst=4)

    def next_deadline(self) -> float | None:
        return None if self._pacer is None else self._pacer.next_deadline()

    def tick(self, now: float | None = None) -> float:
        """Send the frames of every slot due at ``now``, run the due DTMF steps and the deferred
        callbacks; return the next slot's deadline."""
        if now is None:
            now = self.time_fn()
        if self._pacer is None or self._dsp is None:
            self.start(now)
        pacer, dsp = self._pacer, self._dsp
        assert pacer is not None and dsp is not None
        self.ticks += 1
        due = pacer.due(now + self.early)
        if due.frames or due.skipped:
            end = pacer.sent
            first = end - due.frames
            if due.skipped:
                self._skip(first - due.skipped, first)
            t = now
            for s in range(first, end):
                t = self._slot(s, t, pacer.start + s * pacer.ptime)
        steps = dsp.due(now).frames
        for _ in range(steps):
            self._dsp_step()
        if self._deferred:
            self._run_deferred()
        return pacer.next_deadline()

    def _slot(self, s: int, t: float, deadline: float) -> float:
        """Send slot ``s`` (its group's frame) at time ``t``; return the time after the burst."""
        group = self.groups[s % len(self.groups)]
        lateness = t - deadline
        late = lateness > self.late_after
        fno = group.frame_no
        sent = 0
        for leg in list(group.active):  # a snapshot: legs leave the dict as they run dry or close
            try:
                if leg.media_frame(fno, late):
                    sent += 1
            except Exception:
                log.exception("media leg failed to send; it is stopped")
                group.active.pop(leg, None)
        group.frame_no = fno + 1
        after = self.time_fn() if sent else t
        self.slots += 1
        self.frames_sent += sent
        if late:
            self.late_frames += sent
        if lateness > self.max_lateness:
            self.max_lateness = lateness
        k = self._hist_n % self._hist_start.size
        self._hist_start[k] = lateness
        self._hist_end[k] = after - deadline if sent else 0.0
        self._hist_frames[k] = sent
        self._hist_n += 1
        return after

    def _skip(self, a: int, b: int) -> None:
        """Slots a..b-1 were skipped (a stall longer than the catch-up burst)."""
        g_count = len(self.groups)
        for group in self.groups:
            g = group.index
            n = max(0, (b - g + g_count - 1) // g_count) - max(0, (a - g + g_count - 1) // g_count)
            if n:
                group.frame_no += n
                for leg in list(group.active):
                    leg.media_gap()
        self.skipped_slots += b - a

    def _dsp_step(self) -> None:
        """One 105-sample DTMF step for every channel: one classify() over all channels heard."""
        self._read_pos += DTMF_N
        work = [(c, *c.read()) for c in self.chunks if c.used]
        if not work:
            for c in self.chunks:
                c.pos = self._read_pos
            return
        frames = [pcm for _, rows, pcm in work if rows.size]
        found = classify(np.concatenate(frames), self.dtmf_params) if frames else np.zeros(0, np.int8)
        self.dsp_steps += 1
        self.dsp_frames += found.size
        at = 0
        for chunk, rows, _ in work:
            d = np.full(chunk.size, -1, np.int8)
            d[rows] = found[at : at + rows.size]
            at += rows.size
            for i, digit in chunk.bank.step(d):
                leg = chunk.legs[i]
                if leg is not None and digit.start >= chunk.since[i]:
                    self._deferred.append((leg.inband_digit, (digit.digit,)))
        for c in self.chunks:
            c.pos = self._read_pos

    def _run_deferred(self) -> None:
        calls, self._deferred = self._deferred, []
        for fn, args in calls:
            try:
                fn(*args)
            except Exception:
                self.callback_errors += 1
                log.exception("media callback %r failed", fn)

    # ---- the loop's timer -----------------------------------------------------------------------
    def _arm(self) -> None:
        assert self.loop is not None and self._pacer is not None
        # loop.time() first: uvloop refreshes its cached millisecond clock there, which it
        # would otherwise add the delay to (stale by the length of this tick: an early wake-up)
        now = self.loop.time()
        delay = self._pacer.next_deadline() - self.lead - self.time_fn()
        self._timer = self.loop.call_at(now + max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._closed or self._pacer is None:
            return
        try:
            wait = self._pacer.next_deadline() - self.time_fn()
            if wait > 0.0 and self.lead > 0.0:
                if wait > self.lead + 0.001:  # far too early (a coarse timer): wait again
                    return
                time.sleep(wait)  # the sub-millisecond rest: nanosleep, no CPU, loop held <= lead + 1 ms
            elif wait > self.early:
                return
            self.tick()
        finally:
            if not self._closed and self.legs and self._pacer is not None and self.loop is not None:
                if not self.loop.is_closed():
                    self._arm()

    def close(self) -> None:
        """Stop the timer; registered legs stop sending (they should be closed first)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ---- statistics -----------------------------------------------------------------------------
    def lateness_history(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int32]]:
        """The recorded slots, oldest first: lateness of the slot's first packet (s, negative =
        early), lateness after its last packet (0 for an empty slot), packets sent in the slot."""
        size = self._hist_start.size
        n = min(self._hist_n, size)
        order = (np.arange(self._hist_n - n, self._hist_n)) % size
        return self._hist_start[order].copy(), self._hist_end[order].copy(), self._hist_frames[order].copy()

    def reset_history(self) -> None:
        self._hist_n = 0
        self.max_lateness = 0.0
