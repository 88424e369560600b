"""RFC 4733 telephone-events (DTMF named events) — payload codec, sender and receiver, sans-IO.

How it works:

* `TelephoneEvent` is the 4-byte payload (§2.3): event code, E (end) bit, volume, duration in
  timestamp units since the event (segment) began.
* `TelephoneEventSender.packets()` turns "digit d for N ms starting at RTP timestamp T" into the
  whole packet plan, each entry with the offset (ms from the start of the event) at which the
  adapter should send it through `RtpSender.packet()`:
  - every update carries timestamp T and the duration so far; the first one sets the marker
    (§2.5.1.2, §2.5.1.3); updates follow every ``update_ms`` (50 ms by default);
  - the end packet (E bit, final duration) is sent three times (§2.5.1.4);
  - events longer than 0xFFFF timestamp units are split into segments (§2.5.2.3): a segment ends
    with a packet of duration 0xFFFF and no E bit, the next one starts at timestamp T + 0xFFFF
    without the marker, and only the last segment ends with E.
* `TelephoneEventReceiver.receive()` reports each event once, on the first packet seen for it,
  whichever packet that is (so a lost first packet or a lone end packet still yields the digit).
  Later packets with a remembered timestamp — updates, the end triple, network duplicates — and
  continuation segments of a long event are swallowed. Packets only; no clock.

Bounds: a remembered-timestamp window of `RECEIVER_MEMORY` events; sender durations up to
`MAX_EVENT_MS`.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from rtpmedia.rtp import RtpError, RtpPacket

__all__ = [
    "DIGITS",
    "DigitReceived",
    "EventPacket",
    "TelephoneEvent",
    "TelephoneEventError",
    "TelephoneEventReceiver",
    "TelephoneEventSender",
    "digit_to_event",
    "event_to_digit",
]

DIGITS = "0123456789*#ABCD"  # event codes 0..15 (§3.2, Table 3)
MAX_DURATION = 0xFFFF  # the 16-bit duration field
MAX_EVENT_MS = 600_000
RECEIVER_MEMORY = 16
_PAYLOAD = struct.Struct("!BBH")


class TelephoneEventError(RtpError):
    """A malformed telephone-event payload or an invalid request to the sender."""


def digit_to_event(digit: str) -> int:
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise TelephoneEventError(f"{digit!r} is not a DTMF digit")
    return index


def event_to_digit(event: int) -> str | None:
    """The DTMF character for an event code, or None for non-DTMF events (§3.2)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The telephone-event payload (RFC 4733 §2.3)."""

    event: int
    end: bool = False
    volume: int = 10  # 0..63, in -dBm0 (§2.3.4)
    duration: int = 0  # timestamp units since the event (segment) began (§2.3.5)

    def __post_init__(self) -> None:
        for name, value, high in (("event", self.event, 255), ("volume", self.volume, 63),
                                  ("duration", self.duration, MAX_DURATION)):
            if not 0 <= value <= high:
                raise TelephoneEventError(f"{name} {value} is outside 0..{high}")

    @classmethod
    def parse(cls, data: bytes) -> TelephoneEvent:
        # §2.3: exactly one 4-byte event per packet (redundancy would arrive through RFC 2198).
        if len(data) != _PAYLOAD.size:
            raise TelephoneEventError(f"telephone-event payload of {len(data)} bytes, expected 4")
        event, flags, duration = _PAYLOAD.unpack(data)
        # The R bit (0x40) is reserved: senders set it to zero, receivers ignore it (§2.3.3).
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One planned packet: send at ``offset_ms`` after the event starts, with these RTP fields."""

    offset_ms: float
    timestamp: int
    marker: bool
    event: TelephoneEvent

    @property
    def payload(self) -> bytes:
        return self.event.to_bytes()


class TelephoneEventSender:
    """Plans the packets for one event (§2.5.1); the adapter paces them and numbers them."""

    def __init__(self, clock_rate: int = 8000, update_ms: int = 50, volume: int = 10,
                 end_repeats: int = 3, end_spacing_ms: int = 20) -> None:
        if clock_rate <= 0 or update_ms <= 0 or end_repeats < 1 or end_spacing_ms < 0:
            raise TelephoneEventError("invalid telephone-event sender settings")
        TelephoneEvent(0, volume=volume)  # validates the volume
        self.clock_rate = clock_rate
        self.update_ms = update_ms
        self.volume = volume
        self.end_repeats = end_repeats
        self.end_spacing_ms = end_spacing_ms

    def packets(self, digit: str | int, duration_ms: int, start_ts: int) -> list[EventPacket]:
        event = digit if isinstance(digit, int) else digit_to_event(digit)
        TelephoneEvent(event)  # validates the code
        if not 0 < duration_ms <= MAX_EVENT_MS:
            raise TelephoneEventError(f"event duration {duration_ms} ms is outside 1..{MAX_EVENT_MS}")
        if not 0 <= start_ts <= 0xFFFFFFFF:
            raise TelephoneEventError(f"timestamp {start_ts} is outside 32 bits")
        total = duration_ms * self.clock_rate // 1000  # event length in timestamp units
        step = self.update_ms * self.clock_rate // 1000
        plan: list[EventPacket] = []
        segment_start = 0  # elapsed units at which the current segment began

        def emit(elapsed: int, duration: int, end: bool) -> None:
            plan.append(EventPacket(
                offset_ms=elapsed * 1000 / self.clock_rate,
                timestamp=(start_ts + segment_start) & 0xFFFFFFFF,
                marker=not plan,  # only the very first packet of the event (§2.5.1.3)
                event=TelephoneEvent(event, end, self.volume, duration),
            ))

        elapsed = step
        while elapsed < total:
            if elapsed - segment_start > MAX_DURATION:
                # §2.5.2.3: close the full segment, continue in a new one at T + 0xFFFF.
                emit(elapsed, MAX_DURATION, end=False)
                segment_start += MAX_DURATION
            emit(elapsed, elapsed - segment_start, end=False)
            elapsed += step
        if total - segment_start > MAX_DURATION:
            emit(total, MAX_DURATION, end=False)
            segment_start += MAX_DURATION
        for repeat in range(self.end_repeats):  # §2.5.1.4: the final packet three times
            emit(total, total - segment_start, end=True)
            last = plan[-1]
            plan[-1] = EventPacket(last.offset_ms + repeat * self.end_spacing_ms, last.timestamp,
                                   last.marker, last.event)
        return plan


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """An event reported once by the receiver."""

    event: int
    timestamp: int
    duration: int  # as of the first packet seen
    ended: bool  # the first packet seen was already an end packet (start packets lost)
    volume: int

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class TelephoneEventReceiver:
    """Reports each telephone-event once, driven by packets only (§2.5.2).

    An event is identified by its RTP timestamp (§2.5.2.1: all packets of one event share it).
    Packets for a timestamp older than the newest event that is not remembered are stale and
    dropped, so the memory stays bounded without re-reporting forgotten events.
    """

    def __init__(self, memory: int = RECEIVER_MEMORY) -> None:
        self._seen: deque[int] = deque(maxlen=memory)
        self._newest: tuple[int, int, bool, int] | None = None  # timestamp, event, ended, duration

    def receive(self, packet: RtpPacket) -> DigitReceived | None:
        """Feed one telephone-event RTP packet; raises TelephoneEventError on a bad payload."""
        payload = TelephoneEvent.parse(packet.payload)
        ts = packet.timestamp
        newest = self._newest
        if ts in self._seen:
            if newest is not None and newest[0] == ts:
                self._newest = (ts, newest[1], newest[2] or payload.end, max(newest[3], payload.duration))
            return None
        if newest is not None and _signed32(ts - newest[0]) < 0:
            return None  # stale: older than an event already reported
        self._seen.append(ts)
        self._newest = (ts, payload.event, payload.end, payload.duration)
        if (newest is not None and not newest[2] and newest[1] == payload.event
                and ts == (newest[0] + MAX_DURATION) & 0xFFFFFFFF):
            return None  # next segment of a long event (§2.5.2.3), already reported
        return DigitReceived(payload.event, ts, payload.duration, payload.end, payload.volume)
