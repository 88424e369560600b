"""Frame pacing for RTP senders: one frame every ``ptime`` without accumulated drift (sans-IO).

A sender that re-arms "now + 20 ms" after each frame drifts: every wake-up is a little late, and
the lateness adds up (an hour of audio would end seconds late). :class:`Pacer` instead computes
the deadline of frame *n* from the start, ``start + n * ptime``, so a late wake-up only delays
that one frame. The adapter arms one timer at :meth:`Pacer.next_deadline` and calls
:meth:`Pacer.due` with the loop's clock when it fires: it says how many frames are due now (more
than one after a stall: the sender catches up, up to ``max_burst``; frames older than that are
skipped, so a long stall does not turn into a flood) and how late the oldest one is, for the
statistics the IVR benchmark reports (p99 deviation of the send interval, frames later than
10 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    frames: int        # frames to send now (0: woken early)
    skipped: int       # frames dropped because the stall was longer than max_burst frames
    lateness: float    # seconds the oldest frame sent now is behind its deadline (>= 0)


class Pacer:
    def __init__(self, start: float, ptime: float = 0.020, *, max_burst: int = 5) -> None:
        if not (math.isfinite(start) and 0.001 <= ptime <= 1.0 and max_burst >= 1):
            raise ValueError("need a finite start, 1 ms <= ptime <= 1 s and max_burst >= 1")
        self.start = start
        self.ptime = ptime
        self.max_burst = max_burst
        self.sent = 0          # frames sent or skipped so far: the next frame's index

    def next_deadline(self) -> float:
        return self.start + self.sent * self.ptime

    def due(self, now: float) -> Due:
        """Frames due at ``now`` (call when the timer fires; calling early is harmless)."""
        behind = math.floor((now - self.start) / self.ptime + 1e-9) + 1 - self.sent
        if behind <= 0:
            return Due(0, 0, 0.0)
        skipped = max(0, behind - self.max_burst)
        self.sent += skipped
        lateness = max(0.0, now - self.next_deadline())
        frames = behind - skipped
        self.sent += frames
        return Due(frames, skipped, lateness)
