"""Distribution over SimProt with the real database: offer, answer, wrap-up, history, restart."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg

from ctiserver.app import App
from simprot.client import SimProtClient
from tests.integration.conftest import ADMIN, ADMIN_PW, AGENT, AGENT_PW, Core


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def configure(core: Core, admin: SimProtClient, agents: list[str]) -> None:
    pool = core.app.db.pool  # type: ignore[union-attr]
    await pool.execute("INSERT INTO cc.skills (skill) VALUES ('general')")
    await pool.execute("INSERT INTO cc.projects (project, name, ring_timeout, wrap_up) VALUES "
                       "('general', 'General enquiries', 5, 30)")
    await pool.execute("INSERT INTO cc.project_skills (project, skill, min_level) VALUES ('general', 'general', 1)")
    for name in agents:
        aid = await pool.fetchval("SELECT id FROM cc.accounts WHERE username = $1", name)
        await pool.execute("INSERT INTO cc.agents (account_id) VALUES ($1)", aid)
        await pool.execute("INSERT INTO cc.agent_skills (account_id, skill, level) VALUES ($1, 'general', 5)", aid)
    assert (await admin.request("acd.reload"))["agents"] == len(agents)


async def add_ehic_project(core: Core) -> asyncpg.Pool:
    """A second project, 'ehic', needing skill 'ehic' (not reloaded: callers add more, then reload)."""
    pool = core.app.db.pool  # type: ignore[union-attr]
    await pool.execute("INSERT INTO cc.skills (skill) VALUES ('ehic')")
    await pool.execute("INSERT INTO cc.projects (project) VALUES ('ehic')")
    await pool.execute("INSERT INTO cc.project_skills (project, skill) VALUES ('ehic', 'ehic')")
    return pool


async def test_a_contact_is_offered_answered_and_recorded(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    agent = await core.connected(AGENT, AGENT_PW)
    offers: list = []
    await agent.subscribe("agent", lambda t, s, n, d: offers.append((n, d)))
    owner_events: list = []
    await admin.subscribe("contacts", lambda t, s, n, d: owner_events.append(d["new"]))
    assert (await agent.request("agent.login", {}))["state"] == "not_ready"
    assert (await agent.request("agent.ready"))["state"] == "ready"
    status = await admin.request("contact.enqueue", {"project": "general", "data": {"caller": "420271004245"}})
    contact = status["contact"]
    assert status["state"] == "offered" and status["agent"] == AGENT
    await wait_for(lambda: any(n == "offer" for n, _ in offers))
    offer = next(d for n, d in offers if n == "offer")
    assert offer["contact"] == contact and offer["data"] == {"caller": "420271004245"}
    assert (await agent.request("agent.accept", {"contact": contact}))["state"] == "busy"
    assert (await agent.request("agent.end", {"contact": contact}))["state"] == "wrap_up"
    assert (await agent.request("agent.end_wrap_up"))["state"] == "ready"
    await wait_for(lambda: owner_events[-1:] == ["ended"])
    assert owner_events[:3] == ["queued", "offered", "answered"]
    await core.app.history.flush()  # type: ignore[union-attr]
    pool = core.app.db.pool  # type: ignore[union-attr]
    row = await pool.fetchrow("SELECT * FROM cc.contact_history WHERE contact = $1", contact)
    assert row["outcome"] == "answered" and row["answered_at"] >= row["enqueued_at"]
    assert await pool.fetchval("SELECT outcome FROM cc.offer_history WHERE contact = $1", contact) == "answered"
    states = [r["state"] for r in await pool.fetch(
        "SELECT state FROM cc.agent_state_history ORDER BY started_at, id")]
    assert states == ["not_ready", "ready", "reserved", "offered", "busy", "wrap_up"]
    assert await pool.fetchval("SELECT count(*) FROM cc.contacts_live") == 0
    snap = await admin.request("acd.snapshot")
    assert snap["agents"][0]["state"] == "ready" and snap["projects"][0]["answered"] == 1
    for c in (agent, admin):
        await c.close()


async def test_agent_without_permission_or_profile(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [])
    agent = await core.connected(AGENT, AGENT_PW)
    from simprot.errors import ErrorCode, RequestError

    for op, args, code in (("agent.login", {}, ErrorCode.NOT_FOUND),
                           ("contact.enqueue", {"project": "general"}, ErrorCode.PERMISSION_DENIED),
                           ("acd.snapshot", {}, ErrorCode.PERMISSION_DENIED)):
        try:
            await agent.request(op, args)
        except RequestError as exc:
            assert exc.code is code, (op, exc)
        else:
            raise AssertionError(f"{op} should fail")
    try:
        await admin.request("contact.enqueue", {"project": "nope"})
    except RequestError as exc:
        assert exc.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_ARGUMENT)
    else:
        raise AssertionError("unknown project accepted")
    await agent.close()
    await admin.close()


async def test_restart_loses_no_queued_contact_and_no_agent_session(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    agent = await core.connected(AGENT, AGENT_PW)
    await agent.request("agent.login", {})
    await agent.request("agent.not_ready", {"reason": "break"})
    ids = [(await admin.request("contact.enqueue", {"project": "general", "data": {"n": i}}))["contact"]
           for i in range(3)]
    await agent.close()
    await admin.close()
    app = core.app
    port = app.simprot_address[1]
    await app.stop(grace=0.5)  # flushes the history writer
    settings = dataclasses.replace(app.settings, simprot=dataclasses.replace(app.settings.simprot, port=port))
    again = App(settings, scrypt_n=2**10)
    await again.start()
    try:
        admin = SimProtClient([f"127.0.0.1:{port}"], user=ADMIN, password=ADMIN_PW, reconnect=False)
        await admin.connect()
        positions = [(await admin.request("contact.status", {"contact": c}))["position"] for c in ids]
        assert positions == [1, 2, 3]
        agent = SimProtClient([f"127.0.0.1:{port}"], user=AGENT, password=AGENT_PW, reconnect=False)
        await agent.connect()
        view = await agent.request("agent.status")
        assert view["state"] == "not_ready" and view["reason"] == "break"  # the session survived
        view = await agent.request("agent.ready")
        assert view["state"] == "offered" and view["contact"] == ids[0]  # the oldest first
        await agent.close()
        await admin.close()
    finally:
        await again.stop(grace=0.5)


async def test_ctictl_views_and_supervisor_actions(core: Core) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    admin = await core.connected()
    await configure(core, admin, [AGENT])
    agent = await core.connected(AGENT, AGENT_PW)
    await agent.request("agent.login", {})
    bin_ = Path(sys.executable).parent / "ctictl"

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_), "--server", core.address, "--user", ADMIN, *args], capture_output=True,
                              text=True, timeout=30, env={**os.environ, "CTICTL_PASSWORD": ADMIN_PW})

    res = await asyncio.to_thread(ctl, "enqueue", "general", "--data", "caller=420271004245")
    assert res.returncode == 0 and "queued in general, position 1" in res.stdout, res.stderr
    res = await asyncio.to_thread(ctl, "projects")
    assert res.returncode == 0 and "general" in res.stdout and "WAITING" in res.stdout
    res = await asyncio.to_thread(ctl, "contacts")
    assert "queued" in res.stdout and "admin" in res.stdout
    res = await asyncio.to_thread(ctl, "agents")
    assert AGENT in res.stdout and "not_ready" in res.stdout
    res = await asyncio.to_thread(ctl, "force", AGENT, "logout")
    assert res.returncode == 0 and "logged_out" in res.stdout
    assert (await agent.request("agent.status"))["state"] == "logged_out"
    res = await asyncio.to_thread(ctl, "force", "nobody", "logout")
    assert res.returncode == 1 and "NOT_FOUND" in res.stderr
    res = await asyncio.to_thread(ctl, "pause", "channel", "chat")
    assert res.returncode == 0 and "channel chat: paused" in res.stdout, res.stderr
    res = await asyncio.to_thread(ctl, "pause", "project", "general")
    assert res.returncode == 0 and "project general: paused" in res.stdout, res.stderr
    res = await asyncio.to_thread(ctl, "projects")
    assert "paused channels: chat" in res.stdout and "paused" in res.stdout.splitlines()[2], res.stdout
    res = await asyncio.to_thread(ctl, "resume", "project", "general")
    assert res.returncode == 0 and "project general: distributing" in res.stdout
    res = await asyncio.to_thread(ctl, "resume", "project", "nope")
    assert res.returncode == 1 and "NOT_FOUND" in res.stderr
    await agent.close()
    await admin.close()


async def test_supervisor_changes_skills_and_routing_follows(core: Core) -> None:
    from simprot.errors import ErrorCode, RequestError

    admin = await core.connected()
    await configure(core, admin, [AGENT])
    pool = await add_ehic_project(core)
    await admin.request("acd.reload")
    agent = await core.connected(AGENT, AGENT_PW)
    await agent.request("agent.login", {})
    await agent.request("agent.ready")
    waiting = (await admin.request("contact.enqueue", {"project": "ehic"}))["contact"]
    assert (await admin.request("contact.status", {"contact": waiting}))["state"] == "queued"  # nobody can
    view = await admin.request("acd.agent.skills", {"agent": AGENT, "skills": {"general": 5, "ehic": 2}})
    assert "ehic" in view["projects"]
    assert (await admin.request("contact.status", {"contact": waiting}))["agent"] == AGENT  # offered at once
    assert await pool.fetchval("SELECT level FROM cc.agent_skills WHERE skill = 'ehic'") == 2
    try:
        await admin.request("acd.agent.skills", {"agent": AGENT, "skills": {"juggling": 3}})
    except RequestError as exc:
        assert exc.code is ErrorCode.INVALID_ARGUMENT and exc.details["field"] == "skills"
    else:
        raise AssertionError("an unknown skill was accepted")
    await agent.close()
    await admin.close()


async def test_entry_rules_choose_the_project(core: Core) -> None:
    from simprot.errors import ErrorCode, RequestError

    admin = await core.connected()
    await configure(core, admin, [AGENT])
    pool = await add_ehic_project(core)
    await pool.execute("""INSERT INTO cc.entry_rules (position, pilot, data_key, data_value, project) VALUES
                          (10, '200', 'menu', '3', 'ehic'), (20, '200', NULL, NULL, 'general')""")
    await admin.request("acd.reload")
    a = await admin.request("contact.enqueue", {"pilot": "200", "caller": "420271004245", "data": {"menu": "3"}})
    b = await admin.request("contact.enqueue", {"pilot": "200", "data": {"menu": "1"}})
    assert (a["project"], b["project"]) == ("ehic", "general")
    try:
        await admin.request("contact.enqueue", {"pilot": "999"})
    except RequestError as exc:
        assert exc.code is ErrorCode.NOT_FOUND and exc.details["field"] == "project"
    else:
        raise AssertionError("a contact no rule matches was queued")
    await admin.close()


async def test_an_agent_with_chat_capacity_holds_several_chats(core: Core) -> None:
    """Capacity per channel (ACD-1) through SimProt: three chats at once, the fourth waits."""
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    pool = core.app.db.pool  # type: ignore[union-attr]
    await pool.execute("""UPDATE cc.agents SET capacity = '{"voice": 1, "chat": 3}'
                          WHERE account_id = (SELECT id FROM cc.accounts WHERE username = $1)""", AGENT)
    await admin.request("acd.reload")
    agent = await core.connected(AGENT, AGENT_PW)
    await agent.request("agent.login", {})
    await agent.request("agent.ready")
    ids = [(await admin.request("contact.enqueue", {"project": "general", "channel": "chat"}))["contact"]
           for _ in range(4)]
    view = await agent.request("agent.status")
    assert view["contacts"] == ids[:3] and view["contact"] == ids[0] and view["state"] == "offered"
    assert (await admin.request("contact.status", {"contact": ids[3]}))["state"] == "queued"
    for cid in ids[:3]:
        await agent.request("agent.accept", {"contact": cid})
    assert (await agent.request("agent.status"))["state"] == "busy"
    await agent.request("agent.end", {"contact": ids[0]})   # wrap-up 30 s in this project: the slot stays taken
    snap = await admin.request("acd.snapshot")
    assert snap["agents"][0]["contacts"] == ids[1:3]
    await agent.close()
    await admin.close()
