"""Interoperability tests (more of the spec, part 2): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import socket
import struct
import time

import pytest

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
    ConnectionClosed,
    ConnectionEnded,
    FrameDecoder,
    SimProtError,
    encode_frame,
    parse_address,
)


# ---- more of the spec (2)
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
