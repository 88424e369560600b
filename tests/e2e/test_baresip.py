"""The real softphone baresip against the core: as an agent's phone that registers with digest auth
and answers by itself, refused with a wrong password, and as a caller through the trunk.

baresip 1.0 (Debian baresip-core 1.0.0 on libre 1.1.0) knows only MD5 digests, and its libre does
not skip a challenge it cannot answer as RFC 7616 §3.3 and RFC 8760 ask: ``auth_handler`` in
libre's ``src/sip/auth.c`` fails the whole 401 with ENOSYS at the first ``WWW-Authenticate`` whose
algorithm is not MD5 ("Register: Function not implemented"), whichever order they come in. So a
registry offering SHA-256 at all cannot register it (pinned by
``test_baresip_1_0_cannot_register_when_sha256_is_offered``); the tests that register it run the
registry with ``algorithms=(MD5,)``. libre learnt SHA-256 in 2024 (baresip/re
PR #1103, baresip 3.11).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from ctiserver.accounts import WorkplaceStore
from ctiserver.calls.registration import PhoneRegistry
from sipcore.digest import Algorithm
from tests.e2e.baresip import BARESIP, Baresip
from tests.e2e.conftest import SipCore, free_port, sipp, sipp_errors
from tests.integration.conftest import ADMIN, ADMIN_PW

PASSWORD = "phone-secret-1001"



@pytest.fixture(autouse=True)
def _baresip_is_there() -> None:
    """./dev test installs baresip-core; without it these tests fail rather than pass unseen."""
    if BARESIP is None:
        pytest.fail("baresip is not installed: ./dev test installs the Debian package baresip-core")


async def phone_workplace(core: SipCore, algorithms: tuple[Algorithm, ...] = (Algorithm.MD5,)) -> str:
    """Agent agent1 at workplace ws-1 (extension 1001) whose phone must register with PASSWORD:
    its static sip_uri is emptied, so only the registration can route a call to it. The core's
    phone registry challenges with ``algorithms`` (baresip 1.0 answers MD5 alone, see the top)."""
    tel = core.telephony
    tel.phones = PhoneRegistry(tel.registrar, realm=tel.phones.realm, workplace=tel.phones.workplace,
                               algorithms=algorithms)
    [agent] = await core.add_agents(1)
    service = core.app.service
    assert service is not None
    await core.pool.execute("UPDATE cc.workplaces SET sip_uri = '' WHERE name = 'ws-1'")
    wp = await service.workplaces.set_sip_password("ws-1", PASSWORD, realm=core.app.settings.sip.realm)
    assert wp["sip_auth"] and "sip_ha1_md5" not in wp
    await core.telephony.load_workplaces()
    return agent


def account(core: SipCore, password: str) -> str:
    return (f"<sip:1001@127.0.0.1:{core.port};transport=udp>;auth_pass={password};regint=60;"
            "answermode=auto")


async def wait_for(predicate, timeout: float, what: str, phone: Baresip) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not in {timeout} s\n{phone.tail()}"
        await asyncio.sleep(0.05)


async def test_baresip_registers_with_digest_and_answers_a_call_routed_by_its_registration(
        sip_core: SipCore, tmp_path: Path) -> None:
    agent = await phone_workplace(sip_core)
    tel = sip_core.telephony
    assert tel.target_of(agent) is None        # no static URI, no registration yet: nowhere to ring
    async with await Baresip.start(tmp_path / "phone", [account(sip_core, PASSWORD)], seconds=18) as phone:
        await wait_for(lambda: tel.registrar.lookup("1001", tel.endpoint.now()), 5, "binding of 1001", phone)
        [binding] = tel.registrar.lookup("1001", tel.endpoint.now())
        assert f"127.0.0.1:{phone.sip_port}" in binding.contact, (binding, phone.tail())
        assert tel.phones.stats["registered"] >= 1 and tel.phones.stats["refused"] == 0, phone.tail()
        assert "401 Unauthorized" in phone.output and "Authorization: Digest" in phone.output, phone.tail()
        assert tel.target_of(agent) == binding.contact, phone.tail()
        caller = await sipp("-sn", "uac", "-s", "200", f"127.0.0.1:{sip_core.port}", "-i", "127.0.0.1",
                            "-p", str(free_port()), "-m", "1", "-timeout", "15s", "-recv_timeout", "10000",
                            cwd=tmp_path)
        rc = await caller.wait(15)
        assert rc == 0, (caller.out[-1500:], sipp_errors(tmp_path), phone.tail())
        assert tel.stats["answered"] == 1, phone.tail()
        answered = await phone.wait_event("CALL_ESTABLISHED", 2)   # by itself (answermode=auto)
        assert answered["direction"] == "incoming", answered
        closed = await phone.wait_event("CALL_CLOSED", 5)          # the caller's BYE reached it through us
        assert closed["param"] == "Connection reset by peer", (closed, phone.tail())
    history = sip_core.app.history
    assert history is not None
    await history.flush()
    rows = await sip_core.pool.fetch("""SELECT a.username, o.outcome FROM cc.offer_history o
                                        JOIN cc.accounts a ON a.id = o.account_id""")
    assert [(r["username"], r["outcome"]) for r in rows] == [(agent, "answered")]


async def test_baresip_with_a_wrong_password_is_refused_and_not_bound(sip_core: SipCore, tmp_path: Path) -> None:
    await phone_workplace(sip_core)
    tel = sip_core.telephony
    async with await Baresip.start(tmp_path / "phone", [account(sip_core, "not-the-password")], seconds=10) as phone:
        await phone.wait_output(r"403 Forbidden", 5)
        await asyncio.sleep(2.0)                 # nothing binds later either
        assert tel.registrar.lookup("1001", tel.endpoint.now()) == [], phone.tail()
        assert tel.phones.stats["refused"] >= 1 and tel.phones.stats["registered"] == 0, phone.tail()
        assert "401 Unauthorized" in phone.output, phone.tail()  # it was challenged, then refused


async def test_baresip_calls_the_pilot_and_a_sipp_agent_phone_answers(sip_core: SipCore, tmp_path: Path) -> None:
    [agent] = await sip_core.add_agents(1)
    agent_phone = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_core.phones[agent]), "-m", "1",
                             cwd=tmp_path)
    try:
        await asyncio.sleep(0.3)
        caller_line = "<sip:caller@127.0.0.1>;regint=0"          # a trunk peer: calls, never registers
        async with await Baresip.start(tmp_path / "caller", [caller_line], seconds=15) as caller:
            await caller.command("dial", f"sip:200@127.0.0.1:{sip_core.port}")
            await caller.wait_event("CALL_ESTABLISHED", 5)
            await asyncio.sleep(1.0)
            await caller.command("hangup")
            closed = await caller.wait_event("CALL_CLOSED", 5)
            assert closed["param"] == "Connection reset by user", closed
            rc = await agent_phone.wait(8)          # the uas got our BYE (then waits 4 s for retransmissions)
            assert rc == 0, (agent_phone.out[-1500:], sipp_errors(tmp_path), caller.tail())
    finally:
        await agent_phone.stop()
    tel = sip_core.telephony
    assert tel.stats["calls"] == 1 and tel.stats["answered"] == 1
    assert sip_core.app.history is not None
    await sip_core.app.history.flush()
    rows = await sip_core.pool.fetch("SELECT outcome FROM cc.contact_history")
    assert [r["outcome"] for r in rows] == ["answered"]


@pytest.mark.parametrize("algorithms", [(Algorithm.SHA256, Algorithm.MD5), (Algorithm.MD5, Algorithm.SHA256)],
                         ids=["sha256-first", "md5-first"])
async def test_baresip_1_0_cannot_register_when_sha256_is_offered(sip_core: SipCore, tmp_path: Path,
                                                                 algorithms: tuple[Algorithm, ...]) -> None:
    """Pins the libre 1.1.0 limitation described at the top: when this fails, baresip learnt
    SHA-256 (or to skip what it cannot answer) and phones like it no longer need MD5 alone."""
    await phone_workplace(sip_core, algorithms)
    tel = sip_core.telephony
    async with await Baresip.start(tmp_path / "phone", [account(sip_core, PASSWORD)], seconds=8) as phone:
        await phone.wait_output(r"Register: Function not implemented", 5)
        assert "Authorization: Digest" not in phone.output, phone.tail()     # it never answered
        assert tel.registrar.lookup("1001", tel.endpoint.now()) == [], phone.tail()
        assert tel.phones.stats["challenged"] == 1 and tel.phones.stats["refused"] == 0, phone.tail()


async def ctictl(core: SipCore, *args: str, sip_password: str = "", rc: int = 0) -> dict:
    """Run ctictl --json against the core; passwords only through the environment. Returns its JSON
    answer, or with ``rc`` != 0 ``{"stderr": ...}``."""
    host, port = core.app.simprot_address
    env = {**os.environ, "CTICTL_PASSWORD": ADMIN_PW, "CTICTL_SIP_PASSWORD": sip_password}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "ctictl"), "--server", f"{host}:{port}", "--user", ADMIN, "--json", *args,
        env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == rc, (args, out, err)
    assert not sip_password or sip_password.encode() not in out + err
    return json.loads(out) if rc == 0 else {"stderr": err.decode()}


async def test_ctictl_gives_a_workplace_a_sip_password_and_baresip_registers_with_it(
        sip_core: SipCore, tmp_path: Path) -> None:
    """The operator's path: ctictl workplaces add --sip-password, workplaces.add stores the HA1s,
    the telephony reloads the workplaces (the service's workplaces_changed hook) and the phone
    registers; sip-password changes and clears it; nothing shows an HA1."""
    tel, service = sip_core.telephony, sip_core.app.service
    assert service is not None
    service.workplaces_changed = tel.load_workplaces
    tel.phones = PhoneRegistry(tel.registrar, realm=tel.phones.realm, workplace=tel.phones.workplace,
                               algorithms=(Algorithm.MD5,))
    added = await ctictl(sip_core, "workplaces", "add", "ws-9", "1009", "--sip-password", sip_password=PASSWORD)
    assert added["sip_auth"] is True and not any(k.startswith("sip_ha1") for k in added), added
    line = (f"<sip:1009@127.0.0.1:{sip_core.port};transport=udp>;auth_pass={PASSWORD};regint=60;"
            "answermode=auto")
    async with await Baresip.start(tmp_path / "phone", [line], seconds=10) as phone:
        await wait_for(lambda: tel.registrar.lookup("1009", tel.endpoint.now()), 5, "binding of 1009", phone)
    changed = await ctictl(sip_core, "workplaces", "sip-password", "ws-9", sip_password="another-password-9")
    assert changed["sip_auth"] is True
    stored = await sip_core.pool.fetchrow("SELECT sip_ha1_md5, sip_ha1_sha256 FROM cc.workplaces WHERE name = 'ws-9'")
    realm = sip_core.app.settings.sip.realm
    assert tuple(stored) == WorkplaceStore.sip_ha1s("1009", realm, "another-password-9")
    assert tel.workplaces["ws-9"]["sip_ha1_md5"] == stored["sip_ha1_md5"]       # reloaded by the hook
    cleared = await ctictl(sip_core, "workplaces", "sip-password", "ws-9", "--clear")
    assert cleared["sip_auth"] is False and tel.workplaces["ws-9"]["sip_ha1_md5"] is None
    [listed] = (await ctictl(sip_core, "workplaces", "list"))["workplaces"]
    assert listed == cleared and "sip_ha1_md5" not in listed
    missing = await ctictl(sip_core, "workplaces", "sip-password", "ws-404", sip_password="whatever-pass", rc=1)
    assert "NOT_FOUND: name: no workplace 'ws-404'" in missing["stderr"]
    short = await ctictl(sip_core, "workplaces", "sip-password", "ws-9", sip_password="short", rc=1)
    assert "INVALID_ARGUMENT: sip_password: must be at least" in short["stderr"]


async def test_baresip_calls_through_the_ivr_and_is_bridged_to_the_agent_by_reinvite(sip_core: SipCore,
                                                                                      tmp_path: Path) -> None:
    """Pilot 100: baresip talks to the IVR (a sipp uas) first; when the agent is ready the core moves
    it to the agent's phone with a re-INVITE carrying the phone's offer (RFC 3725), and baresip, a
    real softphone, accepts it; the IVR leg is released."""
    import dataclasses

    [agent] = await sip_core.add_agents(1)
    await sip_core.pool.execute("INSERT INTO cc.entry_rules (position, pilot, project) VALUES (2, '100', 'general')")
    assert sip_core.app.distribution is not None
    await sip_core.app.distribution.load_config()
    tel = sip_core.telephony
    ivr_port = free_port()
    tel.settings = dataclasses.replace(tel.settings, ivr_uri=f"sip:ivr@127.0.0.1:{ivr_port}",
                                       ivr_routing="entry_rules")
    sip_core.app.distribution.engine_input(lambda e, t: e.not_ready(agent, t, "break"), "test")
    ivr = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(ivr_port), "-m", "1", cwd=tmp_path)
    agent_phone = await sipp("-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_core.phones[agent]), "-m", "1",
                             cwd=tmp_path)
    await asyncio.sleep(0.3)
    async with await Baresip.start(tmp_path / "caller", ["<sip:caller@127.0.0.1>;regint=0"], seconds=18) as caller:
        await caller.command("dial", f"sip:100@127.0.0.1:{sip_core.port}")
        await caller.wait_event("CALL_ESTABLISHED", 5)                  # answered by the IVR
        assert [c.state.value for c in tel.control.calls.values()] == ["ivr"]
        sip_core.app.distribution.engine_input(lambda e, t: e.ready(agent, t), "test")
        for _ in range(100):                                           # the re-INVITE bridge
            if [c.state.value for c in tel.control.calls.values()] == ["connected"]:
                break
            await asyncio.sleep(0.05)
        assert [c.state.value for c in tel.control.calls.values()] == ["connected"], caller.tail()
        assert await ivr.wait(8) == 0, (sipp_errors(tmp_path), caller.tail())   # the IVR leg got our BYE
        await asyncio.sleep(0.5)
        await caller.command("hangup")
        await caller.wait_event("CALL_CLOSED", 5)
        assert await agent_phone.wait(8) == 0, (sipp_errors(tmp_path), caller.tail())
    assert tel.stats["answered"] == 1
    await sip_core.app.history.flush()  # type: ignore[union-attr]
    kinds = sorted(r["kind"] for r in await sip_core.pool.fetch("SELECT kind FROM cc.call_legs"))
    assert kinds == ["agent", "caller", "ivr"]
