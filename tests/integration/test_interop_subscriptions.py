"""Interoperability tests (subscriptions, heartbeats): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import time

from tests.integration.interop_support import (
    ADMIN,
    AGENT,
    client,
    expect_connection_end,
    expect_error,
    run,
)

# ---- subscriptions


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


# ---- heartbeats


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
