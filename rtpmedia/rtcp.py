"""RTCP (RFC 3550 §6) — sans-IO: compound packets, report blocks, the transmission interval.

How it works:

* Records: `SenderReport` (§6.4.1, with `SenderInfo` and `ReportBlock`s), `ReceiverReport`
  (§6.4.2), `SourceDescription` (§6.5: `SdesChunk`s of `SdesItem`s, `cname` the one that matters)
  and `Bye` (§6.6, optional reason). Each validates its fields (`RtcpError`) and has `to_bytes()`.
* `build(packets, padding=0)` concatenates packets into one compound datagram, the padding (a
  multiple of 4, §6.4.1) on the last one. The adapter's compound is SR or RR + SDES CNAME (§6.1).
* `parse(data)` is strict and bounded: it returns the known packets of a compound datagram, or
  raises `RtcpError` (a `ValueError`, and nothing else) naming what is wrong: not version 2, a
  length running past the datagram or not adding up to it, padding other than on the last packet
  or not a multiple of 4 within the packet, more than ``max_blocks`` report blocks in all, a first
  packet that is not SR or RR (§A.2; ``compound=False`` lifts that for single packets). Packet
  types it does not know (APP, RFC 4585 feedback, XR ...) are skipped. Texts (SDES values are
  bytes; the BYE reason) are UTF-8, decoded with replacement so a bad octet does not lose a BYE.
* `report_block(receiver, now)` makes the §6.4.1 block for one `RtpReceiver` exactly as §A.3
  says, and `round_trip(block, arrival_ntp)` the RTT from a block about our stream.
* `RtcpStats` is what an adapter learns from the peer's blocks about our stream (RTT, loss, jitter).
* `rtcp_interval(...)` is the §6.3 / §A.7 interval: deterministic part (at least ``min_time``,
  5 s, halved before the first report), times a random factor 0.5..1.5, divided by e - 3/2.

NTP timestamps are 64-bit fixed point seconds since 1900 (`ntp_timestamp(unix_time)`); LSR, DLSR
and the RTT arithmetic use the middle 32 bits (16.16 fixed point, `ntp_middle`).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .rtp import RtpReceiver

__all__ = [
    "BYE", "RR", "SDES", "SR", "CNAME", "COMPENSATION", "MAX_REPORT_BLOCKS", "MAX_RTCP_SIZE", "RTCP_MIN_TIME",
    "Bye", "ReceiverReport", "ReportBlock", "RtcpError", "RtcpPacket", "RtcpStats", "SdesChunk", "SdesItem",
    "SenderInfo", "SenderReport", "SourceDescription", "build", "deterministic_interval", "dlsr_units",
    "ntp_middle", "ntp_timestamp", "parse", "report_block", "round_trip", "rtcp_interval", "update_avg_size",
]

SR, RR, SDES, BYE = 200, 201, 202, 203  # packet types (§12.1)
CNAME = 1  # SDES item type (§6.5.1); 0 ends a chunk's item list
RTCP_VERSION = 2
MAX_RTCP_SIZE = 4096  # bytes; a compound of ours is < 100
MAX_REPORT_BLOCKS = 31  # per compound, by default (one packet's 5-bit count)
MAX_COUNT = 31
RTCP_MIN_TIME = 5.0  # seconds (§6.2)
COMPENSATION = math.e - 1.5  # §6.3.1: the randomisation's average is e - 3/2 times too long
SENDER_BW_FRACTION = 0.25
NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
IP_UDP_OVERHEAD = 28  # IPv4 + UDP headers, counted in the average RTCP size (§6.2)

_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER = struct.Struct("!IQIII")  # SSRC of sender + sender info
_U32 = struct.Struct("!I")


class RtcpError(ValueError):
    """A malformed RTCP datagram or an invalid RTCP record; ``reason`` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise RtcpError(f"{name} {value} is outside {low}..{high}")


def _header(count: int, packet_type: int, body_size: int, padding: int) -> bytes:
    first = (RTCP_VERSION << 6) | (0x20 if padding else 0) | count
    return _HEADER.pack(first, packet_type, (body_size + padding) // 4)


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """A reception report about one source (§6.4.1)."""

    ssrc: int
    fraction_lost: int = 0  # lost / expected since the last report, 8-bit fixed point
    cumulative_lost: int = 0  # 24-bit signed
    highest_sequence: int = 0  # extended highest sequence number received
    jitter: int = 0  # interarrival jitter, timestamp units
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp from the source, 0: none
    dlsr: int = 0  # delay since that SR, 1/65536 s

    def __post_init__(self) -> None:
        _check("report block ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check("fraction lost", self.fraction_lost, 0, 255)
        _check("cumulative lost", self.cumulative_lost, -0x800000, 0x7FFFFF)
        for name in ("highest_sequence", "jitter", "lsr", "dlsr"):
            _check(name.replace("_", " "), getattr(self, name), 0, 0xFFFFFFFF)

    @property
    def fraction(self) -> float:
        return self.fraction_lost / 256

    def to_bytes(self) -> bytes:
        loss = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, loss, self.highest_sequence, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def unpack_from(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, loss, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = loss & 0xFFFFFF
        return cls(ssrc, loss >> 24, lost - (1 << 24) if lost & 0x800000 else lost, highest, jitter, lsr, dlsr)


def _check_reports(reports: tuple[ReportBlock, ...], extension: bytes) -> None:
    _check("report count", len(reports), 0, MAX_COUNT)
    if len(extension) % 4:
        raise RtcpError("profile-specific extension must be a multiple of 4 bytes")


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """The sender information of an SR (§6.4.1): the same instant as NTP and RTP time, counts."""

    ntp_timestamp: int  # 64-bit fixed point seconds since 1900
    rtp_timestamp: int
    packet_count: int
    octet_count: int  # payload octets

    def __post_init__(self) -> None:
        _check("NTP timestamp", self.ntp_timestamp, 0, (1 << 64) - 1)
        _check("RTP timestamp", self.rtp_timestamp, 0, 0xFFFFFFFF)
        _check("packet count", self.packet_count, 0, 0xFFFFFFFF)
        _check("octet count", self.octet_count, 0, 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1). ``extension``: profile-specific bytes after the blocks, kept as they are."""

    ssrc: int
    sender: SenderInfo
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check_reports(self.reports, self.extension)

    def to_bytes(self, padding: int = 0) -> bytes:
        s = self.sender
        body = b"".join([_SENDER.pack(self.ssrc, s.ntp_timestamp, s.rtp_timestamp, s.packet_count, s.octet_count),
                         *(r.to_bytes() for r in self.reports), self.extension])
        return _header(len(self.reports), SR, len(body), padding) + body + _pad(padding)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2): from a participant that has not sent RTP lately."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""

    def __post_init__(self) -> None:
        _check("ssrc", self.ssrc, 0, 0xFFFFFFFF)
        _check_reports(self.reports, self.extension)

    def to_bytes(self, padding: int = 0) -> bytes:
        body = b"".join([_U32.pack(self.ssrc), *(r.to_bytes() for r in self.reports), self.extension])
        return _header(len(self.reports), RR, len(body), padding) + body + _pad(padding)


@dataclass(frozen=True, slots=True)
class SdesItem:
    """One SDES item (§6.5): type 1..255 (CNAME = 1), up to 255 octets (UTF-8 text for 1..7)."""

    type: int
    value: bytes

    def __post_init__(self) -> None:
        _check("SDES item type", self.type, 1, 255)
        _check("SDES item length", len(self.value), 0, 255)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    ssrc: int
    items: tuple[SdesItem, ...] = ()

    def __post_init__(self) -> None:
        _check("ssrc", self.ssrc, 0, 0xFFFFFFFF)

    @property
    def cname(self) -> str | None:
        for item in self.items:
            if item.type == CNAME:
                return item.value.decode("utf-8", "replace")
        return None

    def to_bytes(self) -> bytes:
        items = b"".join(bytes([i.type, len(i.value)]) + i.value for i in self.items)
        return _U32.pack(self.ssrc) + items + bytes(4 - len(items) % 4)  # >= 1 null octet (§6.5)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (§6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __post_init__(self) -> None:
        _check("SDES chunk count", len(self.chunks), 0, MAX_COUNT)

    @classmethod
    def cname_of(cls, ssrc: int, cname: str) -> SourceDescription:
        return cls((SdesChunk(ssrc, (SdesItem(CNAME, cname.encode()),)),))

    def to_bytes(self, padding: int = 0) -> bytes:
        body = b"".join(c.to_bytes() for c in self.chunks)
        return _header(len(self.chunks), SDES, len(body), padding) + body + _pad(padding)


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (§6.6): the sources leaving, and why (UTF-8, up to 255 octets)."""

    ssrcs: tuple[int, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        _check("BYE source count", len(self.ssrcs), 0, MAX_COUNT)
        for ssrc in self.ssrcs:
            _check("ssrc", ssrc, 0, 0xFFFFFFFF)
        if self.reason is not None:
            _check("BYE reason length", len(self.reason.encode()), 0, 255)

    def to_bytes(self, padding: int = 0) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode()
            body += bytes([len(text)]) + text + bytes(-(len(text) + 1) % 4)
        return _header(len(self.ssrcs), BYE, len(body), padding) + body + _pad(padding)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def _pad(padding: int) -> bytes:
    return bytes(padding - 1) + bytes([padding]) if padding else b""


def build(packets: Sequence[RtcpPacket], *, padding: int = 0) -> bytes:
    """One datagram of ``packets`` in order; ``padding`` octets (a multiple of 4, up to 252) go
    on the last. The §6.1 rules for a compound (SR/RR first, an SDES CNAME) are the caller's."""
    if not packets:
        raise RtcpError("an RTCP datagram needs at least one packet")
    if padding % 4 or not 0 <= padding <= 252:
        raise RtcpError(f"padding {padding} is not a multiple of 4 in 0..252")
    return b"".join(p.to_bytes(padding if i == len(packets) - 1 else 0) for i, p in enumerate(packets))


def parse(data: bytes, *, max_size: int = MAX_RTCP_SIZE, max_blocks: int = MAX_REPORT_BLOCKS,
          compound: bool = True) -> tuple[RtcpPacket, ...]:
    """The known packets of one RTCP datagram (see the module docstring); raise `RtcpError` only."""
    size = len(data)
    if size > max_size:
        raise RtcpError(f"datagram of {size} bytes exceeds the {max_size}-byte limit")
    if size < 4:
        raise RtcpError(f"datagram of {size} bytes is shorter than the 4-byte RTCP header")
    if size % 4:
        raise RtcpError(f"datagram of {size} bytes is not a multiple of 4 bytes")
    packets: list[RtcpPacket] = []
    offset = blocks = 0
    while offset < size:
        first, packet_type, length = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise RtcpError(f"RTCP version {first >> 6}, expected 2")
        end = offset + 4 + 4 * length
        if end > size:
            raise RtcpError(f"packet length {length} ({4 + 4 * length} bytes) runs past the end of the "
                            f"{size}-byte datagram at offset {offset}")
        if offset == 0 and compound and packet_type not in (SR, RR):
            raise RtcpError(f"compound packet begins with packet type {packet_type}, not SR or RR")
        body_end = end
        if first & 0x20:  # P: the last octet counts the padding, itself included (§6.4.1)
            if end != size:
                raise RtcpError(f"padding on packet type {packet_type}, which is not the last of the compound")
            pad = data[end - 1]
            if pad == 0 or pad % 4 or pad > 4 * length:
                raise RtcpError(f"padding count {pad} is invalid for a packet of {4 + 4 * length} bytes")
            body_end -= pad
        body = bytes(data[offset + 4 : body_end])
        count = first & 0x1F
        if packet_type in (SR, RR):
            blocks += count
            if blocks > max_blocks:
                raise RtcpError(f"more than {max_blocks} report blocks")
            packets.append(_parse_report(packet_type, count, body))
        elif packet_type == SDES:
            packets.append(_parse_sdes(count, body))
        elif packet_type == BYE:
            packets.append(_parse_bye(count, body))
        offset = end  # other types (APP, feedback, XR ...) are skipped
    return tuple(packets)


def _parse_report(packet_type: int, count: int, body: bytes) -> SenderReport | ReceiverReport:
    fixed = _SENDER.size if packet_type == SR else 4
    name = "SR" if packet_type == SR else "RR"
    need = fixed + _BLOCK.size * count
    if len(body) < need:
        raise RtcpError(f"{name} with {count} report blocks needs {need} bytes, has {len(body)}")
    reports = tuple(ReportBlock.unpack_from(body, fixed + _BLOCK.size * i) for i in range(count))
    extension = body[need:]
    if packet_type == RR:
        return ReceiverReport(_U32.unpack_from(body)[0], reports, extension)
    ssrc, ntp, rtp_ts, packets, octets = _SENDER.unpack_from(body)
    return SenderReport(ssrc, SenderInfo(ntp, rtp_ts, packets, octets), reports, extension)


def _parse_sdes(count: int, body: bytes) -> SourceDescription:
    chunks = []
    pos, size = 0, len(body)
    for n in range(count):
        if pos + 4 > size:
            raise RtcpError(f"SDES chunk {n + 1} of {count} runs past the end of the packet")
        ssrc = _U32.unpack_from(body, pos)[0]
        pos += 4
        items = []
        while True:
            if pos >= size:
                raise RtcpError(f"SDES chunk {n + 1} is not terminated by a null item")
            item_type = body[pos]
            if item_type == 0:  # end of the list, then null octets to the next 32-bit boundary
                pos = (pos + 4) & ~3
                break
            if pos + 2 > size or pos + 2 + body[pos + 1] > size:
                raise RtcpError(f"SDES item of type {item_type} runs past the end of the packet")
            length = body[pos + 1]
            items.append(SdesItem(item_type, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if pos != size:
        raise RtcpError(f"SDES has {size - pos} bytes after its {count} chunks")
    return SourceDescription(tuple(chunks))


def _parse_bye(count: int, body: bytes) -> Bye:
    need = 4 * count
    if len(body) < need:
        raise RtcpError(f"BYE of {count} sources needs {need} bytes, has {len(body)}")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    rest = body[need:]
    if not rest:
        return Bye(ssrcs)
    length = rest[0]
    if 1 + length > len(rest):
        raise RtcpError(f"BYE reason of {length} bytes runs past the end of the packet")
    if len(rest) - 1 - length >= 4:
        raise RtcpError(f"BYE has {len(rest) - 1 - length} bytes after its reason")
    return Bye(ssrcs, rest[1 : 1 + length].decode("utf-8", "replace"))


# ---- timestamps and report blocks ----------------------------------------------------------------
def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (seconds since 1900, 32.32 fixed point) of a ``time.time()`` value."""
    return round((unix_time + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp (16.16 fixed point): the LSR format."""
    return (ntp >> 16) & 0xFFFFFFFF


def dlsr_units(seconds: float) -> int:
    """A delay in the DLSR unit of 1/65536 s, clamped to 32 bits."""
    return min(0xFFFFFFFF, max(0, int(seconds * 65536)))


def report_block(receiver: RtpReceiver, now: float) -> ReportBlock:
    """The §6.4.1 block for the source ``receiver`` follows, as §A.3 computes it, starting the
    next loss interval. ``now`` is on the clock of ``receiver.last_sr_arrival``."""
    if receiver.ssrc is None:
        raise RtcpError("no source to report on")
    arrival = receiver.last_sr_arrival
    return ReportBlock(
        ssrc=receiver.ssrc,
        fraction_lost=receiver.take_fraction_lost(),
        cumulative_lost=min(0x7FFFFF, max(-0x800000, receiver.cumulative_lost)),
        highest_sequence=receiver.extended_max & 0xFFFFFFFF,
        jitter=min(0xFFFFFFFF, int(receiver.jitter)),
        lsr=receiver.last_sr,
        dlsr=0 if arrival is None or not receiver.last_sr else dlsr_units(now - arrival),
    )


def round_trip(block: ReportBlock, arrival_ntp: int) -> float | None:
    """Round-trip time in seconds from a block about our stream that arrived at ``arrival_ntp``
    (§6.4.1: A - LSR - DLSR); None without an SR to refer to; 0 when rounding makes it negative."""
    if block.lsr == 0:
        return None
    delta = (ntp_middle(arrival_ntp) - block.lsr - block.dlsr) & 0xFFFFFFFF
    return 0.0 if delta & 0x80000000 else delta / 65536


# ---- the transmission interval (§6.3, §A.7) --------------------------------------------------------
def deterministic_interval(members: int, senders: int, rtcp_bw: float, we_sent: bool, avg_rtcp_size: float,
                           initial: bool, min_time: float = RTCP_MIN_TIME) -> float:
    """§6.3.1 Td in seconds: ``rtcp_bw`` in octets/s (5 % of the session bandwidth), the average
    compound size in octets with lower-layer headers; ``min_time`` is halved for the first report."""
    if members < 1 or senders < 0 or rtcp_bw <= 0 or avg_rtcp_size <= 0 or min_time <= 0:
        raise ValueError("need members >= 1, senders >= 0, and a positive bandwidth, size and minimum")
    if initial:
        min_time /= 2
    n = members
    if senders <= members * SENDER_BW_FRACTION:  # senders share a quarter, receivers the rest
        if we_sent:
            rtcp_bw *= SENDER_BW_FRACTION
            n = senders
        else:
            rtcp_bw *= 1 - SENDER_BW_FRACTION
            n -= senders
    return max(min_time, avg_rtcp_size * n / rtcp_bw)


def rtcp_interval(members: int, senders: int, rtcp_bw: float, we_sent: bool, avg_rtcp_size: float,
                  initial: bool, rng: random.Random, min_time: float = RTCP_MIN_TIME) -> float:
    """§A.7 rtcp_interval(): Td times a uniform factor in [0.5, 1.5), divided by e - 3/2."""
    td = deterministic_interval(members, senders, rtcp_bw, we_sent, avg_rtcp_size, initial, min_time)
    return td * (rng.random() + 0.5) / COMPENSATION


def update_avg_size(avg_rtcp_size: float, datagram_size: int) -> float:
    """§6.3.3: avg = 1/16 * size + 15/16 * avg, the size with IP and UDP headers."""
    return avg_rtcp_size + (datagram_size + IP_UDP_OVERHEAD - avg_rtcp_size) / 16


@dataclass(slots=True)
class RtcpStats:
    """What RTCP tells about a leg: counts, and the peer's view of our stream from its last block."""

    reports_sent: int = 0  # compound packets sent (the final one with the BYE included)
    reports_received: int = 0  # SR and RR packets received
    sender_reports_received: int = 0
    blocks_received: int = 0  # report blocks about our stream
    fraction_lost: float = 0.0  # of our packets in the peer's last interval, 0..1
    cumulative_lost: int = 0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None  # None until a block refers to an SR of ours
    peer_cname: str | None = None
    bye_received: bool = False
    bye_reason: str | None = None
    errors: int = 0  # datagrams on the RTCP port that did not parse

    def note_block(self, block: ReportBlock, arrival_ntp: int, clock_rate: int = 8000) -> None:
        """A report block about our stream arrived at ``arrival_ntp``."""
        self.blocks_received += 1
        self.fraction_lost = block.fraction
        self.cumulative_lost = block.cumulative_lost
        self.jitter_ms = block.jitter * 1000 / clock_rate
        rtt = round_trip(block, arrival_ntp)
        if rtt is not None:
            self.rtt_ms = rtt * 1000
