"""Calls through the trunk to agents' phones, with sipp on both sides (real SIP over UDP and TCP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from simprot.client import SimProtClient
from tests.e2e.conftest import SipCore, free_port, sipp, sipp_errors
from tests.integration.conftest import ADMIN, ADMIN_PW


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


SCEN = Path(__file__).parent / "scenarios"


async def phone(core: SipCore, agent: str, scenario: str | None, tmp: Path, calls: int = 1, t: str = "u1"):  # type: ignore[no-untyped-def]
    args = ["-sf", str(SCEN / scenario)] if scenario else ["-sn", "uas"]
    return await sipp(*args, "-i", "127.0.0.1", "-p", str(core.phones[agent]), "-t", t, "-m", str(calls),
                      cwd=tmp)


async def call(core: SipCore, tmp: Path, scenario: str | None = None, calls: int = 1, t: str = "u1"):  # type: ignore[no-untyped-def]
    args = ["-sf", str(SCEN / scenario)] if scenario else ["-sn", "uac"]
    return await sipp(*args, "-s", "200", f"127.0.0.1:{core.port}", "-i", "127.0.0.1", "-p", str(free_port()),
                      "-t", t, "-m", str(calls), "-r", "5", "-timeout", "30s", "-recv_timeout", "15000", cwd=tmp)


async def offers(core: SipCore) -> list[tuple[str, str]]:
    assert core.app.history is not None
    await core.app.history.flush()
    rows = await core.pool.fetch("""SELECT a.username, o.outcome FROM cc.offer_history o
                                    JOIN cc.accounts a ON a.id = o.account_id ORDER BY o.offered_at, o.id""")
    return [(r["username"], r["outcome"]) for r in rows]


async def test_ring_timeout_cancels_and_reoffers_to_the_next_agent(sip_core: SipCore, tmp_path: Path) -> None:
    a1, a2 = await sip_core.add_agents(2, ring_timeout=1.5)
    admin = SimProtClient([f"127.0.0.1:{sip_core.app.simprot_address[1]}"], user=ADMIN, password=ADMIN_PW,
                          reconnect=False)
    await admin.connect()
    states: list[tuple] = []
    await admin.subscribe("calls", lambda t, q, n, d: states.append((d["state"], d["agent"], d["cause"])))
    p1 = await phone(sip_core, a1, "uas_noanswer.xml", tmp_path)
    p2 = await phone(sip_core, a2, None, tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path)
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p1.wait(20) == 0 and await p2.wait(20) == 0, sipp_errors(tmp_path)
    assert await offers(sip_core) == [(a1, "no_answer"), (a2, "answered")]
    engine = sip_core.app.distribution.engine  # type: ignore[union-attr]
    assert engine.agent(a1).misses[next(k for k in engine.agent(a1).misses if k.value == "no_answer")] == 1
    await wait_for(lambda: states[-1:] == [("ended", a2, "caller_hangup")])
    assert states == [("queued", None, None), ("offering", a1, None), ("queued", None, None),
                      ("offering", a2, None), ("connected", a2, None), ("ended", a2, "caller_hangup")]
    assert (await admin.request("calls.list")) == {"calls": [], "trunks": {}}
    await admin.close()
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    row = await sip_core.pool.fetchrow("SELECT * FROM cc.call_history")
    assert (row["pilot"], row["connected"], row["cause"]) == ("200", True, "caller_hangup")
    assert row["answered_at"] >= row["started_at"] and row["ended_at"] >= row["answered_at"]
    legs = await sip_core.pool.fetch("SELECT leg, kind, status, cause, ringing_at IS NOT NULL AS rang, "
                                     "answered_at IS NOT NULL AS answered FROM cc.call_legs ORDER BY leg")
    assert [(r["kind"], r["status"], r["cause"], r["rang"], r["answered"]) for r in legs] == [
        ("caller", 200, "bye", False, True), ("agent", 487, "cancelled", True, False),
        ("agent", 200, "bye_sent", True, True)]


async def test_a_busy_phone_is_a_rejection_and_the_next_agent_answers(sip_core: SipCore, tmp_path: Path) -> None:
    a1, a2 = await sip_core.add_agents(2)
    p1 = await phone(sip_core, a1, "uas_busy.xml", tmp_path)
    p2 = await phone(sip_core, a2, None, tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path)
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p1.wait(20) == 0 and await p2.wait(20) == 0, sipp_errors(tmp_path)
    assert await offers(sip_core) == [(a1, "rejected"), (a2, "answered")]


async def test_an_unreachable_phone_is_a_miss_and_the_next_agent_answers(sip_core: SipCore, tmp_path: Path) -> None:
    a1, a2 = await sip_core.add_agents(2, transport="tcp")   # nobody listens at a1's phone: refused
    p2 = await phone(sip_core, a2, None, tmp_path, t="t1")
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path)
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p2.wait(20) == 0, sipp_errors(tmp_path)
    assert await offers(sip_core) == [(a1, "unreachable"), (a2, "answered")]


async def test_the_caller_cancels_while_the_phone_rings(sip_core: SipCore, tmp_path: Path) -> None:
    [a1] = await sip_core.add_agents(1, ring_timeout=20)
    p1 = await phone(sip_core, a1, "uas_noanswer.xml", tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_cancel.xml")
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p1.wait(20) == 0, sipp_errors(tmp_path)   # our CANCEL reached the phone
    assert await offers(sip_core) == [(a1, "abandoned")]   # the offer ended because the caller left
    rows = await sip_core.pool.fetch("SELECT outcome FROM cc.contact_history")
    assert [r["outcome"] for r in rows] == ["abandoned"]
    assert sip_core.app.distribution.engine.agent(a1).state.value == "ready"  # type: ignore[union-attr]


async def test_a_retransmitted_invite_is_one_call_and_a_lost_ack_is_recovered(sip_core: SipCore,
                                                                              tmp_path: Path) -> None:
    [a1] = await sip_core.add_agents(1)
    p1 = await phone(sip_core, a1, "uas_slow.xml", tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_retransmit_lost_ack.xml")
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p1.wait(20) == 0, sipp_errors(tmp_path)
    assert sip_core.telephony.stats["calls"] == 1
    assert await offers(sip_core) == [(a1, "answered")]
    [log] = tmp_path.glob("uac_retransmit_lost_ack_*_messages.log")
    seen = log.read_text(errors="replace")
    assert seen.count("INVITE sip:200@") >= 2                       # the INVITE did arrive twice (or more)
    assert seen.count("SIP/2.0 200 OK\r\n") + seen.count("SIP/2.0 200 OK\n") >= 3   # 2xx retransmitted, + BYE's


async def test_the_agent_hangs_up_and_the_caller_is_released(sip_core: SipCore, tmp_path: Path) -> None:
    [a1] = await sip_core.add_agents(1)
    p1 = await phone(sip_core, a1, "uas_hangs_up.xml", tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_plain.xml")
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await p1.wait(20) == 0, sipp_errors(tmp_path)
    await wait_for(lambda: not sip_core.telephony.control.calls)
    assert sip_core.app.distribution.engine.agent(a1).state.value == "ready"  # type: ignore[union-attr]


async def test_the_test_pilot_is_answered_by_the_core_itself(pg_dsn: str, tmp_path: Path) -> None:
    """sip.test_pilot: a plain UAS in the core (trunk checks, the benchmark's case a)."""
    import dataclasses

    from ctiserver.app import App
    from tests.conftest import drop_dsn, fresh_dsn
    from tests.integration.conftest import core_settings

    dsn = await fresh_dsn(pg_dsn)
    base = core_settings(dsn)
    port = free_port()
    app = App(dataclasses.replace(base, sip=dataclasses.replace(base.sip, enabled=True, port=port, test_pilot="999")),
              scrypt_n=2**10)
    await app.start()
    try:
        caller = await sipp("-sn", "uac", "-s", "999", f"127.0.0.1:{port}", "-i", "127.0.0.1", "-p", str(free_port()),
                            "-m", "20", "-r", "20", "-timeout", "30s", cwd=tmp_path)
        assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
        assert app.telephony is not None and app.telephony.stats["test_calls"] == 20
        assert not app.telephony.control.calls
    finally:
        await app.stop(grace=0.5)
        await drop_dsn(pg_dsn, dsn)


async def test_through_the_ivr_then_bridged_to_the_agent_by_reinvite(sip_core: SipCore, tmp_path: Path) -> None:
    """Pilot 100: the caller talks to the IVR (here sipp's uas) first; the ACD's offer goes to the
    phone without SDP, the phone's offer reaches the caller in a re-INVITE, the caller's answer goes
    back in the ACK, the IVR leg is released (RFC 3725 flow I)."""
    import dataclasses

    [a1] = await sip_core.add_agents(1)
    await sip_core.pool.execute("INSERT INTO cc.entry_rules (position, pilot, project) VALUES (2, '100', 'general')")
    assert sip_core.app.distribution is not None
    await sip_core.app.distribution.load_config()
    ivr_port = free_port()
    tel = sip_core.telephony
    tel.settings = dataclasses.replace(tel.settings, ivr_uri=f"sip:ivr@127.0.0.1:{ivr_port}",
                                       ivr_routing="entry_rules")
    # the agent is not ready yet: the caller stays with the IVR until he is
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(a1, t, "break"), "test")
    ivr = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(ivr_port), "-m", "1", cwd=tmp_path)
    agent_phone = await phone(sip_core, a1, None, tmp_path)
    await asyncio.sleep(0.3)
    caller = await sipp("-sf", str(SCEN / "uac_bridged.xml"), "-s", "100", f"127.0.0.1:{sip_core.port}",
                        "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1", "-timeout", "30s",
                        "-recv_timeout", "15000", cwd=tmp_path)
    await wait_for(lambda: any(c.state.value == "ivr" for c in tel.control.calls.values()))
    call = next(iter(tel.control.calls.values()))
    assert call.enqueued and tel.legs[call.contact_id + "/ivr"].final    # talking to the IVR, queued
    sip_core.app.distribution.engine_input(lambda e, t: e.ready(a1, t), "test")
    assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await ivr.wait(20) == 0, sipp_errors(tmp_path)              # the IVR leg got our BYE
    assert await agent_phone.wait(20) == 0, sipp_errors(tmp_path)      # and the phone the caller's BYE
    assert await offers(sip_core) == [(a1, "answered")]
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    kinds = [r["kind"] for r in await sip_core.pool.fetch("SELECT kind FROM cc.call_legs ORDER BY kind")]
    assert kinds == ["agent", "caller", "ivr"]


async def test_an_agent_calls_a_customer_out(sip_core: SipCore, tmp_path: Path) -> None:
    """OUT-4 through SimProt: the agent's phone first (no SDP), then the customer through the trunk
    with the phone's offer; the customer's answer reaches the phone in the ACK; hang-up from the
    desktop ends both; the agent is not offered contacts meanwhile and is ready again after."""
    import dataclasses

    from simprot.errors import ErrorCode, RequestError

    [a1] = await sip_core.add_agents(1)
    tel = sip_core.telephony
    customer_port = free_port()
    tel.settings = dataclasses.replace(tel.settings, outbound_uri=f"sip:{{number}}@127.0.0.1:{customer_port}")
    agent_phone = await phone(sip_core, a1, None, tmp_path)
    customer = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(customer_port), "-m", "1", cwd=tmp_path)
    await asyncio.sleep(0.3)
    desk = SimProtClient([f"127.0.0.1:{sip_core.app.simprot_address[1]}"], user=a1, password="agent-pass-1",
                         reconnect=False)
    await desk.connect()
    try:
        with pytest.raises(RequestError) as err:
            await desk.request("call.dial", {"number": "00441234567"})
        assert err.value.code is ErrorCode.INVALID_ARGUMENT and "international" in str(err.value)
        res = await desk.request("call.dial", {"number": "271004245"})
        call = res["call"]
        await wait_for(lambda: call in tel.outbound.calls and tel.outbound.calls[call].state.value == "connected")
        engine = sip_core.app.distribution.engine  # type: ignore[union-attr]
        assert engine.brief(a1)[:2][1] == "outbound"
        with pytest.raises(RequestError) as err:
            await desk.request("call.dial", {"number": "271004246"})
        assert err.value.code is ErrorCode.INVALID_STATE
        assert await desk.request("call.hangup", {"call": call}) == {"call": call, "state": "ended"}
        assert await customer.wait(20) == 0, (customer.out[-1500:], sipp_errors(tmp_path))
        assert await agent_phone.wait(20) == 0, sipp_errors(tmp_path)
        assert engine.agent(a1).state.value == "ready"
    finally:
        await desk.close()
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    row = await sip_core.pool.fetchrow("SELECT caller, pilot, connected, cause FROM cc.call_history")
    assert (row["caller"], row["pilot"], row["connected"], row["cause"]) == (a1, "271004245", True, "agent_hangup")
    kinds = sorted(r["kind"] for r in await sip_core.pool.fetch("SELECT kind FROM cc.call_legs"))
    assert kinds == ["agent", "customer"]


async def test_blind_transfer_from_the_desktop(sip_core: SipCore, tmp_path: Path) -> None:
    """call.transfer: the target is called without SDP, its offer reaches the caller in a re-INVITE,
    the caller's answer goes to the target in the ACK, the agent's phone gets BYE and the agent goes
    to wrap-up; the caller then talks to the target until he hangs up."""
    import dataclasses

    [a1] = await sip_core.add_agents(1)
    tel = sip_core.telephony
    target_port = free_port()
    tel.settings = dataclasses.replace(tel.settings, outbound_uri=f"sip:{{number}}@127.0.0.1:{target_port}")
    agent_phone = await phone(sip_core, a1, None, tmp_path)
    target = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(target_port), "-m", "1", cwd=tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_bridged.xml")
    await wait_for(lambda: any(c.state.value == "connected" for c in tel.control.calls.values()))
    contact = next(iter(tel.control.calls))
    desk = SimProtClient([f"127.0.0.1:{sip_core.app.simprot_address[1]}"], user=a1, password="agent-pass-1",
                         reconnect=False)
    await desk.connect()
    try:
        res = await desk.request("call.transfer", {"contact": contact, "number": "271004245"})
        assert res["state"] == "transferring"
        assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
        assert await agent_phone.wait(20) == 0, sipp_errors(tmp_path)   # released by our BYE
        assert await target.wait(20) == 0, sipp_errors(tmp_path)        # talked, then got the BYE
    finally:
        await desk.close()
    engine = sip_core.app.distribution.engine  # type: ignore[union-attr]
    assert engine.agent(a1).state.value == "ready" and engine.agent(a1).contacts_today == 1
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    row = await sip_core.pool.fetchrow("SELECT connected, cause FROM cc.call_history")
    assert (row["connected"], row["cause"]) == (True, "caller_hangup")


async def test_hold_and_unhold_from_the_desktop(sip_core: SipCore, tmp_path: Path) -> None:
    """call.hold / call.unhold: both legs get the session they have re-offered, inactive and then
    sendrecv again, with the o= version going up each time (RFC 3264 §8, §8.4)."""
    from simprot.errors import ErrorCode, RequestError

    [a1] = await sip_core.add_agents(1)
    agent_phone = await phone(sip_core, a1, "uas_held.xml", tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_held.xml")
    tel = sip_core.telephony
    await wait_for(lambda: any(c.state.value == "connected" for c in tel.control.calls.values()))
    contact = next(iter(tel.control.calls))
    desk = SimProtClient([f"127.0.0.1:{sip_core.app.simprot_address[1]}"], user=a1, password="agent-pass-1",
                         reconnect=False)
    await desk.connect()
    try:
        assert await desk.request("call.hold", {"contact": contact}) == {"contact": contact, "held": True}
        with pytest.raises(RequestError) as err:   # no transfer while held
            await desk.request("call.transfer", {"contact": contact, "number": "271004245"})
        assert err.value.code in (ErrorCode.INVALID_STATE, ErrorCode.INVALID_ARGUMENT)
        await asyncio.sleep(0.3)
        assert await desk.request("call.unhold", {"contact": contact}) == {"contact": contact, "held": False}
        assert await caller.wait(60) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
        assert await agent_phone.wait(20) == 0, sipp_errors(tmp_path)
    finally:
        await desk.close()
    for name, first in (("uac_held", 0), ("uas_held", 1)):   # the phone also got the first INVITE
        [log] = tmp_path.glob(f"{name}_*_messages.log")
        got = [m.split(":\n", 1)[1].strip() for m in log.read_text(errors="replace").split("message received")[1:]]
        reinvites = [m for m in got if m.startswith("INVITE sip:")][first:]
        assert len(reinvites) == 2, (name, got)
        hold, resume = reinvites
        assert "a=inactive" in hold and "a=sendrecv" in resume and "a=inactive" not in resume, name
        version = [int(next(line for line in m.splitlines() if line.startswith("o=")).split()[2])
                   for m in reinvites]
        assert version[1] == version[0] + 1, (name, version)   # RFC 3264 §8: each change bumps o=


async def test_options_keepalive_tells_which_trunk_peers_answer(pg_dsn: str) -> None:
    """sip.keepalive: OPTIONS to each peer; one that answers is up, one that refuses (TCP, nobody
    listening) is down; changes are published on the calls topic and shown by calls.list."""
    import dataclasses

    from ctiserver.app import App
    from tests.conftest import drop_dsn, fresh_dsn
    from tests.integration.conftest import core_settings

    dsn = await fresh_dsn(pg_dsn)
    base = core_settings(dsn)
    port, dead = free_port(), free_port()
    sip = dataclasses.replace(base.sip, enabled=True, port=port, keepalive_interval=0.3,
                              keepalive=(f"udp:127.0.0.1:{port}", f"tcp:127.0.0.1:{dead}"))
    app = App(dataclasses.replace(base, sip=sip), scrypt_n=2**10)
    await app.start()
    try:
        assert app.telephony is not None
        ka = app.telephony.keepalive
        await wait_for(lambda: len(ka.up) == 2)
        assert ka.up == {f"udp:127.0.0.1:{port}": True, f"tcp:127.0.0.1:{dead}": False}
        assert app.telephony.snapshot()["trunks"] == ka.up
    finally:
        await app.stop(grace=0.5)
        await drop_dsn(pg_dsn, dsn)


async def test_the_phone_transfers_the_caller_by_refer(sip_core: SipCore, tmp_path: Path) -> None:
    """The phone's transfer button: REFER (RFC 3515) in the agent's leg; we answer 202, NOTIFY
    100 Trying, move the caller to the number by re-INVITE, NOTIFY 200 OK, and BYE the phone."""
    import dataclasses

    [a1] = await sip_core.add_agents(1)
    tel = sip_core.telephony
    target_port = free_port()
    tel.settings = dataclasses.replace(tel.settings, outbound_uri=f"sip:{{number}}@127.0.0.1:{target_port}")
    agent_phone = await phone(sip_core, a1, "uas_refers.xml", tmp_path)
    target = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(target_port), "-m", "1", cwd=tmp_path)
    await asyncio.sleep(0.3)
    caller = await call(sip_core, tmp_path, "uac_bridged.xml")
    assert await agent_phone.wait(30) == 0, (agent_phone.out[-1500:], sipp_errors(tmp_path))
    assert await caller.wait(30) == 0, (caller.out[-1500:], sipp_errors(tmp_path))
    assert await target.wait(20) == 0, sipp_errors(tmp_path)
    [log] = tmp_path.glob("uas_refers_*_messages.log")
    text = log.read_text(errors="replace")
    notifies = [m.split("\n\n", 1) for m in text.split("NOTIFY sip:")[1:]]
    assert [body.split("\n")[0].strip() for _, body in notifies] == ["SIP/2.0 100 Trying", "SIP/2.0 200 OK"]
    assert ["Subscription-State: active" in head for head, _ in notifies] == [True, False]
    assert all("Event: refer" in head and "message/sipfrag" in head for head, _ in notifies)
    engine = sip_core.app.distribution.engine  # type: ignore[union-attr]
    assert engine.agent(a1).state.value == "ready" and engine.agent(a1).contacts_today == 1
