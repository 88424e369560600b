"""One RTP media leg on asyncio: paced G.711 out, packets in, digits out (the IVR's media side).

The thin adapter around the sans-IO pieces: a UDP socket, :class:`~rtpmedia.pacing.Pacer` for
20 ms frames without drift, :class:`~rtpmedia.rtp.RtpSender` / :class:`~rtpmedia.rtp.RtpReceiver`,
G.711 by tables, RFC 4733 events both ways, and the in-band :class:`~rtpmedia.dtmf.DtmfDetector`
on what arrives. Symmetric RTP (RFC 4961): once a packet from the peer's SSRC arrives, we send to
the address it came from, whatever the SDP said (NAT). Digits come out through ``on_digit(digit,
source)`` with source ``"rfc4733"`` or ``"inband"``. Audio to send is a queue of int16 samples
(``play``); when it is empty the leg sends nothing (the timestamp keeps running, the next packet is
marked, RFC 3550 §5.1).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import cast

import numpy as np

from .dtmf import DtmfDetector
from .g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .pacing import Pacer
from .rtp import RtpError, RtpPacket, RtpReceiver, RtpSender
from .telephone_event import TelephoneEventReceiver, TelephoneEventSender

log = logging.getLogger("rtpmedia.leg")

FRAME = 160   # samples in 20 ms at 8 kHz
CODECS = {0: (ulaw_encode, ulaw_decode), 8: (alaw_encode, alaw_decode)}


class MediaLeg(asyncio.DatagramProtocol):
    def __init__(self, remote: tuple[str, int], *, payload_type: int = 0, event_pt: int | None = 101,
                 on_digit: Callable[[str, str], None] | None = None, ssrc: int | None = None) -> None:
        if payload_type not in CODECS:
            raise ValueError(f"payload type {payload_type}: only PCMU (0) and PCMA (8)")
        self.remote = remote
        self.payload_type, self.event_pt = payload_type, event_pt
        self.encode, self.decode = CODECS[payload_type]
        self.on_digit = on_digit or (lambda digit, source: None)
        self.sender = RtpSender(ssrc if ssrc is not None else int.from_bytes(np.random.bytes(4), "big"),
                                payload_type)
        self.receiver = RtpReceiver()
        self.events_in = TelephoneEventReceiver()
        self.events_out = TelephoneEventSender()
        self.detector = DtmfDetector()
        self.queue: deque[np.ndarray] = deque()
        self._pending: deque[tuple[int, bytes]] = deque()   # (frame slot, RFC 4733 packet) to send
        self.transport: asyncio.DatagramTransport | None = None
        self.pacer: Pacer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.sent = self.received = self.late_frames = 0

    # ---- lifecycle ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        loop = asyncio.get_running_loop()
        self.pacer = Pacer(loop.time())
        self._timer = loop.call_at(self.pacer.next_deadline(), self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    # ---- sending --------------------------------------------------------------------------------
    def play(self, samples: np.ndarray) -> None:
        """Queue int16 audio at 8 kHz (cut into 20 ms frames; a short last frame is padded)."""
        pcm = np.asarray(samples, dtype=np.int16)
        for i in range(0, len(pcm), FRAME):
            frame = pcm[i:i + FRAME]
            if len(frame) < FRAME:
                frame = np.pad(frame, (0, FRAME - len(frame)))
            self.queue.append(frame)

    def send_digit(self, digit: str, duration_ms: int = 100) -> None:
        """An RFC 4733 digit, its packets sent in the frame slots from now on."""
        if self.event_pt is None:
            raise ValueError("no telephone-event payload type negotiated")
        assert self.pacer is not None
        start, base = self.sender.timestamp, self.pacer.sent
        for ev in self.events_out.packets(digit, duration_ms, start):   # each at its offset (RFC 4733 §2.5)
            self._pending.append((base + int(ev.offset_ms // 20), self.sender.packet(
                ev.payload, payload_type=self.event_pt, timestamp=ev.timestamp, marker=ev.marker).to_bytes()))

    def _tick(self) -> None:
        assert self.pacer is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        due = self.pacer.due(loop.time())
        if due.lateness > 0.010:
            self.late_frames += 1
        first = self.pacer.sent - due.frames
        for k in range(due.frames):
            if self._pending and self._pending[0][0] <= first + k:
                self.transport.sendto(self._pending.popleft()[1], self.remote)
                self.sender.skip_frames(1)
            elif self.queue:
                self.transport.sendto(self.sender.audio_frame(self.encode(self.queue.popleft())).to_bytes(),
                                      self.remote)
            else:
                self.sender.skip_frames(1)
            self.sent += 1
        self.sender.skip_frames(due.skipped)
        self._timer = loop.call_at(self.pacer.next_deadline(), self._tick)

    # ---- receiving ------------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            return   # not RTP (RTCP or noise): ignored
        if not self.receiver.receive(packet, asyncio.get_running_loop().time()).usable:
            return
        self.received += 1
        self.remote = addr   # symmetric RTP (RFC 4961)
        if packet.payload_type == self.event_pt:
            got = self.events_in.receive(packet)
            if got is not None and got.digit is not None:
                self.on_digit(got.digit, "rfc4733")
        elif packet.payload_type == self.payload_type:
            for d in self.detector.feed(self.decode(packet.payload)):
                self.on_digit(d.digit, "inband")


async def open_leg(local: tuple[str, int], remote: tuple[str, int], **kw: object) -> MediaLeg:
    """Bind ``local`` (port 0: any) and start sending to ``remote``."""
    loop = asyncio.get_running_loop()
    _, leg = await loop.create_datagram_endpoint(lambda: MediaLeg(remote, **kw), local_addr=local)  # type: ignore[arg-type]
    return leg
