"""RTP data packets, sender and receiver state (RFC 3550) — sans-IO.

How it works:

* `RtpPacket` is a frozen, validated record of one RTP data packet (RFC 3550 §5.1). `parse()` turns
  a datagram into one or raises `RtpError` naming the reason; `to_bytes()` is its inverse.
* `RtpSender` owns the outgoing SSRC, sequence number and timestamp. It numbers packets, wraps the
  16-bit sequence and 32-bit timestamp, advances the timestamp one frame (ptime) per audio packet
  and sets the marker bit on the first packet of a talkspurt (RFC 3551 §4.1). Telephone-events and
  other payloads share its sequence space through `packet()`.
* `RtpReceiver` follows one peer SSRC: extended sequence numbers with the probation, wrap and
  resync rules of RFC 3550 Appendix A.1, duplicate suppression over a short window, loss per
  §A.3 (cumulative and per report interval), interarrival jitter per §A.8 from arrival times the
  adapter passes in, and the LSR / arrival time of the source's last RTCP SR (see `rtcp`).

No sockets and no clocks here. Symmetric RTP (sending to where the peer's packets come from,
RFC 4961) and RTCP demultiplexing (RFC 5761) are the adapter's job.

Bounds (peer-controlled input): a datagram longer than `MAX_PACKET_SIZE` is refused; the duplicate
window is `DUPLICATE_WINDOW` packets; nothing else grows with peer input.
"""

from __future__ import annotations

import enum
import random
import struct
from dataclasses import dataclass, field

__all__ = [
    "MAX_PACKET_SIZE",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiver",
    "RtpSender",
    "SeqVerdict",
    "Reception",
]

RTP_VERSION = 2
HEADER_SIZE = 12
MAX_PACKET_SIZE = 4096  # G.711 at 60 ms is 492 bytes; anything near this size is not voice
RTP_SEQ_MOD = 1 << 16
MAX_DROPOUT = 3000  # RFC 3550 §A.1 constants
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2
DUPLICATE_WINDOW = 128  # packets behind the highest one for which duplicates are detected

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")


class RtpError(Exception):
    """Base of rtpmedia errors: a malformed or unacceptable RTP datagram or record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise RtpError(f"{name} {value} is outside {low}..{high}")


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """A header extension (RFC 3550 §5.3.1): a profile-defined 16-bit id and 32-bit-aligned data."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_range("extension profile", self.profile, 0, 0xFFFF)
        if len(self.data) % 4:
            raise RtpError("extension data must be a multiple of 4 bytes")
        _check_range("extension length", len(self.data) // 4, 0, 0xFFFF)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1). The version is always 2.

    ``padding`` is the number of padding octets (0 = P bit clear); the last padding octet holds
    the count, the rest are zero on output and ignored on input (§5.1).
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0

    def __post_init__(self) -> None:
        _check_range("payload type", self.payload_type, 0, 127)
        _check_range("sequence", self.sequence, 0, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0, 0xFFFFFFFF)
        _check_range("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check_range("CSRC count", len(self.csrcs), 0, 15)
        for csrc in self.csrcs:
            _check_range("csrc", csrc, 0, 0xFFFFFFFF)
        _check_range("padding", self.padding, 0, 255)

    @classmethod
    def parse(cls, data: bytes, max_size: int = MAX_PACKET_SIZE) -> RtpPacket:
        """Parse one datagram; raise `RtpError` (and only that) if it is not a valid RTP packet."""
        size = len(data)
        if size > max_size:
            raise RtpError(f"packet of {size} bytes exceeds the {max_size}-byte limit")
        if size < HEADER_SIZE:
            raise RtpError(f"packet of {size} bytes is shorter than the 12-byte RTP header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise RtpError(f"RTP version {first >> 6}, expected 2")
        offset = HEADER_SIZE
        csrc_count = first & 0x0F
        if offset + 4 * csrc_count > size:
            raise RtpError(f"CSRC count {csrc_count} runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset)
        offset += 4 * csrc_count
        extension = None
        if first & 0x10:  # X bit, §5.3.1
            if offset + 4 > size:
                raise RtpError("header extension runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            offset += 4
            if offset + 4 * words > size:
                raise RtpError(f"header extension of {words} words runs past the end of the packet")
            extension = RtpExtension(profile, bytes(data[offset : offset + 4 * words]))
            offset += 4 * words
        end = size
        padding = 0
        if first & 0x20:  # P bit: the last octet counts the padding, itself included (§5.1)
            padding = data[-1]
            if padding == 0 or offset + padding > size:
                raise RtpError(f"padding count {padding} is invalid for a {size}-byte packet")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrcs=tuple(csrcs),
            extension=extension,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension is not None:
            first |= 0x10
        second = self.payload_type | (0x80 if self.marker else 0)
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            parts.append(_EXT_HEADER.pack(self.extension.profile, len(self.extension.data) // 4))
            parts.append(self.extension.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


class RtpSender:
    """Sequence and timestamp state for one outgoing stream (RFC 3550 §5.1).

    The initial sequence number and timestamp are random unless given (§5.1: "SHOULD be random").
    Call `audio_frame()` once per ptime; call `skip_frames()` for frames not sent (silence
    suppression, hold), so the timestamp keeps pace with the clock and the next packet is marked.
    """

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        clock_rate: int = 8000,
        ptime: int = 20,
        seq: int | None = None,
        ts: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        _check_range("ssrc", ssrc, 0, 0xFFFFFFFF)
        _check_range("payload type", payload_type, 0, 127)
        if clock_rate <= 0 or ptime <= 0 or (clock_rate * ptime) % 1000:
            raise RtpError(f"ptime {ptime} ms is not a whole number of samples at {clock_rate} Hz")
        draw = rng if rng is not None else random.SystemRandom()
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.samples_per_frame = clock_rate * ptime // 1000
        self.sequence = draw.getrandbits(16) if seq is None else seq
        self.timestamp = draw.getrandbits(32) if ts is None else ts
        _check_range("sequence", self.sequence, 0, 0xFFFF)
        _check_range("timestamp", self.timestamp, 0, 0xFFFFFFFF)
        self._talkspurt_start = True

    def packet(self, payload: bytes, *, payload_type: int, timestamp: int, marker: bool) -> RtpPacket:
        """Build a packet with the next sequence number, leaving the media timestamp alone.

        Used for payloads on the same SSRC with their own timestamp rules (RFC 4733 events).
        """
        packet = RtpPacket(payload_type, self.sequence, timestamp, self.ssrc, payload, marker)
        self.sequence = (self.sequence + 1) % RTP_SEQ_MOD
        return packet

    def audio_frame(self, payload: bytes) -> RtpPacket:
        """The next audio packet: current timestamp, marked if it starts a talkspurt."""
        packet = self.packet(
            payload, payload_type=self.payload_type, timestamp=self.timestamp, marker=self._talkspurt_start
        )
        self._talkspurt_start = False
        self.timestamp = (self.timestamp + self.samples_per_frame) & 0xFFFFFFFF
        return packet

    def skip_frames(self, frames: int = 1) -> None:
        """Account for frames of silence not sent: advance the timestamp, mark the next packet."""
        if frames < 0:
            raise RtpError("cannot skip a negative number of frames")
        self.timestamp = (self.timestamp + frames * self.samples_per_frame) & 0xFFFFFFFF
        self._talkspurt_start = True


class SeqVerdict(enum.Enum):
    """What `RtpReceiver.receive` made of a packet."""

    ACCEPTED = "accepted"  # in order, reordered within the window, or starting a new source
    PROBATION = "probation"  # new source not yet confirmed by MIN_SEQUENTIAL packets in order
    DUPLICATE = "duplicate"  # already seen: drop it
    BAD_JUMP = "bad-jump"  # a large jump; held until the next packet confirms a restart
    WRONG_SSRC = "wrong-ssrc"  # not the source this receiver follows


@dataclass(frozen=True, slots=True)
class Reception:
    verdict: SeqVerdict
    extended_sequence: int | None = None  # set when the packet is usable (ACCEPTED)

    @property
    def usable(self) -> bool:
        return self.verdict is SeqVerdict.ACCEPTED


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@dataclass(slots=True)
class RtpReceiver:
    """Reception state for one peer source (RFC 3550 §A.1, §A.3, §A.8).

    The first packet fixes the SSRC unless ``ssrc`` is given; packets from other sources are
    refused with WRONG_SSRC (an SSRC change after re-negotiation calls for a new receiver).
    ``arrival`` is the adapter's monotonic clock in seconds.
    """

    clock_rate: int = 8000
    ssrc: int | None = None
    received: int = 0
    duplicates: int = 0
    jitter: float = 0.0  # §A.8 estimate, in timestamp units
    _started: bool = field(default=False, init=False)
    _probation: int = field(default=MIN_SEQUENTIAL, init=False)
    _max_seq: int = field(default=0, init=False)
    _cycles: int = field(default=0, init=False)
    _base_seq: int = field(default=0, init=False)
    _bad_seq: int = field(default=RTP_SEQ_MOD + 1, init=False)
    _seen: int = field(default=0, init=False)  # bit i set: extended sequence (highest - i) was received
    _last_arrival: float | None = field(default=None, init=False)
    _last_timestamp: int = field(default=0, init=False)
    _expected_prior: int = field(default=0, init=False)  # §A.3, at the last report block
    _received_prior: int = field(default=0, init=False)
    last_sr: int = 0  # middle 32 bits of the NTP timestamp of the source's last RTCP SR (§6.4.1 LSR)
    last_sr_arrival: float | None = None  # when that SR arrived (the adapter's clock, seconds)

    def receive(self, packet: RtpPacket, arrival: float) -> Reception:
        if self.ssrc is None:
            self.ssrc = packet.ssrc
        elif packet.ssrc != self.ssrc:
            return Reception(SeqVerdict.WRONG_SSRC)
        seq = packet.sequence
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self._max_seq = (seq - 1) % RTP_SEQ_MOD
            self._probation = MIN_SEQUENTIAL
        udelta = (seq - self._max_seq) % RTP_SEQ_MOD
        if self._probation:
            # §A.1: a source is valid once MIN_SEQUENTIAL packets arrive in sequence.
            if udelta == 1:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    return self._accept(packet, arrival, advance=0)
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return Reception(SeqVerdict.PROBATION)
        if 0 < udelta < MAX_DROPOUT:  # in order, with a permissible gap
            if seq < self._max_seq:
                self._cycles += RTP_SEQ_MOD  # wrapped 65535 -> 0
            self._max_seq = seq
            return self._accept(packet, arrival, advance=udelta)
        if udelta == 0 or udelta > RTP_SEQ_MOD - MAX_MISORDER:  # duplicate or reordered
            behind = (RTP_SEQ_MOD - udelta) % RTP_SEQ_MOD
            if behind < DUPLICATE_WINDOW and self._seen >> behind & 1:
                self.duplicates += 1
                return Reception(SeqVerdict.DUPLICATE)
            if behind < DUPLICATE_WINDOW:
                self._seen |= 1 << behind
            self.received += 1
            return Reception(SeqVerdict.ACCEPTED, self.extended_max - behind)
        # A very large jump: believe it only when the next packet follows it (peer restarted).
        if seq == self._bad_seq:
            self._init_seq(seq)
            return self._accept(packet, arrival, advance=0)
        self._bad_seq = (seq + 1) % RTP_SEQ_MOD
        return Reception(SeqVerdict.BAD_JUMP)

    def _init_seq(self, seq: int) -> None:
        # §A.1 init_seq(); a restart also starts statistics afresh.
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._seen = 0
        self._last_arrival = None
        self._expected_prior = 0
        self._received_prior = 0

    def _accept(self, packet: RtpPacket, arrival: float, advance: int) -> Reception:
        self._seen = ((self._seen << advance) | 1) & ((1 << DUPLICATE_WINDOW) - 1)
        self.received += 1
        self._update_jitter(packet.timestamp, arrival)
        return Reception(SeqVerdict.ACCEPTED, self.extended_max)

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        # §A.8 / §6.4.1: D(i-1,i) = (Rj - Ri) - (Sj - Si) in timestamp units; J += (|D| - J) / 16.
        # Only in-order packets feed it, so a reordered packet does not count twice.
        if self._last_arrival is not None:
            transit_delta = (arrival - self._last_arrival) * self.clock_rate - _signed32(
                timestamp - self._last_timestamp
            )
            self.jitter += (abs(transit_delta) - self.jitter) / 16.0
        self._last_arrival = arrival
        self._last_timestamp = timestamp

    @property
    def extended_max(self) -> int:
        """Highest extended sequence number received (§A.1: cycles + max_seq)."""
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source was validated (§A.3)."""
        return self.extended_max - self._base_seq + 1 if self._started and not self._probation else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (§A.3), duplicates excluded, never negative."""
        return max(0, self.expected - self.received)

    @property
    def cumulative_lost(self) -> int:
        """§A.3 ``expected - received``, signed (negative when packets from before the first one
        counted arrive late); `lost` is the same, never negative."""
        return self.expected - self.received

    @property
    def validated(self) -> bool:
        """The source passed probation (§A.1): its statistics mean something."""
        return self._started and not self._probation

    def take_interval(self) -> tuple[int, int]:
        """(expected, lost) since the previous call (§A.3 ``expected_interval``, ``lost_interval``,
        the latter possibly negative), and start the next interval. Called once per report block."""
        expected, received = self.expected, self.received
        expected_interval = expected - self._expected_prior
        received_interval = received - self._received_prior
        self._expected_prior, self._received_prior = expected, received
        return expected_interval, expected_interval - received_interval

    def take_fraction_lost(self) -> int:
        """§A.3 fraction lost since the previous call, 8-bit fixed point (0 when nothing was lost or
        more arrived than expected); starts the next interval."""
        expected_interval, lost_interval = self.take_interval()
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)

    def sender_report(self, ntp_timestamp: int, arrival: float) -> None:
        """The source's RTCP SR with this 64-bit NTP timestamp arrived at ``arrival`` (for the
        LSR and DLSR of the next report block, §6.4.1)."""
        self.last_sr = (ntp_timestamp >> 16) & 0xFFFFFFFF
        self.last_sr_arrival = arrival

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate
