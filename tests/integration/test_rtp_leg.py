"""Two media legs over real UDP on loopback: in-band DTMF and RFC 4733 digits arrive, once each."""

from __future__ import annotations

import asyncio

from rtpmedia.leg import open_leg
from rtpmedia.tones import sequence


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
