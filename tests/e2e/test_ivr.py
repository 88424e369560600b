"""The IVR end to end: a real softphone (baresip) dials pilot 100 through the core, walks the demo
flow of ivr-engine by RFC 4733 digits, checks its EHIC card against the register stand-in, is
queued and bridged to an agent's phone (sipp) by re-INVITE; what it heard is recorded and the
prompts are found in it, in order, by cross-correlation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_engine import ehic_mock
from ivr_engine.demo_prompts import make_demo_prompts
from ivr_engine.engine import Run
from ivr_engine.tts import Speaker
from rtpmedia.prompts import load_prompt
from tests.e2e.baresip import Baresip
from tests.e2e.conftest import SipCore, free_port, sipp, sipp_errors
from tests.e2e.ivr_stack import IvrStack, locate, read_recording, session_row, start_ivr


@pytest.fixture(scope="session")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo prompts, spoken once per test session with espeak-ng (./dev test installs it)."""
    folder = tmp_path_factory.mktemp("prompts")
    make_demo_prompts(folder, Speaker("espeak-ng", folder / "tts"))
    return folder


@pytest.fixture
async def ivr(sip_core: SipCore, prompts: Path, tmp_path: Path) -> AsyncIterator[IvrStack]:
    stack = await start_ivr(sip_core, prompts, tmp_path, switchboard=free_port())
    yield stack
    await stack.close()


async def the_run(ivr: IvrStack, timeout: float = 5.0) -> Run:
    for _ in range(int(timeout / 0.05)):
        if ivr.engine.runs and next(iter(ivr.engine.runs.values())).session is not None:
            return next(iter(ivr.engine.runs.values()))
        await asyncio.sleep(0.05)
    raise AssertionError("no IVR session started")


async def at_rest(run: Run, stage: str, timeout: float = 30.0) -> None:
    """Wait until the session is at ``stage`` and its prompt has been played to the end."""
    for _ in range(int(timeout / 0.05)):
        # (the session's own view: a Play it sent has ended; the leg may not have started it yet)
        if run.session is not None and run.session.stage == stage and not run.session._playing:
            await asyncio.sleep(0.3)   # the last frames reach the phone (its jitter buffer)
            return
        await asyncio.sleep(0.05)
    stage_now = run.session.stage if run.session else None
    path = run.session.path if run.session else None
    raise AssertionError(f"the session did not rest at {stage!r} (at {stage_now!r}, path {path})")


async def key(phone: Baresip, digits: str) -> None:
    for d in digits:
        await phone.command("sndcode", d)
        await asyncio.sleep(0.25)


async def test_baresip_walks_the_demo_ivr_through_the_ehic_check_to_an_agent(
        ivr: IvrStack, sip_core: SipCore, tmp_path: Path) -> None:
    [agent] = await sip_core.add_agents(1)
    agent_phone = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_core.phones[agent]), "-m", "1",
                             cwd=tmp_path)
    tel = sip_core.telephony
    async with await Baresip.start(tmp_path / "caller", ["<sip:420271004245@127.0.0.1>;regint=0"], seconds=60,
                                   record=True) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)
        run = await the_run(ivr)
        await at_rest(run, "menu")
        await key(caller, "2")                              # 2: the EHIC check
        await at_rest(run, "ehic_card")
        await key(caller, "123456780#")                     # ends in 0: valid card (the stand-in)
        await at_rest(run, "after_ehic")
        assert run.session is not None and run.session.variables["card"] == "123456780"
        assert "ehic_a" in run.session.path and run.session.variables["ehic.Platnost"] == "A"
        await key(caller, "1")                              # 1: a consultant
        for _ in range(200):                                # queued, offered, bridged by re-INVITE
            if [c.state.value for c in tel.control.calls.values()] == ["connected"] and not ivr.engine.runs:
                break
            await asyncio.sleep(0.05)
        assert [c.state.value for c in tel.control.calls.values()] == ["connected"], caller.tail()
        assert not ivr.engine.runs, "the IVR leg is released once the caller talks to the agent"
        await asyncio.sleep(0.5)
        await caller.command("hangup")
        await caller.wait_event("CALL_CLOSED", 5)
        assert await agent_phone.wait(8) == 0, (sipp_errors(tmp_path), caller.tail())
    # what the caller heard: the prompts in the order the flow played them
    heard = read_recording(tmp_path / "caller" / "rec")
    # (each prompt but its last 0.25 s: the phone drops what is in its jitter buffer when the
    # re-INVITE moves it to the agent, so the recording may end inside the last prompt)
    found = [(name, *locate(ivr.prompt(name)[:-2000], heard)) for name in ("welcome", "menu", "ehic_enter", "ehic_A",
                                                                   "after_ehic")]
    assert all(score > 0.6 for _, _, score in found), found
    assert [at for _, at, _ in found] == sorted(at for _, at, _ in found), found
    assert locate(ivr.prompt("ehic_X"), heard)[1] < 0.3, "a prompt that was not played is not found"
    # on record: the IVR session (bridged, with its path) and the contact (its data, the stage)
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    row = await session_row(sip_core)
    assert (row["flow"], row["outcome"], row["stage"], row["caller"], row["pilot"]) == (
        "demo", "bridged", "queue", "420271004245", "100")
    assert row["path"].split(">")[:4] == ["start", "welcome", "menu", "ehic_card"]
    contact = await sip_core.pool.fetchrow("SELECT outcome, data FROM cc.contact_history")
    assert contact["outcome"] == "answered"
    assert '"ivr_stage": "queue"' in contact["data"] and '"reason": "general"' in contact["data"]
    assert ivr.register.app[ehic_mock.SEEN] == ["123456780"]  # type: ignore[attr-defined]


async def test_a_caller_who_hangs_up_while_queued_is_abandoned_with_the_stage_he_reached(
        ivr: IvrStack, sip_core: SipCore, tmp_path: Path) -> None:
    """He hears the welcome, the music, and the position/EWT announcement spoken by espeak-ng when
    the ACD's waiting rule is due; then he hangs up."""
    [agent] = await sip_core.add_agents(1)
    await sip_core.pool.execute("UPDATE cc.projects SET announce_interval = 5")
    await sip_core.app.distribution.load_config()  # type: ignore[union-attr]
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(agent, t, "break"), "test")  # type: ignore[union-attr]
    async with await Baresip.start(tmp_path / "caller", ["<sip:420271004245@127.0.0.1>;regint=0"], seconds=40,
                                   record=True) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)
        run = await the_run(ivr)
        await key(caller, "1")                              # during the welcome: type-ahead for the menu
        for _ in range(200):
            if run.queued:
                break
            await asyncio.sleep(0.05)
        assert run.queued and run.session is not None and run.session.stage == "queue"
        await asyncio.sleep(13.0)                           # music; the announcement after 5 s in the queue
        await caller.command("hangup")
        await caller.wait_event("CALL_CLOSED", 5)
    row = await session_row(sip_core)
    assert (row["outcome"], row["stage"]) == ("abandoned_queued", "queue")
    assert row["path"] == "start>welcome>menu>queue"       # the type-ahead 1 chose at once
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    contact = await sip_core.pool.fetchrow("SELECT outcome, data FROM cc.contact_history")
    assert contact["outcome"] == "abandoned" and '"ivr_stage": "queue"' in contact["data"]
    heard = read_recording(tmp_path / "caller" / "rec")
    welcome_at, welcome_score = locate(ivr.prompt("welcome"), heard)
    music_at, music_score = locate(ivr.prompt("music")[:8000], heard)   # the first second of the music
    assert welcome_score > 0.6 and music_score > 0.6 and music_at > welcome_at
    spoken = list((ivr.engine.speaker.cache / "en").glob("*.wav"))
    assert len(spoken) == 1, "the announcement (position and EWT) was spoken by text-to-speech"
    said_at, said_score = locate(load_prompt(spoken[0])[:-2000], heard)
    assert said_score > 0.6 and said_at > music_at, (said_at, said_score)


async def test_menu_0_transfers_the_caller_to_the_switchboard(ivr: IvrStack, sip_core: SipCore,
                                                                tmp_path: Path) -> None:
    """The flow's transfer step: the core calls the number (sip.outbound_uri), moves the caller
    there by re-INVITE and releases the IVR leg; the session ends "transferred"."""
    await sip_core.add_agents(1)
    switchboard = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(ivr.switchboard), "-m", "1", cwd=tmp_path)
    tel = sip_core.telephony
    async with await Baresip.start(tmp_path / "caller", ["<sip:420271004245@127.0.0.1>;regint=0"],
                                   seconds=30) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)
        run = await the_run(ivr)
        await at_rest(run, "menu")
        await key(caller, "0")
        for _ in range(200):
            if [c.state.value for c in tel.control.calls.values()] == ["connected"] and not ivr.engine.runs:
                break
            await asyncio.sleep(0.05)
        assert [c.state.value for c in tel.control.calls.values()] == ["connected"], caller.tail()
        call = next(iter(tel.control.calls.values()))
        assert call.transferred and call.ivr_leg is None
        await asyncio.sleep(0.3)
        await caller.command("hangup")
        await caller.wait_event("CALL_CLOSED", 5)
        assert await switchboard.wait(8) == 0, (sipp_errors(tmp_path), caller.tail())
    row = await session_row(sip_core)
    assert (row["outcome"], row["stage"], row["path"]) == (
        "transferred", "operator", "start>welcome>menu>operator")


async def test_a_queued_caller_takes_the_callback_offer(ivr: IvrStack, sip_core: SipCore, tmp_path: Path) -> None:
    """The ACD's callback offer (OUT-1): the IVR plays it, the caller presses 1, the contact leaves
    the queue as a callback (its data kept for the callback campaign), the IVR confirms and hangs up."""
    [agent] = await sip_core.add_agents(1)
    await sip_core.pool.execute("UPDATE cc.projects SET callback_offer_after = 1")
    await sip_core.app.distribution.load_config()  # type: ignore[union-attr]
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(agent, t, "break"), "test")  # type: ignore[union-attr]
    async with await Baresip.start(tmp_path / "caller", ["<sip:420271004245@127.0.0.1>;regint=0"], seconds=40,
                                   record=True) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)
        run = await the_run(ivr)
        await key(caller, "1")                              # type-ahead: the queue
        for _ in range(300):                                # the offer is played after 1 s in the queue
            # (offered, and the offer played: the music is back)
            if run.session is not None and run.session._offered and run.session._treatment == "music":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no callback offer: {run.session and run.session.path}")
        await asyncio.sleep(0.3)
        await key(caller, "1")                              # yes, call me back
        await caller.wait_event("CALL_CLOSED", 20)          # the IVR confirmed and hung up
    row = await session_row(sip_core)
    assert (row["outcome"], row["stage"], row["path"]) == (
        "completed", "callback_ok", "start>welcome>menu>queue>callback_ok")
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    contact = await sip_core.pool.fetchrow("SELECT outcome, data FROM cc.contact_history")
    assert contact["outcome"] == "callback" and '"caller": "420271004245"' in contact["data"]
    heard = read_recording(tmp_path / "caller" / "rec")
    offer_at, offer_score = locate(ivr.prompt("callback_offer")[:-2000], heard)
    ok_at, ok_score = locate(ivr.prompt("callback_ok")[:-2000], heard)
    assert offer_score > 0.6 and ok_score > 0.6 and ok_at > offer_at, (offer_at, offer_score, ok_at, ok_score)


@pytest.mark.parametrize("how", ["dies", "shuts_down"])
async def test_a_caller_is_not_left_in_silence_when_the_ivr_goes_away(ivr: IvrStack, sip_core: SipCore,
                                                                        tmp_path: Path, how: str) -> None:
    """The IVR process dies in the middle of a call and comes back (the core's in-dialog OPTIONS get
    481), or it is stopped (its BYE says Reason: SIP;cause=503): either way the caller, still in the
    menus, is queued by the entry rules and bridged to the agent when he is ready."""
    import dataclasses

    from ivr_engine.engine import IvrEngine
    from tests.e2e.ivr_stack import IVR_PASSWORD

    [agent] = await sip_core.add_agents(1)
    await sip_core.pool.execute("INSERT INTO cc.entry_rules (position, pilot, project) VALUES (2, '100', 'general')")
    await sip_core.app.distribution.load_config()  # type: ignore[union-attr]
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(agent, t, "break"), "test")  # type: ignore[union-attr]
    tel = sip_core.telephony
    tel.settings = dataclasses.replace(tel.settings, ivr_ping_interval=0.3)
    agent_phone = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_core.phones[agent]), "-m", "1",
                             cwd=tmp_path)
    async with await Baresip.start(tmp_path / "caller", ["<sip:420271004245@127.0.0.1>;regint=0"],
                                   seconds=30) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)
        await the_run(ivr)
        old = ivr.engine
        if how == "dies":   # without a word (no BYE): its SIP endpoint and media go, then it starts again
            for r in list(old.runs.values()):
                if r.leg is not None:
                    r.leg.close()
            assert old.sip.endpoint is not None
            await old.sip.endpoint.close()
            await old.client.close()
            ivr.engine = IvrEngine(old.settings, IVR_PASSWORD)
            await ivr.engine.start(connect_wait=5.0)
        else:               # SIGTERM: it hands its callers back
            await old.close()
            ivr.engine = IvrEngine(old.settings, IVR_PASSWORD)   # (for the fixture's close)
            await ivr.engine.start(connect_wait=5.0)
        call = next(iter(tel.control.calls.values()))
        for _ in range(100):
            if call.ivr_leg is None and call.enqueued:
                break
            await asyncio.sleep(0.05)
        assert call.ivr_leg is None and call.enqueued, "the core took the caller back and queued him"
        assert tel.ivr_watch.lost == (1 if how == "dies" else 0)
        sip_core.app.distribution.engine_input(lambda e, t: e.ready(agent, t), "test")  # type: ignore[union-attr]
        for _ in range(100):
            if [c.state.value for c in tel.control.calls.values()] == ["connected"]:
                break
            await asyncio.sleep(0.05)
        assert [c.state.value for c in tel.control.calls.values()] == ["connected"], caller.tail()
        await caller.command("hangup")
        await caller.wait_event("CALL_CLOSED", 5)
        assert await agent_phone.wait(8) == 0, (sipp_errors(tmp_path), caller.tail())
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    contact = await sip_core.pool.fetchrow("SELECT outcome, data FROM cc.contact_history")
    assert contact["outcome"] == "answered" and '"ivr_lost": true' in contact["data"]
    if how == "shuts_down":   # the stopped IVR reported its session before it went
        row = await session_row(sip_core)
        assert row["outcome"] == "ended", row
