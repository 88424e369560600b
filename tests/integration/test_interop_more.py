"""Interoperability tests (more of the spec): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import re
import struct
import time

import msgpack

from tests.integration.interop_support import (
    ADMIN,
    AGENT,
    _frame,
    client,
    expect_connection_end,
    expect_error,
    run,
)
from tests.interop_client import (
    SimProtClient,
    encode_frame,
)

# ---- more of the spec


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
