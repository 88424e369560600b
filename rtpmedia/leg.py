"""One RTP media leg on asyncio: paced G.711 out, packets in, digits out (the IVR's media side).

The thin adapter around the sans-IO pieces: a UDP socket, the shared
:class:`~rtpmedia.clock.MediaClock` of its loop (one timer for all legs, 20 ms frames without
drift, batched in-band DTMF), :class:`~rtpmedia.rtp.RtpSender` / :class:`~rtpmedia.rtp.RtpReceiver`,
G.711 by tables and RFC 4733 events both ways. Symmetric RTP (RFC 4961): once a packet from the
peer's SSRC arrives, we send to the address it came from, whatever the SDP said (NAT). Digits come
out through ``on_digit(digit, source)`` with source ``"rfc4733"`` or ``"inband"``.

Audio to send is a queue of prompts (``play``), each G.711-encoded ONCE when queued
(:func:`encode_prompt`; :func:`encode_cached` shares one encoding between every leg that plays the
same array) and padded with codec silence to whole 20 ms frames; a tick only slices 160 bytes out
of it and prepends the 12-byte header. ``play(..., loop=True)`` repeats until :meth:`MediaLeg.stop`
(anything queued behind a looping prompt waits for ``stop()``, which drops everything).
``on_played`` is called once each time the queue runs dry (after its last packet went out), never
after ``stop()``. When nothing is queued the leg sends nothing: its RTP timestamp keeps running
with the clock and the next packet is marked (RFC 3550 §5.1). ``sent`` counts packets sent (audio
and events), ``octets_sent`` their payload octets, ``received`` usable packets in, ``late_frames``
packets sent more than 10 ms late.

RTCP (RFC 3550 §6, on port P+1 of an RTP port P, §11; no rtcp-mux): ``await open_rtcp(leg)`` binds
the leg's RTP host and port + 1 (or the ``local_host``/``local_port``/``sock`` given) and returns
the leg's :class:`RtcpEndpoint`. It sends a compound SR (RR when the leg sent no RTP in the last
two intervals, §6.4) with a report block per validated peer source (:func:`~rtpmedia.rtcp.report_block`)
+ SDES CNAME at the §6.3 interval (``min_interval`` 5 s; lower only in tests), one
``loop.call_later`` per leg, to ``remote`` (default: the host of ``leg.remote`` and its port + 1,
followed as symmetric RTP moves it) and, once an RTCP packet has arrived, to where it came from
(symmetric RTCP). Incoming SRs give the LSR / arrival of the next blocks; blocks about our stream
update ``leg.rtcp_stats`` (:class:`~rtpmedia.rtcp.RtcpStats`: counts, the peer's fraction and
cumulative loss, jitter in ms, RTT in ms per §6.4.1); SDES gives the peer's CNAME; a BYE is
recorded. ``leg.close(reason)`` sends SR/RR + SDES + BYE (with the reason), then closes both ports.
A leg without RTCP behaves as before (``leg.rtcp`` is None, ``rtcp_stats`` stays at zero).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import struct
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt

from .clock import MediaClock, Membership
from .g711 import ALAW_ENCODE_TABLE, ULAW_ENCODE_TABLE
from .rtcp import (
    IP_UDP_OVERHEAD,
    RTCP_MIN_TIME,
    Bye,
    ReceiverReport,
    RtcpError,
    RtcpPacket,
    RtcpStats,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build,
    ntp_timestamp,
    parse,
    report_block,
    rtcp_interval,
    update_avg_size,
)
from .rtp import MAX_PACKET_SIZE, RtpError, RtpPacket, RtpReceiver, RtpSender
from .telephone_event import EventPacket, TelephoneEventReceiver, TelephoneEventSender

__all__ = ["EncodedPrompt", "MediaLeg", "RtcpEndpoint", "encode_cached", "encode_prompt", "open_leg", "open_rtcp",
           "FRAME"]

log = logging.getLogger("rtpmedia.leg")

FRAME = 160  # samples (and G.711 bytes) in 20 ms at 8 kHz
CODECS = {0: ULAW_ENCODE_TABLE, 8: ALAW_ENCODE_TABLE}
MAX_SOURCES = 4   # SSRCs from one peer besides the first that are tracked at once
SILENCE = {0: 0xFF, 8: 0xD5}  # the code of sample 0
_HDR = struct.Struct("!BBHII")
_RX = struct.Struct("!xBHII")
_TS = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, eq=False)
class EncodedPrompt:
    """A prompt in G.711, ready to be sliced into 160-byte payloads by any number of legs."""

    payload_type: int
    data: bytes  # whole frames: the last one padded with codec silence
    samples: int  # length of the audio before padding

    @property
    def frames(self) -> int:
        return len(self.data) // FRAME


def encode_prompt(samples: npt.ArrayLike, payload_type: int = 0) -> EncodedPrompt:
    """Encode int16 8 kHz audio once (one table lookup for the whole prompt)."""
    if payload_type not in CODECS:
        raise ValueError(f"payload type {payload_type}: only PCMU (0) and PCMA (8)")
    pcm = np.asarray(samples)
    if pcm.ndim != 1 or (pcm.size and pcm.dtype.kind not in "iu"):
        raise TypeError("audio must be a one-dimensional integer (int16) array")
    pcm = pcm.astype(np.int16, copy=False)
    pad = -pcm.size % FRAME
    codes = CODECS[payload_type][pcm.view(np.uint16)]
    data = codes.tobytes() + bytes([SILENCE[payload_type]]) * pad
    return EncodedPrompt(payload_type, data, int(pcm.size))


_cache: dict[tuple[int, int], tuple[weakref.ref[np.ndarray], EncodedPrompt]] = {}


def encode_cached(samples: npt.ArrayLike, payload_type: int = 0) -> EncodedPrompt:
    """:func:`encode_prompt`, remembered per numpy array object (and payload type) while the array
    lives: a prompt played to 1,000 legs is encoded once. The array must not be changed in place
    after it was played (prompt arrays, e.g. from :class:`~rtpmedia.prompts.PromptCache`, are not)."""
    if not isinstance(samples, np.ndarray):
        return encode_prompt(samples, payload_type)
    key = (id(samples), payload_type)
    hit = _cache.get(key)
    if hit is not None and hit[0]() is samples:
        return hit[1]
    prompt = encode_prompt(samples, payload_type)

    def forget(ref: weakref.ref[np.ndarray], key: tuple[int, int] = key) -> None:
        entry = _cache.get(key)
        if entry is not None and entry[0] is ref:
            del _cache[key]

    _cache[key] = (weakref.ref(samples, forget), prompt)
    return prompt


class _Header:
    """The fields RtpReceiver reads, filled in place per packet (no RtpPacket on the fast path)."""

    __slots__ = ("ssrc", "sequence", "timestamp")

    def __init__(self) -> None:
        self.ssrc = self.sequence = self.timestamp = 0


class MediaLeg(asyncio.DatagramProtocol):
    """One RTP leg (see the module docstring). Sends on ``clock`` (default: the loop's shared
    :meth:`MediaClock.default`), to ``remote`` until the peer's packets say otherwise.

    ``play(samples | EncodedPrompt, *, loop=False)``, ``stop()``, ``playing``, ``on_played``,
    ``send_digit(digit, duration_ms=100)``, ``on_digit(digit, source)``, ``close(reason=None)``;
    counters ``sent`` (packets), ``octets_sent`` (payload), ``received`` (usable packets),
    ``late_frames``; ``rtcp`` / ``rtcp_stats`` (see :func:`open_rtcp`). ``media_frame``,
    ``media_gap`` and ``inband_digit`` are called by the clock."""

    def __init__(self, remote: tuple[str, int], *, payload_type: int = 0, event_pt: int | None = 101,
                 on_digit: Callable[[str, str], None] | None = None, ssrc: int | None = None,
                 clock: MediaClock | None = None, on_played: Callable[[], None] | None = None) -> None:
        if payload_type not in CODECS:
            raise ValueError(f"payload type {payload_type}: only PCMU (0) and PCMA (8)")
        self.remote = remote
        self.payload_type, self.event_pt = payload_type, event_pt
        self.on_digit = on_digit or (lambda digit, source: None)
        self.on_played = on_played
        self.sender = RtpSender(ssrc if ssrc is not None else int.from_bytes(np.random.bytes(4), "big"),
                                payload_type)
        self.ssrc = self.sender.ssrc
        self.receiver = RtpReceiver()
        self._sources: dict[int, RtpReceiver] = {}   # other SSRCs from the peer (see datagram_received)
        self.events_in = TelephoneEventReceiver()
        self.events_out = TelephoneEventSender()
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = self.received = self.late_frames = self.octets_sent = 0
        self.rtcp: RtcpEndpoint | None = None
        self.rtcp_stats = RtcpStats()
        self.queue: deque[tuple[bytes, bool]] = deque()  # (G.711 frames, loop)
        self._data: bytes | None = None  # the prompt being sent (queue[0]), None when idle
        self._pos = 0
        self._mark = True  # the next audio packet starts a talkspurt
        self._gen = 0  # bumped by stop(): a pending on_played of older audio is dropped
        self._pending: deque[tuple[int, EventPacket]] = deque()  # (group frame, RFC 4733 packet)
        self._member: Membership | None = None
        self._push: Callable[[int, int, bytes], None] | None = None  # the DTMF channel's ring
        self._channel = 0
        self._ts_base = 0  # RTP timestamp of the group's frame 0: ts(frame) = ts_base + 160 * frame
        self._closed = False
        self._hdr = _Header()
        self._hdr_packet = cast(RtpPacket, self._hdr)  # RtpReceiver only reads ssrc/sequence/timestamp

    # ---- lifecycle ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.clock is None:
            self.clock = MediaClock.default(asyncio.get_running_loop())
        self._member = self.clock.register(self, alaw=self.payload_type == 8)
        self._push, self._channel = self._member.chunk.push, self._member.channel
        self._ts_base = (self.sender.timestamp - FRAME * self._member.group.frame_no) & _TS
        if self._data is not None or self._pending:
            self.clock.activate(self, self._member)

    def connection_lost(self, exc: Exception | None) -> None:
        self._detach()

    def _detach(self, reason: str | None = None) -> None:
        self._closed = True
        if self.rtcp is not None:
            self.rtcp.close(reason)
        if self._member is not None and self.clock is not None:
            self.clock.unregister(self, self._member)
        self._member = None
        self._push = None

    def close(self, reason: str | None = None) -> None:
        """Stop sending, send the RTCP BYE (with ``reason``) if the leg has RTCP, close the ports."""
        self._detach(reason)
        if self.transport is not None:
            self.transport.close()

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next frame slot."""
        if self._member is None:
            return self.sender.timestamp
        return (self._ts_base + FRAME * self._member.group.frame_no) & _TS

    def rtp_time(self, now: float) -> int:
        """RTP timestamp of the instant ``now`` (the clock's ``time_fn``), for an SR (§6.4.1): the
        next frame's timestamp less the time until its slot."""
        member, clock = self._member, self.clock
        pacer = None if clock is None else clock._pacer
        if member is None or clock is None or pacer is None:
            return self.timestamp
        slot = pacer.sent + (member.group.index - pacer.sent) % len(clock.groups)
        return (self.timestamp - round((pacer.start + slot * pacer.ptime - now) * 8000)) & _TS

    def receiver_for(self, ssrc: int) -> RtpReceiver | None:
        """The reception state of the peer's source ``ssrc``, if it sent RTP lately."""
        return self.receiver if self.receiver.ssrc == ssrc else self._sources.get(ssrc)

    def receivers(self) -> list[RtpReceiver]:
        """The peer's validated sources (report blocks are made for these)."""
        return [rx for rx in (self.receiver, *self._sources.values()) if rx.ssrc is not None and rx.validated]

    # ---- sending --------------------------------------------------------------------------------
    def play(self, samples: npt.ArrayLike | EncodedPrompt, *, loop: bool = False) -> None:
        """Queue int16 8 kHz audio (or an already encoded prompt of this leg's payload type)."""
        prompt = samples if isinstance(samples, EncodedPrompt) else encode_cached(samples, self.payload_type)
        if prompt.payload_type != self.payload_type:
            raise ValueError(f"prompt encoded for payload type {prompt.payload_type}, leg sends {self.payload_type}")
        if not prompt.data:
            if self._data is None and self.on_played is not None and self.clock is not None:
                self.clock.defer(self._played, self._gen)   # nothing to send: done at once
            return
        self.queue.append((prompt.data, loop))
        if self._data is None:
            self._data, self._pos, self._mark = prompt.data, 0, True
        if self._member is not None and self.clock is not None:
            self.clock.activate(self, self._member)

    def stop(self) -> None:
        """Drop all queued audio now (barge-in); ``on_played`` is not called for it."""
        self.queue.clear()
        self._data = None
        self._pos = 0
        self._mark = True
        self._gen += 1

    @property
    def playing(self) -> bool:
        return self._data is not None

    def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        """An RFC 4733 digit, its packets sent in the frame slots from the next one on."""
        if self.event_pt is None:
            raise ValueError("no telephone-event payload type negotiated")
        if self._member is None or self.clock is None:
            raise RuntimeError("the leg is not connected")
        base = self._member.group.frame_no
        for ev in self.events_out.packets(digit, duration_ms, self.timestamp):  # each at its offset (§2.5)
            self._pending.append((base + int(ev.offset_ms // 20), ev))
        self.clock.activate(self, self._member)

    def media_frame(self, frame_no: int, late: bool) -> bool:
        """Called by the clock in this leg's slot: send one event or audio packet, or go idle."""
        if self._closed or self.transport is None:
            return False
        pending = self._pending
        if pending and pending[0][0] <= frame_no:
            ev = pending.popleft()[1]
            assert self.event_pt is not None
            packet = self.sender.packet(ev.payload, payload_type=self.event_pt, timestamp=ev.timestamp,
                                        marker=ev.marker).to_bytes()
            self._mark = True   # audio after the event starts a new talkspurt
            self.octets_sent += len(ev.payload)
        else:
            data = self._data
            if data is None:
                if not pending and self._member is not None:
                    self._member.group.active.pop(self, None)
                return False
            sender = self.sender
            seq = sender.sequence
            pos = self._pos
            packet = _HDR.pack(0x80, self.payload_type | 0x80 if self._mark else self.payload_type, seq,
                               (self._ts_base + FRAME * frame_no) & _TS, self.ssrc) + data[pos:pos + FRAME]
            sender.sequence = (seq + 1) & 0xFFFF
            self._mark = False
            self.octets_sent += FRAME
            pos += FRAME
            if pos < len(data):
                self._pos = pos
            else:
                self._next_prompt()
        self.transport.sendto(packet, self.remote)
        self.sent += 1
        if late:
            self.late_frames += 1
        return True

    def _next_prompt(self) -> None:
        self._pos = 0
        if self.queue[0][1]:   # looping: start over
            return
        self.queue.popleft()
        if self.queue:
            self._data = self.queue[0][0]
            return
        self._data = None
        self._mark = True
        if self.on_played is not None and self.clock is not None:
            self.clock.defer(self._played, self._gen)

    def _played(self, gen: int) -> None:
        if gen == self._gen and self.on_played is not None and not self._closed:
            self.on_played()

    def media_gap(self) -> None:
        self._mark = True

    def inband_digit(self, digit: str) -> None:
        if not self._closed:
            self.on_digit(digit, "inband")

    # ---- receiving ------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        n = len(data)
        if 12 <= n <= MAX_PACKET_SIZE and data[0] == 0x80:   # V=2, no padding, extension or CSRC
            second, seq, ts, ssrc = _RX.unpack_from(data)
            hdr = self._hdr
            hdr.ssrc, hdr.sequence, hdr.timestamp = ssrc, seq, ts
            packet = self._hdr_packet
            pt = second & 0x7F
            payload = None
        else:
            try:
                packet = RtpPacket.parse(data)
            except RtpError:
                return   # not RTP (RTCP or noise): ignored
            pt, ts, payload = packet.payload_type, packet.timestamp, packet.payload
        rx = self.receiver
        if rx.ssrc is not None and packet.ssrc != rx.ssrc:
            # another source from the peer: a new stream after a re-INVITE, events sent under their
            # own SSRC, a replayed capture. Each gets its own sequence checks (a few, the latest kept)
            other = self._sources.get(packet.ssrc)
            if other is None:
                if len(self._sources) >= MAX_SOURCES:
                    del self._sources[next(iter(self._sources))]
                other = self._sources[packet.ssrc] = RtpReceiver()
            rx = other
        if not rx.receive(packet, time.monotonic()).usable:
            return
        self.received += 1
        self.remote = addr   # symmetric RTP (RFC 4961)
        if pt == self.payload_type:
            if self._push is not None:
                self._push(self._channel, ts, data[12:] if payload is None else payload)
        elif pt == self.event_pt:
            try:
                got = self.events_in.receive(RtpPacket.parse(data) if payload is None else packet)
            except RtpError:
                return
            if got is not None and got.digit is not None:
                self.on_digit(got.digit, "rfc4733")


async def open_leg(local: tuple[str, int], remote: tuple[str, int], *, clock: MediaClock | None = None,
                   **kw: object) -> MediaLeg:
    """Bind ``local`` (port 0: any) and start sending to ``remote`` on ``clock`` (default: the
    loop's shared clock)."""
    loop = asyncio.get_running_loop()
    _, leg = await loop.create_datagram_endpoint(
        lambda: MediaLeg(remote, clock=clock, **kw), local_addr=local)  # type: ignore[arg-type]
    return leg


SESSION_BANDWIDTH = 80_000.0   # bit/s of a G.711 call with IPv4/UDP/RTP headers (RFC 3551 §4.5.14)
RTCP_FRACTION = 0.05           # of the session bandwidth, for RTCP (§6.2)


class RtcpEndpoint(asyncio.DatagramProtocol):
    """A leg's RTCP port (made by :func:`open_rtcp`; see the module docstring). ``remote``: where
    reports go (None: the host of ``leg.remote``, its port + 1); ``cname``; ``closed``."""

    def __init__(self, leg: MediaLeg, remote: tuple[str, int] | None, *, cname: str, min_interval: float,
                 session_bandwidth: float, rng: random.Random) -> None:
        self.leg, self.remote, self.cname = leg, remote, cname
        self.min_interval, self.rng = min_interval, rng
        self.rtcp_bw = session_bandwidth * RTCP_FRACTION / 8   # octets/s
        self.avg_size = float(IP_UDP_OVERHEAD + 52 + 12 + len(cname.encode()))  # SR, 1 block, SDES (§6.3.2)
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._initial = True
        self._sent_marks = (leg.sent, leg.sent)   # leg.sent at the report before last, and at the last

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.closed:   # the leg was closed while the port opened
            self.transport.close()
            return
        self._schedule()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def destination(self) -> tuple[str, int]:
        if self.remote is not None:
            return self.remote
        host, port = self.leg.remote[:2]
        return (host, port + 1)

    def _we_sent(self) -> bool:
        return self.leg.sent != self._sent_marks[0]

    def _schedule(self) -> None:
        peers = self.leg.receivers()
        we_sent = self._we_sent()
        delay = rtcp_interval(1 + len(peers), sum(rx.received > 0 for rx in peers) + we_sent, self.rtcp_bw,
                              we_sent, self.avg_size, self._initial, self.rng, self.min_interval)
        self._initial = False
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self.closed:
            return
        try:
            self.send_report()
        finally:
            if not self.closed:
                self._schedule()

    def compound(self, bye: Bye | None = None) -> bytes:
        """SR (or RR) with a block per validated peer source, SDES CNAME, and ``bye`` if given."""
        leg = self.leg
        now = time.monotonic()
        blocks = tuple(report_block(rx, now) for rx in leg.receivers()[:31])
        first: RtcpPacket
        if self._we_sent():
            clock = leg.clock
            rtp_ts = leg.rtp_time(clock.time_fn() if clock is not None else now)
            info = SenderInfo(ntp_timestamp(time.time()), rtp_ts, leg.sent & _TS, leg.octets_sent & _TS)
            first = SenderReport(leg.ssrc, info, blocks)
        else:
            first = ReceiverReport(leg.ssrc, blocks)
        self._sent_marks = (self._sent_marks[1], leg.sent)
        packets: list[RtcpPacket] = [first, SourceDescription.cname_of(leg.ssrc, self.cname)]
        if bye is not None:
            packets.append(bye)
        return build(packets)

    def send_report(self, bye: Bye | None = None) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        data = self.compound(bye)
        self.transport.sendto(data, self.destination)
        self.avg_size = update_avg_size(self.avg_size, len(data))
        self.leg.rtcp_stats.reports_sent += 1

    def close(self, reason: str | None = None) -> None:
        """Send the BYE (once) and close the port."""
        if self.closed:
            return
        try:
            self.send_report(Bye((self.leg.ssrc,), reason))
        except (OSError, RtcpError):
            log.warning("RTCP BYE not sent", exc_info=True)
        self.connection_lost(None)
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        leg, stats = self.leg, self.leg.rtcp_stats
        try:
            packets = parse(data)
        except RtcpError as exc:
            stats.errors += 1
            log.debug("RTCP from %s dropped: %s", addr, exc.reason)
            return
        now, arrival_ntp = time.monotonic(), ntp_timestamp(time.time())
        self.remote = addr   # symmetric RTCP
        self.avg_size = update_avg_size(self.avg_size, len(data))
        for packet in packets:
            if isinstance(packet, SenderReport | ReceiverReport):
                stats.reports_received += 1
                if isinstance(packet, SenderReport):
                    stats.sender_reports_received += 1
                    rx = leg.receiver_for(packet.ssrc)
                    if rx is not None:
                        rx.sender_report(packet.sender.ntp_timestamp, now)
                for block in packet.reports:
                    if block.ssrc == leg.ssrc:
                        stats.note_block(block, arrival_ntp)
            elif isinstance(packet, SourceDescription):
                for chunk in packet.chunks:
                    if chunk.ssrc != leg.ssrc and chunk.cname is not None:
                        stats.peer_cname = chunk.cname
            elif leg.ssrc not in packet.ssrcs:   # a BYE from the peer
                stats.bye_received = True
                stats.bye_reason = packet.reason


async def open_rtcp(leg: MediaLeg, local_host: str | None = None, local_port: int | None = None,
                    remote: tuple[str, int] | None = None, *, sock: socket.socket | None = None,
                    cname: str | None = None, min_interval: float = RTCP_MIN_TIME,
                    session_bandwidth: float = SESSION_BANDWIDTH, rng: random.Random | None = None) -> RtcpEndpoint:
    """Give a connected ``leg`` its RTCP port: bind ``sock`` if given, else ``local_host``:``local_port``
    (defaults: the leg's RTP host and port + 1); report to ``remote`` (default: the peer's RTP port
    + 1, see :class:`RtcpEndpoint`). ``cname``: default a random RFC 7022 one. ``min_interval``:
    the §6.2 minimum (5 s; tests lower it). The first report goes out after the halved interval."""
    if leg.transport is None or leg._closed:
        raise RuntimeError("the leg is not connected")
    if leg.rtcp is not None:
        raise RuntimeError("the leg already has RTCP")
    if min_interval <= 0 or session_bandwidth <= 0:
        raise ValueError("min_interval and session_bandwidth must be positive")
    rtp_host, rtp_port = leg.transport.get_extra_info("sockname")[:2]
    host = rtp_host if local_host is None else local_host
    name = cname if cname is not None else f"{secrets.token_urlsafe(12)}@{host}"
    endpoint = RtcpEndpoint(leg, remote, cname=name, min_interval=min_interval,
                            session_bandwidth=session_bandwidth, rng=rng or random.SystemRandom())
    loop = asyncio.get_running_loop()
    leg.rtcp = endpoint   # from now on leg.close() closes it too, even before the port is open
    try:
        if sock is not None:
            await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        else:
            port = rtp_port + 1 if local_port is None else local_port
            await loop.create_datagram_endpoint(lambda: endpoint, local_addr=(host, port))
    except BaseException:
        leg.rtcp = None
        raise
    return endpoint
