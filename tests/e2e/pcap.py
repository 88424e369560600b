"""Write RTP into a pcap file that sipp's ``play_pcap_audio`` replays (libpcap format, Ethernet +
IPv4 + UDP framing; sipp takes the UDP payloads and their timing, and sends them to the media
address of the call). Used for in-band DTMF: G.711 audio of generated tones."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from rtpmedia.g711 import ulaw_encode
from rtpmedia.rtp import RtpSender

FRAME = 160   # 20 ms at 8 kHz


def _frame(payload: bytes, src: int = 40000, dst: int = 40002) -> bytes:
    udp = struct.pack("!HHHH", src, dst, 8 + len(payload), 0) + payload
    total = 20 + len(udp)
    loopback = bytes([127, 0, 0, 1])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 17, 0, loopback, loopback)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\x00" * 12 + b"\x08\x00" + ip + udp


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_pcmu_pcap(path: Path, audio: np.ndarray, *, ssrc: int = 0x1234ABCD) -> Path:
    """``audio`` (int16, 8 kHz) as 20 ms PCMU RTP packets, 20 ms apart, in a pcap file."""
    sender = RtpSender(ssrc, 0)
    pcm = np.asarray(audio, dtype=np.int16)
    pcm = np.pad(pcm, (0, (-len(pcm)) % FRAME))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(0, len(pcm), FRAME):
        data = _frame(sender.audio_frame(ulaw_encode(pcm[i:i + FRAME])).to_bytes())
        usec = (i // FRAME) * 20_000
        out.append(struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000, usec % 1_000_000, len(data), len(data)))
        out.append(data)
    path.write_bytes(b"".join(out))
    return path
