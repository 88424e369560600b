"""Interoperability tests (operations): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import re
import time

from tests.integration.interop_support import (
    ADMIN,
    AGENT,
    client,
    expect_error,
    run,
)
from tests.interop_client import (
    encode_frame,
)

# ---- operations


async def test_status_echo_whoami(core):
    def scenario():
        with client(core, AGENT) as c:
            s = c.request("status")
            for key, typ in [
                ("node", str), ("environment", str), ("version", str), ("role", str), ("uptime", float),
                ("database", str), ("connections", int), ("sessions", int), ("epoch", str), ("topics", dict),
            ]:  # fmt: skip
                assert isinstance(s[key], typ), (key, s)
            assert s["role"] == "master" and s["database"] in ("ok", "down")
            assert s["epoch"] == c.epoch
            assert s["sessions"] >= 1 and s["connections"] >= 1
            payload = {"a": [1, 2.5, None, True], "nested": {"k": "ü"}, "big": 2**63, "neg": -(2**63), "b": b"\x00"}
            assert c.request("echo", payload) == payload
            assert c.request("echo", {}) == {}
            assert c.request("whoami") == c.login_answer["account"]
            err = expect_error("UNKNOWN_OPERATION", c.request, "no.such.op", {})
            assert err.details == {}
            err = expect_error("PERMISSION_DENIED", c.request, "sessions.list")
            assert err.message == "sessions.list: needs permission sessions.read"

    await run(scenario)


async def test_accounts_list_admin_vs_agent(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as agent:
            accounts = admin.request("accounts.list")["accounts"]
            names = [a["username"] for a in accounts]
            assert names == sorted(names) and {"admin", "agent1"} <= set(names)
            err = expect_error("PERMISSION_DENIED", agent.request, "accounts.list", {})
            assert err.message == "accounts.list: needs permission accounts.read"
            sessions = admin.request("sessions.list")["sessions"]
            mine = [s for s in sessions if s["conn"] == admin.hello_answer["conn"]]
            assert len(mine) == 1 and mine[0]["account"] == "admin" and isinstance(mine[0]["since"], float)
            assert {"conn", "account", "account_id", "kind", "peer", "since"} <= set(mine[0])

    await run(scenario)


async def test_accounts_add_then_login(core):
    def scenario():
        with client(core, ADMIN) as admin:
            view = admin.request(
                "accounts.add", {"username": "Bob.Interop", "password": "s3cret-pass", "kind": "agent", "scope": "*"}
            )
            assert view["username"] == "bob.interop"  # stored lower-cased (§7.5)
            assert view["kind"] == "agent" and view["scope"] == "*" and view["enabled"] is True
            assert view["display_name"] == "" and view["roles"] == [["agent", "*"]]
            assert isinstance(view["id"], int)
            add = admin.request
            err = expect_error("CONFLICT", add, "accounts.add", {"username": "bob.interop", "password": "x" * 9})
            assert err.details.get("field") == "username"
            err = expect_error("INVALID_ARGUMENT", add, "accounts.add", {"username": "carol", "password": "s"})
            assert err.details.get("field") == "password"
            err = expect_error("INVALID_ARGUMENT", admin.request, "accounts.add", {"password": "s3cret-pass"})
            assert err.details.get("field") == "username"
        with client(core) as bob:
            a = bob.login("bob.interop", "s3cret-pass")
            assert a["account"] == view
            err = expect_error("PERMISSION_DENIED", bob.request, "accounts.add", {"username": "x", "password": "y" * 9})
            assert err.message == "accounts.add: needs permission accounts.manage"

    await run(scenario)


async def test_workplaces_add_and_list(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as agent:
            w = admin.request("workplaces.add", {"name": "Desk 12", "extension": "2012", "location": "Floor 2"})
            assert w["name"] == "Desk 12" and w["extension"] == "2012" and w["location"] == "Floor 2"
            assert w["sip_uri"] == "" and isinstance(w["id"], int)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", w["created_at"]), w
            w2 = admin.request("workplaces.add", {"name": "A desk", "extension": "2013", "sip_uri": "sip:2013@x"})
            listed = admin.request("workplaces.list")["workplaces"]
            assert [x["name"] for x in listed] == ["A desk", "Desk 12"]  # sorted by name
            assert listed[1] == w and listed[0] == w2
            err = expect_error("CONFLICT", admin.request, "workplaces.add", {"name": "Other", "extension": "2012"})
            assert err.details.get("field") == "extension"
            err = expect_error("CONFLICT", admin.request, "workplaces.add", {"name": "Desk 12", "extension": "2099"})
            assert err.details.get("field") == "name"
            bad_ext = {"name": "X", "extension": "no spaces"}
            err = expect_error("INVALID_ARGUMENT", admin.request, "workplaces.add", bad_ext)
            assert err.details.get("field") == "extension"
            expect_error("PERMISSION_DENIED", agent.request, "workplaces.list")

    await run(scenario)


async def test_answers_matched_by_id_out_of_order(core):
    def scenario():
        with client(core, ADMIN) as c:
            # one write: an asynchronous request, then immediate ones (§3.3)
            ids = c.send_many([("accounts.list", {}), ("echo", {"n": 1}), ("workplaces.list", {}), ("echo", {"n": 2})])
            assert c.wait_answer(ids[3]) == {"n": 2}
            assert c.wait_answer(ids[1]) == {"n": 1}
            assert "accounts" in c.wait_answer(ids[0])
            assert "workplaces" in c.wait_answer(ids[2])
            order = [m[1] for m in c.received if m[0] == 2 and m[1] in ids]
            assert order.index(ids[1]) < order.index(ids[3])  # immediate ones in the order received
            assert order.index(ids[1]) < order.index(ids[0])  # answered immediately, before the async one

    await run(scenario)


async def test_duplicate_id_of_async_request(core):
    def scenario():
        with client(core, ADMIN) as c:
            rid = 77
            c.pending[rid] = ("accounts.list", {})
            c.send_raw(encode_frame([1, rid, "accounts.list", {}]) + encode_frame([1, rid, "echo", {}]))
            deadline = time.monotonic() + 2
            while len(c.answers.get(rid, ())) < 2 and time.monotonic() < deadline:
                c.poll(0.02)
            answers = list(c.answers[rid])
            assert len(answers) == 2, answers
            assert answers[0][:3] == [3, rid, 109]  # §3.3: answered DUPLICATE_ID with that id
            assert answers[0][3] == f"request id {rid} is still in flight" and answers[0][4] == {}
            assert answers[1][0] == 2 and "accounts" in answers[1][2]

    await run(scenario)
