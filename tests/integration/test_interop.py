"""Interoperability tests: an independent client (tests/interop_client.py), written from
docs/simprot.md alone, against the real server. Every assertion states what the document promises;
the section is named next to it."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import struct
import time
from pathlib import Path

import msgpack
import pytest

from tests.interop_client import (
    ERROR_CODES,
    ERROR_NAMES,
    ConnectionClosed,
    ConnectionEnded,
    FrameDecoder,
    SimProtClient,
    SimProtError,
    encode_frame,
    parse_address,
)

ADMIN = ("admin", "admin-pass-1")
AGENT = ("agent1", "agent-pass-1")
SPEC = Path(__file__).resolve().parents[2] / "docs" / "simprot.md"
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def client(core, user=None, **kw) -> SimProtClient:
    c = SimProtClient(core.address, timeout=3.0, **kw)
    c.connect()
    if user is not None:
        c.login(*user)
    return c


def expect_error(code_name: str, fn, *args, **kw) -> SimProtError:
    with pytest.raises(SimProtError) as info:
        fn(*args, **kw)
    err = info.value
    assert (err.code, err.name) == (ERROR_CODES[code_name], code_name), err
    return err


def expect_connection_end(c: SimProtClient, code_name: str, timeout: float = 2.0) -> ConnectionEnded:
    """§10: an id-0 ERROR, then the server closes (EOF)."""
    err = c.wait_closed(timeout)
    assert err is not None, "connection closed without an id-0 ERROR"
    assert err.request_id == 0 and err.connection_level
    assert (err.code, err.name) == (ERROR_CODES[code_name], code_name), err
    assert c.eof
    return err


def _frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def run(fn, *args):
    return asyncio.to_thread(fn, *args)


# ----------------------------------------------------------------------------------- offline: §14 bytes


def _worked_example_frames() -> list[tuple[str, object, bytes, int]]:
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("## 14. Worked example") : text.index("## 15.")]
    frames = []
    pattern = r"\*\*\d+\. (C→S|S→C)\*\*[^\n]*\n```\n(.*?)```"
    for direction, block in re.findall(pattern, section, re.S):
        lines = block.strip("\n").split("\n")
        value = json.loads(lines[0].removeprefix("value").strip())
        prefix = bytes.fromhex(lines[1].removeprefix("length").split("(")[0])
        declared = int(re.search(r"\(= (\d+)\)", lines[1]).group(1))
        body = bytes.fromhex("".join(line[8:] for line in lines[2:]))
        assert struct.unpack(">I", prefix)[0] == declared
        frames.append((direction, value, prefix + body, declared))
    return frames


def test_worked_example_bytes_match_msgpack():
    """§14: the captured bytes are what msgpack.packb gives for each value, and the prefix is N."""
    frames = _worked_example_frames()
    assert len(frames) == 13
    for _direction, value, frame, declared in frames:
        assert len(frame) - 4 == declared, value
        assert encode_frame(value) == frame, value


def test_frame_decoder_handles_any_segmentation():
    """§2.1: a reader buffers until 4 + N bytes are present and handles any number of frames per read."""
    frames = [f for f in _worked_example_frames() if f[0] == "S→C"]
    stream = b"".join(f[2] for f in frames)
    expected = [f[1] for f in frames]
    for chunk in (1, 2, 3, 5, 7, 64, len(stream)):
        dec = FrameDecoder()
        got = []
        for i in range(0, len(stream), chunk):
            got.extend(dec.feed(stream[i : i + chunk]))
        assert got == expected
        assert dec.buffered == 0


def test_error_names_cover_section_10():
    assert ERROR_NAMES[2] == "FRAME_TOO_LARGE" and ERROR_NAMES[109] == "DUPLICATE_ID"
    assert parse_address("127.0.0.1:7401") == ("127.0.0.1", 7401)
    assert parse_address("[2001:db8::1]:7400") == ("2001:db8::1", 7400)


# ----------------------------------------------------------------------------------- handshake


async def test_hello_answer_fields(core):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            # §2.1: the frame may arrive split across TCP segments (here one byte per write)
            c.send_raw(encode_frame([1, 1, "hello", {"versions": [1], "client": "interop/1"}]), chunk=1, pause=0.001)
            c.pending[1] = ("hello", {})
            a = c.wait_answer(1)
            assert a["version"] == 1
            assert isinstance(a["epoch"], str) and HEX16.match(a["epoch"])
            assert isinstance(a["conn"], str) and re.fullmatch(r"c\d+", a["conn"])
            assert isinstance(a["heartbeat_interval"], float) and isinstance(a["heartbeat_timeout"], float)
            assert a["heartbeat_interval"] < a["heartbeat_timeout"]
            assert isinstance(a["max_frame"], int) and 1024 <= a["max_frame"] <= 16777216
            assert a["preauth_max_frame"] == min(65536, a["max_frame"])
            assert isinstance(a["max_inflight"], int) and a["max_inflight"] >= 1
            assert isinstance(a["server"], str) and a["server"].startswith("ctiserver/")
            assert isinstance(a["node"], str)
            assert a["environment"] in {"demo", "production", "training", "test"}
            assert isinstance(a["auth"], list) and {"password", "token"} <= set(a["auth"])
            # §4.3: a second hello is INVALID_STATE and the connection stays open
            err = expect_error("INVALID_STATE", c.request, "hello", {"versions": [1]})
            assert err.message == "hello not allowed now" and err.details == {}
            expect_error("NOT_AUTHENTICATED", c.request, "echo", {})  # still open

    await run(scenario)


async def test_version_negotiation_picks_highest_common(core):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            assert c.connect(versions=[7, 1, 2])["version"] == 1

    await run(scenario)


async def test_unsupported_version(core):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            c.send_request("hello", {"versions": [2]})
            err = expect_connection_end(c, "UNSUPPORTED_VERSION")
            assert err.details.get("versions") == [1]

    await run(scenario)


@pytest.mark.parametrize("versions", [None, [], "1", [True], [1.0]])
async def test_bad_hello_versions_is_protocol_error(core, versions):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            c.send_request("hello", {} if versions is None else {"versions": versions})
            err = expect_connection_end(c, "PROTOCOL_ERROR")
            assert err.message == "hello: versions must be a non-empty list of integers"
            assert err.details == {"field": "versions"}

    await run(scenario)


@pytest.mark.parametrize(
    "first", [[1, 1, "login", {"user": "admin", "password": "x"}], [1, 1, "echo", {}], [5, 0], [6, 0], [2, 1, {}]]
)
async def test_anything_but_hello_first_is_protocol_error(core, first):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            c.send_message(first)
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


# ----------------------------------------------------------------------------------- login


async def test_login_success_fields(core):
    def scenario():
        with client(core) as c:
            a = c.login(*AGENT)
            acc = a["account"]
            assert set(acc) >= {"id", "username", "display_name", "kind", "scope", "enabled", "roles"}
            assert isinstance(acc["id"], int) and acc["username"] == "agent1" and acc["kind"] == "agent"
            assert acc["enabled"] is True
            assert all(isinstance(r, list) and len(r) == 2 for r in acc["roles"])
            assert acc["roles"] == sorted(acc["roles"])
            assert any(role == "agent" for role, _scope in acc["roles"])
            perms = a["permissions"]
            assert perms == sorted(perms) and all(len(p) == 2 for p in perms)
            held = {p for p, _ in perms}
            assert {"status.read", "events.watch"} <= held  # §5.7 table, role agent
            assert not held & {"accounts.read", "accounts.manage", "messages.send", "sessions.read"}
            assert isinstance(a["token"], str) and 1 <= len(a["token"]) <= 128
            assert c.token == a["token"]
            assert isinstance(a["token_ttl"], float)
            # §5.1: a login after a successful login is INVALID_STATE
            expect_error("INVALID_STATE", c.login, *AGENT)
            # §7.3: whoami is the account view as of login
            assert c.request("whoami") == acc

        # §5.1: the user name is compared case-insensitively
        with client(core) as c2:
            assert c2.login("AGENT1", AGENT[1])["account"]["username"] == "agent1"

    await run(scenario)


async def test_admin_permissions(core):
    def scenario():
        with client(core) as c:
            a = c.login(*ADMIN)
            held = {p for p, _ in a["permissions"]}
            expected = {"status.read", "events.watch", "accounts.read", "accounts.manage", "messages.send"}
            expected |= {"workplaces.read", "workplaces.manage", "sessions.read"}
            assert expected <= held
            assert a["account"]["username"] == "admin"

    await run(scenario)


async def test_wrong_password_and_unknown_user(core):
    def scenario():
        with client(core) as c:
            e1 = expect_error("LOGIN_FAILED", c.login, "agent1", "wrong-password")
            e2 = expect_error("LOGIN_FAILED", c.login, "nobody-here", "wrong-password")
            for e in (e1, e2):  # §5.3: identical answers
                assert e.message == "login failed" and e.details == {}
            # §5.3: a failed login returns to AWAIT_LOGIN; retry on the same connection
            assert c.login(*AGENT)["account"]["username"] == "agent1"

    await run(scenario)


async def test_login_invalid_arguments(core):
    def scenario():
        with client(core) as c:
            assert expect_error("INVALID_ARGUMENT", c.login, "", "x").details.get("field") == "user"
            assert expect_error("INVALID_ARGUMENT", c.login, "agent1", "").details.get("field") == "password"
            assert expect_error("INVALID_ARGUMENT", c.request, "login", {"token": 5}).details.get("field") == "token"
            err = expect_error("INVALID_ARGUMENT", c.request, "login", {"user": "a" * 65, "password": "x"})
            assert err.details.get("field") == "user"
            err = expect_error("INVALID_ARGUMENT", c.request, "login", {"user": "agent1", "password": "p" * 1025})
            assert err.details.get("field") == "password"
            expect_error("LOGIN_FAILED", c.login, token="not-a-token")
            assert c.login(*AGENT)["account"]["username"] == "agent1"

    await run(scenario)


async def test_request_before_login(core):
    def scenario():
        with client(core) as c:
            for op in ("status", "echo", "whoami", "accounts.list", "subscribe", "no.such.op"):
                err = expect_error("NOT_AUTHENTICATED", c.request, op, {})
                assert err.message == f"{op}: log in first"
                assert err.details == {}
            c.login(*AGENT)  # the connection stayed open
            assert c.request("echo", {"x": 1}) == {"x": 1}

    await run(scenario)


async def test_token_login_issues_new_token(core):
    def scenario():
        with client(core, AGENT) as c:
            first = c.token
        with client(core) as c2:
            a = c2.login(token=first)
            assert a["account"]["username"] == "agent1"
            assert a["token"] != first and c2.token == a["token"]
        with client(core) as c3:  # §5.2: earlier tokens stay valid
            assert c3.login(token=first)["account"]["username"] == "agent1"

    await run(scenario)


async def test_logout(core):
    def scenario():
        with client(core, AGENT) as c:
            rid = c.send_request("logout", {})
            assert c.wait_answer(rid) == {}
            assert c.wait_closed(2.0) is None  # then EOF, no error

    await run(scenario)


# ----------------------------------------------------------------------------------- operations


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


# ----------------------------------------------------------------------------------- subscriptions


async def test_subscribe_messages_and_events(core):
    def scenario():
        with client(core, AGENT) as agent, client(core, ADMIN) as admin:
            a = agent.subscribe("messages")
            assert a == {"topic": "messages", "epoch": agent.epoch, "seq": 0, "mode": "snapshot",
                         "snapshot": {"recent": []}}  # fmt: skip
            sub = agent.subs["messages"]
            for n in (1, 2, 3):
                r = admin.request("messages.send", {"text": f"hello {n}"})
                assert r == {"seq": n}
            for n in (1, 2, 3):
                e = agent.next_event("messages", timeout=2)
                assert (e.topic, e.seq, e.name) == ("messages", n, "message")
                assert e.data["from"] == "admin" and e.data["to"] == "all" and e.data["text"] == f"hello {n}"
                assert isinstance(e.data["at"], float)
            assert sub.last == 3 and sub.gaps == [] and sub.duplicates == 0
            # the sender receives its own message too when subscribed (§7.10)
            admin.subscribe("messages")
            assert admin.subs["messages"].state["recent"][-1]["text"] == "hello 3"
            assert admin.subs["messages"].last == 3
            r = admin.request("messages.send", {"text": "to me as well", "to": ["agent1"]})
            assert r == {"seq": 4}
            assert [e.seq for e in admin.subs["messages"].events] == [4]
            assert agent.next_event("messages", timeout=2).seq == 4
            # agent may not send, nor subscribe to sessions/admin
            expect_error("PERMISSION_DENIED", agent.request, "messages.send", {"text": "x"})
            err = expect_error("PERMISSION_DENIED", agent.subscribe, "sessions")
            assert err.message == "topic sessions: needs permission sessions.read"
            assert expect_error("NOT_FOUND", agent.subscribe, "no-such-topic").details.get("field") == "topic"
            bad = {"epoch": 1, "seq": 1}
            assert expect_error("INVALID_ARGUMENT", agent.subscribe, "messages", bad).details.get("field") == "resume"
            err = expect_error("INVALID_ARGUMENT", agent.request, "subscribe", {"topic": 5})
            assert err.details.get("field") == "topic"
            err = expect_error("INVALID_ARGUMENT", admin.request, "messages.send", {"text": "x", "to": None})
            assert err.details.get("field") == "to"

    await run(scenario)


async def test_messages_to_named_users_leave_gaps(core):
    def scenario():
        with client(core, ADMIN) as admin:
            admin.request("accounts.add", {"username": "agent2", "password": "agent-pass-2"})
            with client(core, AGENT) as a1, client(core, ("agent2", "agent-pass-2")) as a2:
                a1.subscribe("messages")
                a2.subscribe("messages")
                assert admin.request("messages.send", {"text": "private", "to": ["Agent1"]}) == {"seq": 1}
                assert admin.request("messages.send", {"text": "public"}) == {"seq": 2}
                e = a1.next_event("messages", timeout=2)
                assert e.seq == 1 and e.data["to"] == ["Agent1"]  # as sent, not lower-cased
                assert a1.next_event("messages", timeout=2).seq == 2
                e2 = a2.next_event("messages", timeout=2)
                assert e2.seq == 2 and e2.data["text"] == "public"
                assert a2.subs["messages"].gaps == [(0, 2)]
                # the snapshot of a new subscriber shows only what it may see
                with client(core, ("agent2", "agent-pass-2")) as a2b:
                    snap = a2b.subscribe("messages")
                    assert [m["text"] for m in snap["snapshot"]["recent"]] == ["public"]
                    assert snap["seq"] == 2

    await run(scenario)


async def test_resume_replays_exactly_the_missed_events(core):
    def scenario():
        with client(core, ADMIN) as admin:
            agent = client(core, AGENT)
            try:
                agent.subscribe("messages")
                admin.request("messages.send", {"text": "m1"})
                assert agent.next_event("messages", timeout=2).seq == 1
                epoch, token = agent.subs["messages"].epoch, agent.token
                agent.close()  # the connection drops
                for n in (2, 3, 4):
                    assert admin.request("messages.send", {"text": f"m{n}"}) == {"seq": n}
                results = agent.reconnect()  # new connection, token login, subscribe with resume
                assert agent.connections == 2
                assert agent.login_answer["token"] != token
                answer = results["messages"]
                assert answer["mode"] == "replay" and answer["epoch"] == epoch and answer["seq"] == 4
                assert "snapshot" not in answer
                # the replayed events come right after the answer, before any later frame (§8.3)
                assert agent.request("echo", {"barrier": True}) == {"barrier": True}
                got = [(e.seq, e.data["text"]) for e in list(agent.event_queue)]
                assert got == [(2, "m2"), (3, "m3"), (4, "m4")]
                assert agent.subs["messages"].last == 4 and agent.subs["messages"].duplicates == 0
                # live continues without gap
                admin.request("messages.send", {"text": "m5"})
                agent.event_queue.clear()
                assert agent.next_event("messages", timeout=2).seq == 5
                # resume at the latest seq → live, nothing replayed
                agent.close()
                results = agent.reconnect()
                assert results["messages"]["mode"] == "live" and results["messages"]["seq"] == 5
                agent.request("echo", {})
                assert agent.subs["messages"].last == 5 and list(agent.event_queue) == []
            finally:
                agent.close()

    await run(scenario)


async def test_resume_unknown_epoch_or_future_gives_snapshot(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as agent:
            admin.request("messages.send", {"text": "m1"})
            admin.request("messages.send", {"text": "m2"})
            other_epoch = "0000000000000000" if agent.epoch != "0000000000000000" else "ffffffffffffffff"
            for resume in ({"epoch": other_epoch, "seq": 1}, {"epoch": agent.epoch, "seq": 99}):
                a = agent.subscribe("messages", resume)
                assert a["mode"] == "snapshot" and a["seq"] == 2 and a["epoch"] == agent.epoch
                assert [m["text"] for m in a["snapshot"]["recent"]] == ["m1", "m2"]
                assert agent.subs["messages"].last == 2 and agent.subs["messages"].state == a["snapshot"]
            agent.request("echo", {})
            assert list(agent.event_queue) == []  # resubscribing does not replay or double anything
            admin.request("messages.send", {"text": "m3"})
            assert agent.next_event("messages", timeout=2).seq == 3
            agent.poll(0.05)
            assert list(agent.event_queue) == []  # events are not doubled (§8.3)
            assert agent.request("unsubscribe", {"topic": "messages"}) == {}
            err = expect_error("NOT_FOUND", agent.request, "unsubscribe", {"topic": "messages"})
            assert err.details.get("field") == "topic"

    await run(scenario)


async def test_resume_older_than_buffer_gives_snapshot(core_factory):
    core = await core_factory(event_buffer=5)

    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as agent:
            for n in range(1, 9):
                admin.request("messages.send", {"text": f"m{n}"})
            # S = 8, B = 5: seq 2 < S − B = 3 → snapshot; seq 3 → replay of 4..8 (§8.3)
            a = agent.subscribe("messages", {"epoch": agent.epoch, "seq": 2})
            assert a["mode"] == "snapshot" and a["seq"] == 8
            agent.request("unsubscribe", {"topic": "messages"})
            agent.subs["messages"].last = 3
            a = agent.subscribe("messages", resume=True)
            assert a["mode"] == "replay" and a["seq"] == 8
            agent.request("echo", {})
            assert [e.seq for e in agent.event_queue] == [4, 5, 6, 7, 8]

    await run(scenario)


async def test_admin_topic_events(core):
    def scenario():
        with client(core, ADMIN) as admin:
            a = admin.subscribe("admin")
            assert a["mode"] == "snapshot" and a["snapshot"] == {} and a["seq"] == 0
            admin.request("workplaces.add", {"name": "D1", "extension": "100"})
            e = admin.next_event("admin", timeout=2)
            assert (e.seq, e.name) == (1, "workplace.created") and e.data["by"] == "admin" and e.data["name"] == "D1"
            s = admin.subscribe("sessions")
            assert admin.hello_answer["conn"] in [x["conn"] for x in s["snapshot"]["sessions"]]
            with client(core, AGENT) as agent:
                e = admin.next_event("sessions", timeout=2)
                assert e.name == "session.opened" and e.data["conn"] == agent.hello_answer["conn"]
                agent.logout()
            e = admin.next_event("sessions", timeout=2)
            assert e.name == "session.closed" and e.data["reason"] == "logout"

    await run(scenario)


async def test_disable_account_revokes_session(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as agent:
            assert admin.request("accounts.enable", {"username": "agent1", "enabled": False}) == {
                "username": "agent1",
                "enabled": False,
            }
            err = expect_connection_end(agent, "SESSION_REVOKED")
            assert err.message == "account disabled" and err.details == {}
            bad = {"username": "agent1", "enabled": 1}
            err = expect_error("INVALID_ARGUMENT", admin.request, "accounts.enable", bad)
            assert err.details.get("field") == "enabled"
            with client(core) as again:  # tokens revoked, logins fail
                expect_error("LOGIN_FAILED", again.login, token=agent.token)

    await run(scenario)


# ----------------------------------------------------------------------------------- heartbeats


async def test_ping_pong(core):
    def scenario():
        with client(core, AGENT) as c:
            c.ping(7)
            assert c.pongs_received == [7]
            c.ping(2**32 - 1)
            assert c.pongs_received[-1] == 2**32 - 1
        with client(core) as c:  # PING before login is answered too (§9)
            c.ping(0)
            assert c.pongs_received == [0]

    await run(scenario)


async def test_server_pings_and_client_answers(core_factory):
    core = await core_factory(heartbeat_interval=0.3, heartbeat_timeout=1.0)

    def scenario():
        with client(core, AGENT, auto_ping=False) as c:
            assert c.hello_answer["heartbeat_interval"] == 0.3 and c.hello_answer["heartbeat_timeout"] == 1.0
            deadline = time.monotonic() + 1.5
            while not c.pings_received and time.monotonic() < deadline:
                c.poll(0.05)
            assert c.pings_received and set(c.pings_received) == {0}  # server pings carry token 0
            c.poll(0.3)
            assert c.request("echo", {"alive": 1}) == {"alive": 1}

    await run(scenario)


async def test_idle_client_keeps_connection_with_own_pings(core_factory):
    core = await core_factory(heartbeat_interval=0.2, heartbeat_timeout=0.6)

    def scenario():
        with client(core, AGENT, auto_pong=False) as c:
            c.poll(1.3)  # > 2 × heartbeat_timeout; we never answer the server's PINGs
            assert c.pings_sent, "client sent no PING while idle"
            assert c.request("echo", {}) == {}

    await run(scenario)


async def test_heartbeat_timeout(core_factory):
    core = await core_factory(heartbeat_interval=0.2, heartbeat_timeout=0.6)

    def scenario():
        with client(core, AGENT, auto_ping=False, auto_pong=False, check_timeout=False) as c:
            t0 = time.monotonic()
            expect_connection_end(c, "HEARTBEAT_TIMEOUT", timeout=1.8)
            assert time.monotonic() - t0 >= 0.5

    await run(scenario)


# ----------------------------------------------------------------------------------- malformed frames


async def test_zero_length_frame(core):
    def scenario():
        with client(core) as c:
            c.send_raw(b"\x00\x00\x00\x00")
            err = expect_connection_end(c, "FRAME_TOO_LARGE")
            assert err.details.get("max_frame") == 65536  # the limit in force before login

    await run(scenario)


async def test_frame_limits(core):
    def scenario():
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            # N = 65 536 is legal before login (the limit is inclusive): a padded hello
            base = len(msgpack.packb([1, 1, "hello", {"versions": [1], "client": ""}]))
            body = msgpack.packb([1, 1, "hello", {"versions": [1], "client": "x" * (65536 - base - 2)}])
            assert len(body) == 65536  # str 16: 3-byte header instead of the fixstr's 1
            c.pending[1] = ("hello", {})
            c.send_raw(struct.pack(">I", len(body)) + body)
            c.hello_answer = c.wait_answer(1)
            max_frame = c.hello_answer["max_frame"]
            c.login(*AGENT)
            # after login: max_frame is in force; a prefix above it is refused on the prefix alone
            c.send_raw(struct.pack(">I", max_frame + 1))
            err = expect_connection_end(c, "FRAME_TOO_LARGE")
            assert err.details.get("max_frame") == max_frame
        with client(core) as c:
            c.send_raw(struct.pack(">I", 65537))
            assert expect_connection_end(c, "FRAME_TOO_LARGE").details.get("max_frame") == 65536

    await run(scenario)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_frame(msgpack.packb([1, 2, "echo", {}]) + b"\xc0"), id="trailing-bytes"),
        pytest.param(_frame(msgpack.packb([1, 2, "echo", {}])[:-1]), id="truncated-body"),
        pytest.param(struct.pack(">I", 2) + b"\x91\x01", id="short-array"),
        pytest.param(encode_frame({"kind": 1}), id="not-an-array"),
        pytest.param(encode_frame([]), id="empty-array"),
        pytest.param(encode_frame([4, "messages", 1, "x", {}]), id="kind-4"),
        pytest.param(encode_frame([9, 1]), id="unknown-kind"),
        pytest.param(encode_frame([1, 0, "echo", {}]), id="id-0"),
        pytest.param(encode_frame([1, 2**32, "echo", {}]), id="id-too-big"),
        pytest.param(encode_frame([1, 2, "", {}]), id="empty-op"),
        pytest.param(encode_frame([1, 2, "e" * 65, {}]), id="long-op"),
        pytest.param(encode_frame([1, 2, "echo", None]), id="args-nil"),
        pytest.param(encode_frame([1, 2, b"echo", {}]), id="bin-op"),
        pytest.param(encode_frame([1, 2, "echo", {1: "x"}]), id="int-key"),
        pytest.param(encode_frame([1, 2, "echo", {"x": msgpack.ExtType(1, b"a")}]), id="ext"),
        pytest.param(encode_frame([1, 2, "echo", {"x": 1}])[:-2] + b"\xa1\xff", id="invalid-utf8"),
        pytest.param(encode_frame([1, 2, "echo", {"d": _nested(32)}]), id="depth-33"),
        pytest.param(encode_frame([1.0, 2, "echo", {}]), id="float-kind"),
        pytest.param(encode_frame([True, 2, "echo", {}]), id="bool-kind"),
        pytest.param(encode_frame([1, 2, "echo", {}, 5]), id="5-element-request"),
        pytest.param(encode_frame([5, -1]), id="ping-negative-token"),
        pytest.param(encode_frame([5, 0, 0]), id="ping-3-elements"),
    ],
)
async def test_malformed_frames_after_login(core, raw):
    def scenario():
        with client(core, AGENT) as c:
            c.send_raw(raw)
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_nesting_depth_32_is_legal(core):
    def scenario():
        with client(core, AGENT) as c:
            value = _nested(31)  # args map = level 1, plus 31 nested arrays = level 32
            assert c.request("echo", {"d": value}) == {"d": value}

    await run(scenario)


async def test_answers_before_connection_error_are_delivered(core):
    """§6: 'all answers already produced are written, then the connection-level ERROR'."""

    def scenario():
        with client(core, AGENT) as c:
            c.pending[5] = ("echo", {})
            c.send_raw(encode_frame([1, 5, "echo", {"first": 1}]) + encode_frame([2, 5, {}]))
            err = c.wait_closed(2.0)
            assert err is not None and err.name == "PROTOCOL_ERROR"
            assert [m for m in c.received if m[0] == 2 and m[1] == 5] == [[2, 5, {"first": 1}]]

    await run(scenario)


async def test_raw_socket_hello_bytes_from_worked_example(core):
    """§14 frame 1, sent byte for byte, gets a hello answer of the documented shape."""

    def scenario():
        frame = _worked_example_frames()[0][2]
        host, port = parse_address(core.address)
        with socket.create_connection((host, port), timeout=3) as s:
            s.sendall(frame)
            dec, msgs = FrameDecoder(), []
            deadline = time.monotonic() + 2
            while not msgs and time.monotonic() < deadline:
                msgs = dec.feed(s.recv(4096))
            assert msgs[0][:2] == [2, 1] and msgs[0][2]["version"] == 1
            assert set(msgs[0][2]) >= set(_worked_example_frames()[1][1][2])

    await run(scenario)


def test_client_refuses_bad_server_frames():
    dec = FrameDecoder()
    with pytest.raises(ConnectionClosed):
        dec.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ConnectionClosed):
        FrameDecoder().feed(encode_frame([1, 1, "x", {}]))  # kind 1 is client-only
    assert FrameDecoder().feed(struct.pack(">I", 3) + b"\x92\x06\x07") == [[6, 7]]
    with pytest.raises(ConnectionClosed):
        FrameDecoder().feed(struct.pack(">I", 4) + b"\x92\x06\x07\x00")  # trailing byte


# ----------------------------------------------------------------------------------- more of the spec


async def test_server_ping_timing_bound(core_factory):
    """§9: the server checks every min(1 s, interval/2), so its first PING comes at most that late."""
    core = await core_factory(heartbeat_interval=0.3, heartbeat_timeout=1.5)

    def scenario():
        with client(core, AGENT, auto_ping=False) as c:
            t0 = time.monotonic()
            while not c.pings_received and time.monotonic() - t0 < 1.5:
                c.poll(0.01)
            elapsed = time.monotonic() - t0
            assert c.pings_received
            assert elapsed <= 0.3 + min(1.0, 0.3 / 2) + 0.1, f"first server PING after {elapsed:.2f} s"

    await run(scenario)


async def test_handshake_timeout(core_factory):
    """§5.5: hello and login within handshake_timeout, checked every min(1 s, heartbeat_interval / 2)."""
    core = await core_factory(handshake_timeout=0.5, heartbeat_interval=0.2, heartbeat_timeout=1.0)

    def scenario():
        with SimProtClient(core.address, timeout=3.0) as a, SimProtClient(core.address, timeout=3.0) as b:
            t0 = time.monotonic()
            a.connect()  # hello, but no login
            b.open()  # nothing at all: the only thing the server may send before hello (§1)
            err = expect_connection_end(a, "HANDSHAKE_TIMEOUT", timeout=1.9)
            elapsed = time.monotonic() - t0
            assert err.details == {} and elapsed >= 0.45
            expect_connection_end(b, "HANDSHAKE_TIMEOUT", timeout=1.9)
            assert elapsed <= 0.5 + min(1.0, 0.2 / 2) + 0.1, f"HANDSHAKE_TIMEOUT after {elapsed:.2f} s"

    await run(scenario)


async def test_server_ping_timing_bound_after_first_second(core_factory):
    """Same as test_server_ping_timing_bound, but connecting once the server has run for > 1 s."""
    core = await core_factory(heartbeat_interval=0.3, heartbeat_timeout=1.5)

    def scenario():
        time.sleep(1.1)
        with client(core, AGENT, auto_ping=False) as c:
            t0 = time.monotonic()
            while not c.pings_received and time.monotonic() - t0 < 0.8:
                c.poll(0.01)
            elapsed = time.monotonic() - t0
            assert c.pings_received and elapsed <= 0.3 + 0.15 + 0.1, elapsed

    await run(scenario)


async def test_too_many_connections(core_factory):
    core = await core_factory(max_connections=1)

    def scenario():
        with client(core, AGENT) as first, SimProtClient(core.address, timeout=3.0) as second:
            second.open()  # §10: sent right after accept, before hello
            expect_connection_end(second, "TOO_MANY_CONNECTIONS")
            assert first.request("echo", {}) == {}

    await run(scenario)


async def test_rate_limited_login(core_factory):
    core = await core_factory(login_max_failures=2, login_lockout=30)

    def scenario():
        with client(core) as c:
            expect_error("LOGIN_FAILED", c.login, "agent1", "wrong-1")
            expect_error("LOGIN_FAILED", c.login, "agent1", "wrong-2")
            err = expect_error("RATE_LIMITED", c.login, *AGENT)  # locked: the right password does not help
            ra = err.details.get("retry_after")
            assert isinstance(ra, float) and 0 < ra <= 30.0 and round(ra, 1) == ra
            # the address key locks every account from this address (§5.4)
            assert expect_error("RATE_LIMITED", c.login, *ADMIN).details["retry_after"] > 0

    await run(scenario)


async def test_invalid_login_arguments_do_not_count(core_factory):
    core = await core_factory(login_max_failures=2)

    def scenario():
        with client(core) as c:
            for _ in range(4):
                expect_error("INVALID_ARGUMENT", c.login, "agent1", "")
            assert c.login(*AGENT)["account"]["username"] == "agent1"

    await run(scenario)


async def test_login_state_rules(core):
    def scenario():
        with client(core) as c:
            # pipelined: login, login, echo in one write (§5.1, §3.3)
            ids = c.send_many([("login", {"user": "agent1", "password": AGENT[1]}), ("login", {"token": "x"}),
                               ("echo", {}), ("hello", {"versions": [1]})])  # fmt: skip
            c.pending[ids[0]] = ("login", {})
            assert expect_error("INVALID_STATE", c.wait_answer, ids[1]).details == {}
            assert expect_error("NOT_AUTHENTICATED", c.wait_answer, ids[2]).message == "echo: log in first"
            assert expect_error("INVALID_STATE", c.wait_answer, ids[3]).message == "hello not allowed now"
            assert c.wait_answer(ids[0])["account"]["username"] == "agent1"
            assert c.logged_in
            assert expect_error("INVALID_STATE", c.request, "hello", {"versions": [1]}).code == 108

    await run(scenario)


async def test_logout_before_login_and_before_hello(core):
    def scenario():
        with client(core) as c:
            assert c.request("logout", {"ignored": 1}) == {}
            assert c.wait_closed(2.0) is None
        with SimProtClient(core.address, timeout=3.0) as c:
            c.open()
            c.send_request("logout", {})
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_requests_after_logout_are_not_processed(core):
    def scenario():
        with client(core, ADMIN) as admin:
            ids = admin.send_many([("logout", {}), ("messages.send", {"text": "after logout"})])
            assert admin.wait_answer(ids[0]) == {}
            assert admin.wait_closed(2.0) is None
            assert ids[1] not in admin.answers
        with client(core, AGENT) as agent:
            snap = agent.subscribe("messages")
            assert snap["seq"] == 0 and snap["snapshot"]["recent"] == []

    await run(scenario)


async def test_token_argument_rules(core):
    def scenario():
        with client(core) as c:
            expect_error("LOGIN_FAILED", c.login, token="")  # 0 … 128 characters
            assert expect_error("INVALID_ARGUMENT", c.login, token="t" * 129).details.get("field") == "token"
            # token nil → a password login (§5.1)
            a = c.request("login", {"token": None, "user": "agent1", "password": AGENT[1]})
            assert a["account"]["username"] == "agent1"

    await run(scenario)


async def test_string_argument_rule_messages(core):
    def scenario():
        with client(core, ADMIN) as c:
            err = expect_error("INVALID_ARGUMENT", c.request, "messages.send", {"text": ""})
            assert err.message == "text: a string of 1..2000 characters" and err.details == {"field": "text"}
            err = expect_error("INVALID_ARGUMENT", c.request, "messages.send", {"text": "x" * 2001})
            assert err.details == {"field": "text"}
            assert c.request("messages.send", {"text": "x" * 2000}) == {"seq": 1}
            err = expect_error("INVALID_ARGUMENT", c.request, "messages.send", {"text": b"bin text"})
            assert err.details == {"field": "text"}  # §2.2 rule 2: bin never matches str
            for to in ([], "everyone", [1], ["x"] * 1001):
                err = expect_error("INVALID_ARGUMENT", c.request, "messages.send", {"text": "t", "to": to})
                assert err.details == {"field": "to"}
                assert err.message == 'to: "all" or a list of user names'

    await run(scenario)


async def test_msgpack_encoding_rules(core):
    def scenario():
        with client(core, AGENT) as c:
            # §2.2 rule 7: non-minimal integer encodings are accepted (id as uint 64)
            body = b"\x94\x01\xcf" + (99).to_bytes(8, "big") + b"\xa4echo\x81\xa1k\xa1v"
            c.pending[99] = ("echo", {})
            c.send_raw(_frame(body))
            assert c.wait_answer(99) == {"k": "v"}
            # duplicate keys: the last one wins (rule 3)
            c.pending[100] = ("echo", {})
            c.send_raw(_frame(b"\x94\x01\x64\xa4echo\x82\xa1k\x01\xa1k\x02"))
            assert c.wait_answer(100) == {"k": 2}
            # float 32 is accepted in args (§2.2 table)
            c.pending[101] = ("echo", {})
            c.send_raw(_frame(b"\x94\x01\x65\xa4echo\x81\xa1f\xca" + struct.pack(">f", 1.5)))
            assert c.wait_answer(101) == {"f": 1.5}
        with client(core, AGENT) as c:
            c.send_message([1, True, "echo", {}])  # a bool is not an integer id
            expect_connection_end(c, "PROTOCOL_ERROR")
        with client(core, AGENT) as c:
            c.send_message([5, 1.0])  # PING token must be an int
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_max_frame_after_login_is_inclusive(core_factory):
    core = await core_factory(max_frame=2048)

    def scenario():
        with client(core, AGENT) as c:
            assert c.hello_answer["max_frame"] == 2048 and c.hello_answer["preauth_max_frame"] == 2048
            base = len(msgpack.packb([1, 5, "echo", {"p": ""}]))
            payload = {"p": "x" * (2048 - base - 2)}
            assert len(msgpack.packb([1, 5, "echo", payload])) == 2048
            assert c.request("echo", payload) == payload
            c.send_message([1, 6, "echo", {"p": "x" * 2048}], check_limit=False)
            assert expect_connection_end(c, "FRAME_TOO_LARGE").details == {"max_frame": 2048}

    await run(scenario)


async def test_account_management_ops(core):
    def scenario():
        with client(core, ADMIN) as admin:
            admin.subscribe("admin")
            v = admin.request("accounts.add", {"username": "sup9", "password": "sup-pass-9", "display_name": "Sup"})
            e = admin.next_event("admin", timeout=2)
            assert e.name == "account.created" and e.data["by"] == "admin"
            assert {k: e.data[k] for k in v} == v  # account view + "by"
            g = admin.request("accounts.grant", {"username": "sup9", "role": "supervisor"})
            assert g["roles"] == [["agent", "*"], ["supervisor", "*"]]
            assert admin.request("accounts.grant", {"username": "sup9", "role": "supervisor"}) == g  # idempotent
            e = admin.next_event("admin", timeout=2)
            assert e.name == "account.granted"
            assert {k: e.data[k] for k in ("username", "role", "scope", "by")} == {
                "username": "sup9", "role": "supervisor", "scope": "*", "by": "admin"}  # fmt: skip
            r = admin.request("accounts.revoke", {"username": "sup9", "role": "agent", "scope": "*"})
            assert r["roles"] == [["supervisor", "*"]]
            assert admin.request("accounts.revoke", {"username": "sup9", "role": "nope"})["roles"] == r["roles"]
            bad_role = {"username": "sup9", "role": "nope"}
            err = expect_error("INVALID_ARGUMENT", admin.request, "accounts.grant", bad_role)
            assert err.details.get("field") == "role"
            err = expect_error("NOT_FOUND", admin.request, "accounts.grant", {"username": "ghost", "role": "agent"})
            assert err.details.get("field") == "username"
            with client(core, ("sup9", "sup-pass-9")) as sup:
                perms = {p for p, _ in sup.login_answer["permissions"]}
                assert "sessions.read" in perms and "accounts.manage" not in perms
                assert sup.request("sessions.list")["sessions"]
                # own password: wrong old_password
                err = expect_error("PERMISSION_DENIED", sup.request, "accounts.password",
                                   {"password": "new-pass-99", "old_password": "wrong"})  # fmt: skip
                assert err.details == {"field": "old_password"}
                assert sup.request("accounts.password", {"password": "new-pass-99", "old_password": "sup-pass-9"}) == {}
                assert sup.request("echo", {}) == {}  # the session continues
                with client(core) as again:  # but its token no longer works
                    expect_error("LOGIN_FAILED", again.login, token=sup.token)
                    assert again.login("sup9", "new-pass-99")["account"]["username"] == "sup9"
            # roles: [] → can log in, holds no permission
            admin.request("accounts.add", {"username": "nobody", "password": "nobody-pass", "roles": []})
            with client(core, ("nobody", "nobody-pass")) as nobody:
                assert nobody.login_answer["permissions"] == [] and nobody.login_answer["account"]["roles"] == []
                expect_error("PERMISSION_DENIED", nobody.request, "status")

    await run(scenario)


async def test_unsubscribe_rules(core):
    def scenario():
        with client(core, AGENT) as c:
            err = expect_error("NOT_FOUND", c.request, "unsubscribe", {"topic": 5})  # §8.4: not INVALID_ARGUMENT
            assert err.details.get("field") == "topic"
            c.subscribe("system")
            assert c.request("unsubscribe", {"topic": "system"}) == {}

    await run(scenario)


async def test_system_topic_snapshot(core):
    def scenario():
        with client(core, AGENT) as c:
            a = c.subscribe("system")
            assert a["mode"] == "snapshot" and a["epoch"] == c.epoch
            status = a["snapshot"]
            assert status["epoch"] == c.epoch and status["role"] == "master"
            # node.started is published once at start, so the topic has seq ≥ 1 and shows in `topics`
            assert a["seq"] >= 1 and status["topics"].get("system") == a["seq"]

    await run(scenario)


async def test_status_topics_counts(core):
    def scenario():
        with client(core, ADMIN) as admin:
            admin.request("messages.send", {"text": "one"})
            admin.request("messages.send", {"text": "two"})
            s = admin.request("status")
            assert s["topics"].get("messages") == 2
            with SimProtClient(core.address) as pre:
                pre.connect()  # connected, not logged in
                s2 = admin.request("status")
                assert s2["connections"] == s["connections"] + 1 and s2["sessions"] == s["sessions"]

    await run(scenario)


async def test_session_closed_reason_peer_closed(core):
    def scenario():
        with client(core, ADMIN) as admin:
            admin.subscribe("sessions")
            agent = client(core, AGENT)
            opened = admin.next_event("sessions", timeout=2)
            assert opened.name == "session.opened" and opened.data["account"] == "agent1"
            assert re.fullmatch(r"[\d.]+:\d+", opened.data["peer"]) and isinstance(opened.data["since"], float)
            agent.close()
            closed = admin.next_event("sessions", timeout=2)
            assert closed.name == "session.closed" and closed.data["conn"] == opened.data["conn"]
            assert closed.data["reason"] == "peer closed" and closed.data["account"] == "agent1"

    await run(scenario)


async def test_replayed_events_identical_to_originals(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as live:
            live.subscribe("messages")
            late = client(core, AGENT)
            try:
                late.subscribe("messages")
                late.close()
                admin.request("messages.send", {"text": "a"})
                admin.request("messages.send", {"text": "b", "to": ["agent1"]})
                originals = [live.next_event("messages", timeout=2) for _ in range(2)]
                late.reconnect()
                late.request("echo", {})
                assert list(late.event_queue) == originals
                frames = [[4, e.topic, e.seq, e.name, e.data] for e in originals]
                assert [m for m in late.received if m[0] == 4] == frames
            finally:
                late.close()

    await run(scenario)


async def test_self_disable_ends_own_session(core):
    def scenario():
        with client(core, ADMIN) as admin:
            admin.request("accounts.add", {"username": "boss2", "password": "boss-pass-2", "kind": "admin"})
            with client(core, ("boss2", "boss-pass-2")) as boss:
                rid = boss.send_request("accounts.enable", {"username": "boss2", "enabled": False})
                err = expect_connection_end(boss, "SESSION_REVOKED")
                assert err.message == "account disabled"
                assert rid not in boss.answers  # its answer is not delivered (§7.8)
            assert admin.request("accounts.enable", {"username": "boss2", "enabled": True}) == {
                "username": "boss2", "enabled": True}  # fmt: skip
            with client(core, ("boss2", "boss-pass-2")) as boss:
                assert boss.login_answer["account"]["enabled"] is True

    await run(scenario)


async def test_duplicate_id_rules(core):
    def scenario():
        with client(core, ADMIN) as c:
            # subscribe and unknown names are checked too; the original is still answered
            c.pending[500] = ("accounts.list", {})
            c.send_raw(encode_frame([1, 500, "accounts.list", {}]) + encode_frame([1, 500, "subscribe", {"topic": "x"}])
                       + encode_frame([1, 500, "no.such", {}]))  # fmt: skip
            deadline = time.monotonic() + 2
            while len(c.answers.get(500, ())) < 3 and time.monotonic() < deadline:
                c.poll(0.02)
            codes = [m[2] if m[0] == 3 else "ok" for m in c.answers[500]]
            assert codes == [109, 109, "ok"], list(c.answers[500])
            # reusing the id of an immediate (already answered) request is not detected
            c.pending[501] = ("echo", {})
            c.send_raw(encode_frame([1, 501, "echo", {"n": 1}]) + encode_frame([1, 501, "echo", {"n": 2}]))
            deadline = time.monotonic() + 2
            while len(c.answers.get(501, ())) < 2 and time.monotonic() < deadline:
                c.poll(0.02)
            assert [m[2] for m in c.answers[501]] == [{"n": 1}, {"n": 2}]

    await run(scenario)


async def test_hello_versions_mixed_elements(core):
    def scenario():
        for versions in ([1, "2"], [1, True], [1, None]):
            with SimProtClient(core.address, timeout=3.0) as c:
                c.open()
                c.send_request("hello", {"versions": versions})
                assert expect_connection_end(c, "PROTOCOL_ERROR").details == {"field": "versions"}

    await run(scenario)


async def test_numbers_announced_as_floats(core_factory):
    """§4.2 / §5.2: heartbeat_* and token_ttl are floats even when configured as integers."""
    core = await core_factory(heartbeat_interval=2, heartbeat_timeout=6, token_ttl=3600)

    def scenario():
        with client(core, AGENT) as c:
            got = {k: c.hello_answer[k] for k in ("heartbeat_interval", "heartbeat_timeout")}
            got["token_ttl"] = c.login_answer["token_ttl"]
            assert got == {"heartbeat_interval": 2.0, "heartbeat_timeout": 6.0, "token_ttl": 3600.0}
            assert all(isinstance(v, float) for v in got.values()), got

    await run(scenario)


async def test_lengths_count_code_points(core):
    """Preamble: lengths are in Unicode code points, not bytes."""

    def scenario():
        with client(core, ADMIN) as c:
            err = expect_error("UNKNOWN_OPERATION", c.request, "é" * 64, {})  # 64 characters, 128 bytes
            assert err.details == {}
            assert c.request("messages.send", {"text": "é" * 2000}) == {"seq": 1}
            v = c.request("accounts.add", {"username": "uni", "password": "pässwörd", "display_name": "ü" * 128})
            assert v["display_name"] == "ü" * 128
        with client(core, AGENT) as c:
            c.send_message([1, 9, "é" * 65, {}])
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_password_nfc_normalisation(core):
    """§7.5: passwords are compared after Unicode NFC normalisation."""

    def scenario():
        nfc, nfd = "caf\u00e9-pass-1", "cafe\u0301-pass-1"
        with client(core, ADMIN) as admin:
            admin.request("accounts.add", {"username": "nfc", "password": nfc})
        with client(core) as c:
            assert c.login("nfc", nfd)["account"]["username"] == "nfc"

    await run(scenario)


async def test_bin_map_key_and_bin_values(core):
    """§2.2 rule 2: a non-str map key is a PROTOCOL_ERROR; a bin value where text is expected is the wrong type."""

    def scenario():
        with client(core, AGENT) as c:
            assert c.request("echo", {"s": b"\x01"}) == {"s": b"\x01"}
            err = expect_error("INVALID_ARGUMENT", c.request, "subscribe", {"topic": b"messages"})
            assert err.details == {"field": "topic"}
        with client(core) as c:
            err = expect_error("INVALID_ARGUMENT", c.request, "login", {"user": b"agent1", "password": "x"})
            assert err.details == {"field": "user"}
        with client(core, AGENT) as c:
            c.send_message([1, 99, "echo", {b"k": 1}])
            expect_connection_end(c, "PROTOCOL_ERROR")
        with client(core, AGENT) as c:
            c.send_message([1, 99, "echo", {"nested": [{b"k": 1}]}])
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_invalid_utf8_in_map_key(core):
    def scenario():
        with client(core, AGENT) as c:
            c.send_raw(_frame(b"\x94\x01\x05\xa4echo\x81\xa1\xff\x01"))
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_pong_before_login_and_ping_token_range(core):
    def scenario():
        with client(core) as c:
            c.send_message([6, 12345])  # NOTE_PONG: nothing happens
            c.login(*AGENT)
            assert c.request("echo", {}) == {}
        with client(core, AGENT) as c:
            c.send_message([5, 2**32])
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


@pytest.mark.parametrize("token", ["not-an-int", -1, 2**32, 1.0])
async def test_pong_with_bad_token(core, token):
    """§3.2: a PONG token is an int 0 … 2³²−1; a wrong type is a wrong message shape (§10), although
    §9 says the server ignores PONG tokens."""

    def scenario():
        with client(core, AGENT) as c:
            c.send_message([6, token])
            expect_connection_end(c, "PROTOCOL_ERROR")

    await run(scenario)


async def test_address_key_not_cleared_by_success(core_factory):
    """§5.4: a successful login clears the account's key, never the address key."""
    core = await core_factory(login_max_failures=3)

    def scenario():
        with client(core) as c:
            expect_error("LOGIN_FAILED", c.login, "agent1", "wrong-1")
            expect_error("LOGIN_FAILED", c.login, "agent1", "wrong-2")
        with client(core) as c:
            c.login(*AGENT)  # clears user:agent1, not addr
        with client(core) as c:
            expect_error("LOGIN_FAILED", c.login, token="bad-token")  # address key: 3rd failure → locked
            expect_error("RATE_LIMITED", c.login, *ADMIN)

    await run(scenario)


async def test_old_password_guesses_count_against_account_only(core_factory):
    core = await core_factory(login_max_failures=2)

    def scenario():
        with client(core, ADMIN) as admin:
            admin.request("accounts.add", {"username": "guess", "password": "guess-pass-1"})
        with client(core, ("guess", "guess-pass-1")) as g:
            for _ in range(2):
                expect_error("PERMISSION_DENIED", g.request, "accounts.password",
                             {"password": "new-pass-1x", "old_password": "nope"})  # fmt: skip
            err = expect_error("RATE_LIMITED", g.request, "accounts.password",
                               {"password": "new-pass-1x", "old_password": "guess-pass-1"})  # fmt: skip
            assert isinstance(err.details.get("retry_after"), float)
        with client(core) as c:
            expect_error("RATE_LIMITED", c.login, "guess", "guess-pass-1")
            assert c.login(*AGENT)["account"]["username"] == "agent1"  # the address key was not counted

    await run(scenario)


async def test_logout_with_pending_requests(core):
    def scenario():
        with client(core, ADMIN) as c:
            ids = c.send_many([("echo", {"n": 1}), ("accounts.list", {}), ("echo", {"n": 2}), ("logout", {})])
            c.wait_closed(2.0)
            answered = [m[1] for m in c.received if m[0] in (2, 3)]
            print("logout order:", answered, "ids", ids)
            assert answered[-1] == ids[3]
            assert answered.index(ids[0]) < answered.index(ids[2]) < answered.index(ids[3])

    await run(scenario)


async def test_check_order_permission_before_arguments(core):
    def scenario():
        with client(core, AGENT) as c:
            err = expect_error("PERMISSION_DENIED", c.request, "messages.send", {"text": 5})
            assert err.message == "messages.send: needs permission messages.send"
            err = expect_error("PERMISSION_DENIED", c.request, "workplaces.add", {})
            assert err.message == "workplaces.add: needs permission workplaces.manage"

    await run(scenario)


async def test_nil_counts_as_absent(core):
    def scenario():
        with client(core, ADMIN) as c:
            w = c.request("workplaces.add", {"name": "N1", "extension": "501", "sip_uri": None, "location": None})
            assert w["sip_uri"] == "" and w["location"] == ""
            v = c.request("accounts.add", {"username": "nilkind", "password": "nil-pass-1", "kind": None,
                                           "scope": None, "roles": None, "display_name": None})  # fmt: skip
            assert v["kind"] == "agent" and v["scope"] == "*" and v["roles"] == [["agent", "*"]]

    await run(scenario)


async def test_content_rule_errors(core):
    def scenario():
        with client(core, ADMIN) as c:
            cases = [
                ("accounts.add", {"username": "bad name", "password": "good-pass-1"}, "username"),
                ("accounts.add", {"username": "u" * 65, "password": "good-pass-1"}, "username"),
                ("accounts.add", {"username": "ws", "password": "         "}, "password"),
                ("accounts.add", {"username": "ctl", "password": "good\x07pass"}, "password"),
                ("accounts.add", {"username": "dn", "password": "good-pass-1", "display_name": "a\nb"}, "display_name"),
                ("accounts.add", {"username": "kd", "password": "good-pass-1", "kind": "boss"}, "kind"),
                ("accounts.add", {"username": "sc", "password": "good-pass-1", "scope": "nowhere"}, "scope"),
                ("accounts.add", {"username": "rl", "password": "good-pass-1", "roles": [["nope", "*"]]}, "roles"),
                ("accounts.grant", {"username": "agent1", "role": "agent", "scope": "nowhere"}, "scope"),
                ("workplaces.add", {"name": "   ", "extension": "601"}, "name"),
                ("workplaces.add", {"name": "E", "extension": "6" * 33}, "extension"),
                ("workplaces.add", {"name": "L", "extension": "602", "location": "l" * 65}, "location"),
                ("workplaces.add", {"name": "S", "extension": "603", "sip_uri": "s\x00"}, "sip_uri"),
            ]
            for op, args, fld in cases:
                err = expect_error("INVALID_ARGUMENT", c.request, op, args)
                assert err.details.get("field") == fld, (op, args, err)
            err = expect_error("INVALID_ARGUMENT", c.request, "accounts.add",
                               {"username": "sc", "password": "good-pass-1", "scope": "x"})  # fmt: skip
            assert err.message == "scope: unknown scope 'x'"

    await run(scenario)


async def test_admin_changes_other_password(core):
    def scenario():
        with client(core, AGENT) as agent, client(core, ADMIN) as admin:
            admin.subscribe("admin")
            assert admin.request("accounts.password", {"username": "AGENT1", "password": "agent-pass-2"}) == {}
            e = admin.next_event("admin", timeout=2)
            assert e.name == "account.password_changed" and e.data == {"username": "agent1", "by": "admin"}
            assert agent.request("echo", {}) == {}  # a password change does not end open sessions
            ghost = {"username": "ghost", "password": "p" * 9}
            err = expect_error("NOT_FOUND", admin.request, "accounts.password", ghost)
            assert err.details == {"field": "username"}
            with client(core) as c:
                expect_error("LOGIN_FAILED", c.login, token=agent.token)
                c.login("agent1", "agent-pass-2")

    await run(scenario)


async def test_messages_snapshot_keeps_last_50(core):
    def scenario():
        with client(core, ADMIN) as admin:
            ids = admin.send_many([("messages.send", {"text": f"m{n}"}) for n in range(1, 56)])
            for rid in ids:
                admin.wait_answer(rid)
            with client(core, AGENT) as agent:
                a = agent.subscribe("messages")
                assert a["seq"] == 55
                assert [m["text"] for m in a["snapshot"]["recent"]] == [f"m{n}" for n in range(6, 56)]

    await run(scenario)


async def test_max_inflight_is_not_an_error(core_factory):
    core = await core_factory(max_inflight=2)

    def scenario():
        with client(core, ADMIN) as c:
            assert c.hello_answer["max_inflight"] == 2
            ids = c.send_many([("workplaces.list", {}) for _ in range(12)] + [("echo", {"end": 1})])
            for rid in ids[:-1]:
                assert "workplaces" in c.wait_answer(rid)
            assert c.wait_answer(ids[-1]) == {"end": 1}

    await run(scenario)


async def test_resume_argument_types(core):
    def scenario():
        with client(core, AGENT) as c:
            for resume in ({"epoch": c.epoch, "seq": 1.0}, {"epoch": c.epoch}, {"seq": 0}, [c.epoch, 0],
                           {"epoch": c.epoch, "seq": True}):  # fmt: skip
                err = expect_error("INVALID_ARGUMENT", c.request, "subscribe", {"topic": "messages", "resume": resume})
                assert err.details == {"field": "resume"}, resume
            a = c.request("subscribe", {"topic": "messages", "resume": None})  # nil = absent
            assert a["mode"] == "snapshot"

    await run(scenario)


async def test_resume_boundaries_seq_zero_and_negative(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core, AGENT) as c:
            for n in (1, 2, 3):
                admin.request("messages.send", {"text": f"m{n}"})
            # S = 3, B = 3: resume.seq = 0 = S − B → replay of 1 … 3 (§8.3)
            a = c.subscribe("messages", {"epoch": c.epoch, "seq": 0})
            assert a["mode"] == "replay" and a["seq"] == 3
            c.request("echo", {})
            assert [e.seq for e in c.event_queue] == [1, 2, 3]
            c.request("unsubscribe", {"topic": "messages"})
            err = expect_error("INVALID_ARGUMENT", c.subscribe, "messages", {"epoch": c.epoch, "seq": -1})
            assert err.details == {"field": "resume"}

    await run(scenario)


async def test_login_then_logout_pipelined(core):
    def scenario():
        with client(core) as c:
            ids = c.send_many([("login", {"user": "agent1", "password": AGENT[1]}), ("logout", {})])
            assert c.wait_answer(ids[1]) == {}
            assert c.wait_closed(2.0) is None
            assert ids[0] not in c.answers  # cancelled, never answered (§5.6)

    await run(scenario)


async def test_logout_not_checked_for_duplicate_id(core):
    def scenario():
        with client(core, ADMIN) as c:
            c.pending[700] = ("accounts.list", {})
            c.send_raw(encode_frame([1, 700, "accounts.list", {}]) + encode_frame([1, 700, "logout", {}]))
            c.wait_closed(2.0)
            answers = [m for m in c.received if m[0] in (2, 3) and m[1] == 700]
            assert answers and answers[0] == [2, 700, {}], answers

    await run(scenario)


async def test_no_heartbeats_before_login(core_factory):
    core = await core_factory(heartbeat_interval=0.2, heartbeat_timeout=0.5, handshake_timeout=5.0)

    def scenario():
        with client(core, auto_ping=False, auto_pong=False) as c:
            c.poll(1.2)  # > 2 × heartbeat_timeout, but before login only the handshake deadline applies (§9)
            assert c.pings_received == []
            c.login(*AGENT)
            assert c.request("echo", {}) == {}

    await run(scenario)


async def test_session_closed_reasons(core_factory):
    core = await core_factory(heartbeat_interval=0.2, heartbeat_timeout=0.5)

    def scenario():
        with client(core, ADMIN) as admin:
            admin.subscribe("sessions")
            silent = client(core, AGENT, auto_ping=False, auto_pong=False, check_timeout=False)
            admin.next_event("sessions", timeout=2)
            deadline = time.monotonic() + 1.8
            while time.monotonic() < deadline:  # service both connections from this one thread
                try:
                    silent.poll(0.02)
                except ConnectionEnded as exc:
                    assert exc.name == "HEARTBEAT_TIMEOUT"
                    break
                admin.poll(0.02)
            else:
                pytest.fail("no HEARTBEAT_TIMEOUT")
            closed = admin.next_event("sessions", timeout=2)
            assert closed.name == "session.closed" and closed.data["reason"].startswith("HEARTBEAT_TIMEOUT: ")
            silent.close()
            victim = client(core, AGENT)
            admin.next_event("sessions", timeout=2)
            admin.request("accounts.enable", {"username": "agent1", "enabled": False})
            expect_connection_end(victim, "SESSION_REVOKED")
            closed = admin.next_event("sessions", timeout=2)
            assert closed.data["reason"] == "SESSION_REVOKED: account disabled"
            victim.close()

    await run(scenario)


async def test_permissions_fixed_for_the_session(core):
    def scenario():
        with client(core, AGENT) as agent, client(core, ADMIN) as admin:
            admin.request("accounts.grant", {"username": "agent1", "role": "supervisor"})
            expect_error("PERMISSION_DENIED", agent.request, "sessions.list")  # §5.2: as of login
            assert agent.request("whoami")["roles"] == [["agent", "*"]]
            with client(core) as again:
                again.login(token=agent.token)
                assert again.request("sessions.list")["sessions"]

    await run(scenario)


async def test_slow_consumer_is_dropped_without_error_frame(core_factory):
    core = await core_factory(max_frame=4096, max_send_buffer=4096)

    def scenario():
        with client(core, ADMIN) as admin:
            admin.subscribe("sessions")
            host, port = parse_address(core.address)
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect((host, port))
            raw.sendall(encode_frame([1, 1, "hello", {"versions": [1]}]))
            raw.sendall(encode_frame([1, 2, "login", {"user": "agent1", "password": AGENT[1]}]))
            time.sleep(0.2)
            raw.sendall(encode_frame([1, 3, "subscribe", {"topic": "messages"}]))
            admin.next_event("sessions", timeout=2)
            text = "x" * 1900
            deadline = time.monotonic() + 1.5
            closed = None
            while closed is None and time.monotonic() < deadline:
                for rid in admin.send_many([("messages.send", {"text": text})] * 50):
                    admin.wait_answer(rid)
                admin.poll(0.001)
                for e in list(admin.event_queue):
                    if e.name == "session.closed":
                        closed = e
            assert closed is not None and closed.data["reason"] == "slow consumer"
            raw.settimeout(1.0)
            dec, msgs = FrameDecoder(), []
            try:
                while chunk := raw.recv(65536):
                    msgs.extend(dec.feed(chunk))
            except (ConnectionResetError, ConnectionClosed):
                pass
            raw.close()
            assert not [m for m in msgs if m[0] == 3 and m[1] == 0]  # no id-0 ERROR (code 7 is reserved)

    await run(scenario)


async def test_token_expiry_and_password_fallback(core_factory):
    core = await core_factory(token_ttl=0.3)

    def scenario():
        with client(core, AGENT) as c:
            assert c.login_answer["token_ttl"] == 0.3
            old = c.token
            c.subscribe("messages")
            c.close()
            time.sleep(0.35)
            with client(core) as probe:
                expect_error("LOGIN_FAILED", probe.login, token=old)  # §11: expired token
            results = c.reconnect()  # token login fails → password login (§13.5)
            assert c.login_answer["account"]["username"] == "agent1" and c.token != old
            assert results["messages"]["mode"] == "live"

    await run(scenario)


async def test_resubscribe_refused_is_dropped(core):
    def scenario():
        with client(core, ADMIN) as admin:
            agent = client(core, AGENT)
            try:
                agent.subscribe("messages")
                agent.subscribe("system")
                admin.request("accounts.revoke", {"username": "agent1", "role": "agent", "scope": "*"})
                results = agent.reconnect()
                assert isinstance(results["messages"], SimProtError) and results["messages"].code == 103
                assert isinstance(results["system"], SimProtError) and results["system"].code == 103
                assert agent.subs == {} and set(agent.dropped_subscriptions) == {"messages", "system"}
                assert agent.request("whoami")["roles"] == []  # the rest of the session is still useful
            finally:
                agent.close()

    await run(scenario)


async def test_preauth_limit_follows_lower_max_frame(core_factory):
    core = await core_factory(max_frame=2048)

    def scenario():
        with client(core) as c:
            c.send_raw(struct.pack(">I", 2049))
            assert expect_connection_end(c, "FRAME_TOO_LARGE").details == {"max_frame": 2048}

    await run(scenario)


async def test_sessions_list_only_logged_in(core):
    def scenario():
        with client(core, ADMIN) as admin, client(core) as pre, client(core, AGENT) as agent:
            conns = {x["conn"] for x in admin.request("sessions.list")["sessions"]}
            assert conns == {admin.hello_answer["conn"], agent.hello_answer["conn"]}
            assert pre.hello_answer["conn"] not in conns
            assert admin.request("status")["sessions"] == 2

    await run(scenario)
