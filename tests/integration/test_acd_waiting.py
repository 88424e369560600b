"""Waiting rules and pauses over SimProt with the real database: notices, callbacks, pauses that
survive a restart."""

from __future__ import annotations

import dataclasses

import pytest

from ctiserver.app import App
from simprot.client import SimProtClient
from simprot.errors import ErrorCode, RequestError
from tests.integration.conftest import ADMIN, ADMIN_PW, AGENT, AGENT_PW, Core
from tests.integration.test_distribution import configure, wait_for


async def test_callback_offer_notice_then_callback_is_recorded(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    pool = core.app.db.pool  # type: ignore[union-attr]
    await pool.execute("UPDATE cc.projects SET callback_offer_after = 0.2 WHERE project = 'general'")
    await admin.request("acd.reload")
    waiting: list = []
    await admin.subscribe("contacts", lambda t, s, n, d: waiting.append(d) if n == "contact.waiting" else None)
    status = await admin.request("contact.enqueue", {"project": "general", "data": {"caller": "420271004245"}})
    cid = status["contact"]
    assert status["state"] == "queued"   # nobody is logged in
    await wait_for(lambda: bool(waiting))
    notice = waiting[0]
    assert notice["contact"] == cid and notice["kind"] == "callback_offer" and notice["position"] == 1
    assert notice["waited"] >= 0.2 and "ewt" in notice
    assert await admin.request("contact.callback", {"contact": cid}) == {"contact": cid, "state": "callback"}
    with pytest.raises(RequestError) as err:
        await admin.request("contact.callback", {"contact": cid})
    assert err.value.code is ErrorCode.NOT_FOUND
    await core.app.history.flush()  # type: ignore[union-attr]
    row = await pool.fetchrow("SELECT outcome, data FROM cc.contact_history WHERE contact = $1", cid)
    assert row["outcome"] == "callback" and "420271004245" in row["data"]
    snap = await admin.request("acd.snapshot")
    assert snap["projects"][0]["callbacks"] == 1 and snap["contacts"] == []
    await admin.close()


async def test_pause_holds_contacts_survives_a_restart_and_resume_offers_them(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    agent = await core.connected(AGENT, AGENT_PW)
    await agent.request("agent.login", {})
    events: list = []
    await admin.subscribe("acd", lambda t, s, n, d: events.append((n, d)))
    paused = await admin.request("acd.pause", {"project": "general"})
    assert paused == {"project": "general", "channel": None, "paused": True, "by": ADMIN}
    await admin.request("acd.pause", {"channel": "chat"})
    assert (await agent.request("agent.ready"))["state"] == "ready"
    cid = (await admin.request("contact.enqueue", {"project": "general"}))["contact"]
    assert (await admin.request("contact.status", {"contact": cid}))["state"] == "queued"
    await wait_for(lambda: any(n == "paused" for n, _ in events))
    await agent.close()
    await admin.close()

    app = core.app
    port = app.simprot_address[1]
    await app.stop(grace=0.5)
    settings = dataclasses.replace(app.settings, simprot=dataclasses.replace(app.settings.simprot, port=port))
    again = App(settings, scrypt_n=2**10)
    await again.start()
    try:
        admin = SimProtClient([f"127.0.0.1:{port}"], user=ADMIN, password=ADMIN_PW, reconnect=False)
        await admin.connect()
        snap = await admin.request("acd.snapshot")
        assert snap["projects"][0]["paused"] is True and snap["paused_channels"] == ["chat"]
        agent = SimProtClient([f"127.0.0.1:{port}"], user=AGENT, password=AGENT_PW, reconnect=False)
        await agent.connect()
        assert (await agent.request("agent.status"))["state"] == "ready"   # still nothing offered
        await admin.request("acd.resume", {"project": "general"})
        assert (await agent.request("agent.status"))["contact"] == cid
        await admin.request("acd.resume", {"channel": "chat"})
        assert (await admin.request("acd.snapshot"))["paused_channels"] == []
        await agent.close()
        await admin.close()
    finally:
        await again.stop(grace=0.5)


async def test_pause_errors_name_the_field(core: Core) -> None:
    admin = await core.connected()
    await configure(core, admin, [AGENT])
    agent = await core.connected(AGENT, AGENT_PW)
    for op, args, code, field in (("acd.pause", {}, ErrorCode.INVALID_ARGUMENT, "project"),
                                  ("acd.pause", {"project": "general", "channel": "voice"},
                                   ErrorCode.INVALID_ARGUMENT, "project"),
                                  ("acd.pause", {"channel": "fax"}, ErrorCode.INVALID_ARGUMENT, "channel"),
                                  ("acd.resume", {"project": "nope"}, ErrorCode.NOT_FOUND, None)):
        with pytest.raises(RequestError) as err:
            await admin.request(op, args)
        assert err.value.code is code, (op, args, err.value)
        if field:
            assert field in str(err.value), err.value
    with pytest.raises(RequestError) as err:
        await agent.request("acd.pause", {"project": "general"})
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    pool = core.app.db.pool  # type: ignore[union-attr]
    assert not await pool.fetchval("SELECT paused FROM cc.projects WHERE project = 'general'")
    assert await pool.fetchval("SELECT count(*) FROM cc.paused_channels") == 0
    await agent.close()
    await admin.close()
