"""The IVR's configuration in the core over SimProt with the real database: flows validated and
stored, holidays, what the IVR fetches, and the session records it reports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ivr_engine.flow import load_flow_file
from simprot.errors import ErrorCode, RequestError
from tests.integration.conftest import AGENT, AGENT_PW, Core

DEMO = Path(__file__).resolve().parents[2] / "flows" / "demo.toml"
SMALL = {"name": "small", "pilots": ["300"], "start": "hello",
         "steps": {"hello": {"type": "play", "prompt": "welcome", "next": "bye"},
                   "bye": {"type": "hangup"}}}


async def test_flows_are_validated_stored_and_served_to_the_ivr(core: Core) -> None:
    admin = await core.connected()
    demo = load_flow_file(DEMO).to_doc()
    assert await admin.request("ivr.flow.put", {"flow": demo}) == {"name": "demo", "pilots": ["100"],
                                                                   "steps": len(demo["steps"])}
    assert (await admin.request("ivr.flow.put", {"flow": SMALL}))["steps"] == 2
    # a mistake is refused with the step and field named; nothing is stored
    bad = {**SMALL, "name": "bad", "pilots": ["301"],
           "steps": {**SMALL["steps"], "hello": {"type": "play", "prompt": "welcome", "next": "nowhere"}}}
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.flow.put", {"flow": bad})
    assert err.value.code is ErrorCode.INVALID_ARGUMENT and err.value.details == {"field": "flow"}
    assert "step 'hello'" in err.value.message and "nowhere" in err.value.message
    # a pilot belongs to one flow
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.flow.put", {"flow": {**SMALL, "name": "other"}})
    assert err.value.code is ErrorCode.CONFLICT and "300" in err.value.message
    listed = await admin.request("ivr.flows")
    assert [(f["name"], f["pilots"]) for f in listed["flows"]] == [("demo", ["100"]), ("small", ["300"])]
    assert (await admin.request("ivr.flow.get", {"name": "small"}))["flow"]["steps"]["bye"]["type"] == "hangup"
    # holidays
    assert await admin.request("ivr.holiday.put", {"day": "2026-12-24", "name": "Christmas Eve"}) == {
        "day": "2026-12-24", "name": "Christmas Eve"}
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.holiday.put", {"day": "24.12.2026"})
    assert err.value.details == {"field": "day"}
    # what the IVR fetches: every flow and the holidays
    config = await admin.request("ivr.config")
    assert [f["name"] for f in config["flows"]] == ["demo", "small"] and config["holidays"] == ["2026-12-24"]
    assert await admin.request("ivr.holiday.delete", {"day": "2026-12-24"}) == {"day": "2026-12-24", "deleted": True}
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.holiday.delete", {"day": "2026-12-24"})
    assert err.value.code is ErrorCode.NOT_FOUND
    assert await admin.request("ivr.flow.delete", {"name": "small"}) == {"name": "small", "deleted": True}
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.flow.get", {"name": "small"})
    assert err.value.code is ErrorCode.NOT_FOUND
    # an agent may not change them
    agent = await core.connected(AGENT, AGENT_PW)
    with pytest.raises(RequestError) as err:
        await agent.request("ivr.flow.put", {"flow": SMALL})
    assert err.value.code is ErrorCode.PERMISSION_DENIED
    await agent.close()
    await admin.close()


async def test_the_ivr_reports_its_sessions(core: Core) -> None:
    admin = await core.connected()
    now = time.time()
    report = {"contact": "s1", "flow": "demo", "caller": "420271004245", "pilot": "100", "started": now - 30,
              "ended": now, "stage": "queue", "path": "start>welcome>menu>queue", "outcome": "abandoned_queued"}
    assert await admin.request("ivr.session", report) == {"contact": "s1", "recorded": True}
    for field, value in (("outcome", "vanished"), ("started", "yesterday"), ("stage", "")):
        with pytest.raises(RequestError) as err:
            await admin.request("ivr.session", {**report, field: value})
        assert err.value.details == {"field": field}
    await admin.request("ivr.session", {**report, "contact": "s2", "outcome": "bridged", "stage": "queue"})
    got = await admin.request("ivr.sessions", {"limit": 1})
    assert [s["contact"] for s in got["sessions"]] == ["s2"] and got["sessions"][0]["seconds"] == 30.0
    assert got["outcomes"] == [{"flow": "demo", "outcome": "abandoned_queued", "n": 1},
                               {"flow": "demo", "outcome": "bridged", "n": 1}]
    with pytest.raises(RequestError) as err:
        await admin.request("ivr.sessions", {"limit": -1})
    assert err.value.details == {"field": "limit"}
    await admin.request("ivr.session", {**report, "contact": "s3"})   # (rows for the ctictl check below)
    row = await core.app.db.pool.fetchrow("SELECT * FROM cc.ivr_sessions WHERE contact = 's1'")  # type: ignore[union-attr]
    assert (row["contact"], row["stage"], row["outcome"], row["path"]) == (
        "s1", "queue", "abandoned_queued", "start>welcome>menu>queue")
    assert abs(row["ended"].timestamp() - now) < 0.01
    await admin.close()


async def test_the_demo_flows_are_stored_and_kept_up_to_date_unless_an_admin_changed_them(core: Core) -> None:
    from ctiserver.ivr_config import IvrConfig

    pool = core.app.db.pool  # type: ignore[union-attr]
    ivr = IvrConfig(pool)
    await ivr.demo()
    rows = await pool.fetch("SELECT name, updated_by FROM cc.ivr_flows ORDER BY name")
    assert [(r["name"], r["updated_by"]) for r in rows] == [("demo", "bootstrap"), ("demo-cs", "bootstrap")]
    assert await pool.fetchval("SELECT count(*) FROM cc.holidays") == 22
    # an older demo flow (stored by the bootstrap) is replaced by the file's
    timeout = "SELECT definition->'steps'->'menu'->>'timeout' FROM cc.ivr_flows WHERE name = 'demo'"
    await pool.execute("""UPDATE cc.ivr_flows SET definition = jsonb_set(definition, '{steps,menu,timeout}', '9')
                          WHERE name = 'demo'""")
    assert await pool.fetchval(timeout) == "9"
    await ivr.demo()
    assert await pool.fetchval(timeout) == "5.0"
    # one an admin changed is left alone
    admin = await core.connected()
    doc = (await admin.request("ivr.flow.get", {"name": "demo"}))["flow"]
    doc["steps"]["menu"]["timeout"] = 8
    await admin.request("ivr.flow.put", {"flow": doc})
    await ivr.demo()
    assert await pool.fetchval(timeout) == "8.0"
    await admin.close()
