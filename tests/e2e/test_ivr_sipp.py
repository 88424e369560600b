"""The IVR's media against sipp (Debian sip-tester) as the caller: RFC 4733 digits from sipp's own
``uac_pcap`` scenario (A-law speech, then the digit 1 from its packaged pcap), and in-band DTMF
from generated audio (PCMU, no telephone-event negotiated) replayed by sipp from a pcap file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from ivr_engine import ehic_mock
from rtpmedia import tones
from tests.e2e.conftest import SipCore, sipp, sipp_errors
from tests.e2e.ivr_stack import IvrStack, session_row, start_ivr
from tests.e2e.pcap import write_pcmu_pcap
from tests.e2e.test_ivr import prompts  # noqa: F401  (the session's demo prompts)

SCENARIOS = Path(__file__).parent / "scenarios"
SIPP_PCAPS = Path("/usr/share/sip-tester")


@pytest.fixture
async def ivr(sip_core: SipCore, prompts: Path, tmp_path: Path) -> AsyncIterator[IvrStack]:  # noqa: F811
    stack = await start_ivr(sip_core, prompts, tmp_path)
    [agent] = await sip_core.add_agents(1)
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(agent, t, "break"), "test")  # type: ignore[union-attr]
    yield stack
    await stack.close()


async def test_sipp_uac_pcap_speech_then_an_rfc4733_digit_queues_the_caller(
        ivr: IvrStack, sip_core: SipCore, tmp_path: Path) -> None:
    assert (SIPP_PCAPS / "dtmf_2833_1.pcap").exists(), "sip-tester's pcap files are missing"
    (tmp_path / "pcap").symlink_to(SIPP_PCAPS)
    caller = await sipp("-sn", "uac_pcap", "-s", "100", f"127.0.0.1:{sip_core.port}", "-i", "127.0.0.1",
                        "-m", "1", cwd=tmp_path)
    assert await caller.wait(40) == 0, sipp_errors(tmp_path)
    row = await session_row(sip_core)
    # 8 s of A-law speech raised no digit (no talk-off); the RFC 4733 "1" chose the queue in the menu
    assert row["path"] == "start>welcome>menu>queue" and row["outcome"] == "abandoned_queued", row
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    contact = await sip_core.pool.fetchrow("SELECT project, outcome, data FROM cc.contact_history")
    assert contact["project"] == "general" and contact["outcome"] == "abandoned"
    assert '"ivr_stage": "queue"' in contact["data"]


async def test_in_band_digits_from_generated_audio_walk_the_ehic_check(
        ivr: IvrStack, sip_core: SipCore, tmp_path: Path) -> None:
    (tmp_path / "pcap").mkdir()
    write_pcmu_pcap(tmp_path / "pcap" / "menu.pcap", tones.sequence("2", tone_ms=100, gap_ms=100, lead_ms=100))
    card = tones.sequence("123456784#", tone_ms=80, gap_ms=80, lead_ms=100)
    noise = tones.add_noise(card, 30.0, np.random.default_rng(7))   # a line with some noise on it
    write_pcmu_pcap(tmp_path / "pcap" / "card.pcap", noise)
    caller = await sipp("-sf", str(SCENARIOS / "uac_inband.xml"), "-s", "100", f"127.0.0.1:{sip_core.port}",
                        "-i", "127.0.0.1", "-m", "1", cwd=tmp_path)
    assert await caller.wait(40) == 0, sipp_errors(tmp_path)
    row = await session_row(sip_core)
    steps = row["path"].split(">")
    assert steps[:4] == ["start", "welcome", "menu", "ehic_card"], row
    assert "ehic_x" in steps and "after_ehic" in steps and not any("invalid" in s for s in steps), row
    assert ivr.register.app[ehic_mock.SEEN] == ["123456784"]  # type: ignore[attr-defined]
    assert row["outcome"] == "abandoned", row


async def test_ivr_operations_refuse_bad_requests_naming_the_field(sip_core: SipCore) -> None:
    from simprot.client import SimProtClient
    from simprot.errors import ErrorCode, RequestError
    from tests.integration.conftest import ADMIN, ADMIN_PW

    host, port = sip_core.app.simprot_address
    client = SimProtClient([f"{host}:{port}"], user=ADMIN, password=ADMIN_PW, reconnect=False)
    await client.connect()
    try:
        for op, args, code, field in (
                ("ivr.route", {"contact": "s0", "project": "general"}, ErrorCode.NOT_FOUND, "contact"),
                ("ivr.route", {"contact": "s0"}, ErrorCode.INVALID_ARGUMENT, "project"),
                ("ivr.route", {"contact": "s0", "project": "general", "data": {"a": [1]}},
                 ErrorCode.INVALID_ARGUMENT, "data"),
                ("ivr.route", {"contact": "s0", "project": "general", "priority": "high"},
                 ErrorCode.INVALID_ARGUMENT, "priority"),
                ("ivr.transfer", {"contact": "s0", "number": "00420123456789"}, ErrorCode.INVALID_ARGUMENT, "number"),
                ("ivr.transfer", {"contact": "s0"}, ErrorCode.INVALID_ARGUMENT, "number")):
            with pytest.raises(RequestError) as err:
                await client.request(op, args)
            assert (err.value.code, err.value.details) == (code, {"field": field}), (op, args, err.value)
    finally:
        await client.close()
