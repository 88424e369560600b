"""Calls through the trunk to agents' phones, with sipp on both sides (real SIP over UDP and TCP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import SipCore, free_port, sipp, sipp_errors


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_pilot_200_reaches_an_agent_phone_answered_and_hung_up(sip_core: SipCore, tmp_path: Path,
                                                                     transport: str) -> None:
    [agent] = await sip_core.add_agents(1, transport=transport)
    t = "u1" if transport == "udp" else "t1"
    phone = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_core.phones[agent]), "-t", t,
                       "-m", "5", cwd=tmp_path)
    await asyncio.sleep(0.3)
    caller = await sipp("-sn", "uac", "-s", "200", f"127.0.0.1:{sip_core.port}", "-i", "127.0.0.1",
                        "-p", str(free_port()), "-t", t, "-m", "5", "-r", "5", "-timeout", "30s",
                        "-recv_timeout", "10000", cwd=tmp_path)
    rc = await caller.wait(60)
    assert rc == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await phone.wait(30) == 0, (phone.out[-1500:], sipp_errors(tmp_path))
    tel = sip_core.telephony
    assert tel.stats["calls"] == 5 and tel.stats["answered"] == 5
    await wait_for(lambda: not tel.control.calls)
    history = sip_core.app.history
    assert history is not None
    await history.flush()
    rows = await sip_core.pool.fetch("SELECT outcome, agent FROM cc.contact_history")
    assert len(rows) == 5 and {r["outcome"] for r in rows} == {"answered"}
    view = sip_core.app.distribution.engine.agent(agent)  # type: ignore[union-attr]
    assert view.state.value == "ready" and view.contacts_today == 5
