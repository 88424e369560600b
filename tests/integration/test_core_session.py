"""SimProt against the running core: handshake, login, permissions, operations, events."""

from __future__ import annotations

import asyncio

import pytest

from simprot.client import SimProtClient
from simprot.errors import ErrorCode, RequestError
from tests.integration.conftest import ADMIN, AGENT, AGENT_PW, Core


async def test_login_and_status(core: Core) -> None:
    c = core.client()
    answer = await c.connect()
    assert answer["account"]["username"] == ADMIN
    assert ["accounts.manage", "*"] in answer["permissions"]
    assert c.hello["version"] == 1 and c.hello["node"] == "cc1"
    status = await c.request("status")
    assert status["role"] == "master" and status["database"] == "ok"
    assert status["sessions"] == 1
    await c.close()


@pytest.mark.parametrize("user,password", [(ADMIN, "wrong-password"), ("nobody", "whatever-pw")])
async def test_login_failure_is_the_same_for_unknown_user_and_wrong_password(core: Core, user: str,
                                                                            password: str) -> None:
    c = core.client(user, password)
    with pytest.raises(RequestError) as e:
        await c.connect()
    assert e.value.code is ErrorCode.LOGIN_FAILED and e.value.message == "login failed"


async def test_login_throttled_per_account(core_factory) -> None:
    core = await core_factory(login_max_failures=3, login_lockout=30.0)
    for _ in range(3):
        with pytest.raises(RequestError) as e:
            await core.client(AGENT, "bad-password").connect()
        assert e.value.code is ErrorCode.LOGIN_FAILED
    # locked now, even with the right password: the password is not even checked
    with pytest.raises(RequestError) as e:
        await core.client(AGENT, AGENT_PW).connect()
    assert e.value.code is ErrorCode.RATE_LIMITED
    assert 0 < e.value.details["retry_after"] <= 30


async def test_agent_lacks_admin_permissions(core: Core) -> None:
    c = await core.connected(AGENT, AGENT_PW)
    with pytest.raises(RequestError) as e:
        await c.request("accounts.list")
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    with pytest.raises(RequestError) as e:
        await c.subscribe("sessions", lambda *a: None)
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    assert (await c.request("whoami"))["username"] == AGENT
    assert (await c.request("status"))["role"] == "master"  # agents may read status
    await c.close()


async def scoped_boss(core: Core) -> tuple[SimProtClient, SimProtClient]:
    """The centre-wide admin, and 'boss': a supervisor who is admin of scope praha only."""
    admin = await core.connected()
    pool = core.app.db.pool  # type: ignore[union-attr]
    await pool.execute("INSERT INTO cc.scopes(scope, description) VALUES ('praha', 'Praha'), ('brno', 'Brno')")
    await admin.request("accounts.add", {"username": "boss", "password": "boss-pass-1", "kind": "supervisor",
                                         "scope": "praha", "roles": [["admin", "praha"]]})
    return admin, await core.connected("boss", "boss-pass-1")


async def test_scoped_admin_manages_only_his_scope(core: Core) -> None:
    admin, boss = await scoped_boss(core)
    made = await boss.request("accounts.add", {"username": "a2", "password": "agent-pass-2", "scope": "praha"})
    assert made["scope"] == "praha"
    with pytest.raises(RequestError) as e:
        await boss.request("accounts.add", {"username": "a3", "password": "agent-pass-3", "scope": "brno"})
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    listed = {a["username"] for a in (await boss.request("accounts.list"))["accounts"]}
    assert "a2" in listed and ADMIN not in listed
    await boss.close()
    await admin.close()


async def test_account_admin_and_errors_name_the_field(core: Core) -> None:
    c = await core.connected()
    with pytest.raises(RequestError) as e:
        await c.request("accounts.add", {"username": "bob", "password": "short"})
    assert e.value.code is ErrorCode.INVALID_ARGUMENT and e.value.message.startswith("password")
    with pytest.raises(RequestError) as e:
        await c.request("accounts.add", {"username": AGENT, "password": "long-enough-1"})
    assert e.value.code is ErrorCode.CONFLICT
    with pytest.raises(RequestError) as e:
        await c.request("accounts.add", {"username": 7, "password": "long-enough-1"})
    assert e.value.code is ErrorCode.INVALID_ARGUMENT and e.value.details["field"] == "username"
    with pytest.raises(RequestError) as e:
        await c.request("no.such.op")
    assert e.value.code is ErrorCode.UNKNOWN_OPERATION
    await c.request("accounts.add", {"username": "bob", "password": "long-enough-1", "kind": "agent"})
    await c.request("accounts.password", {"username": "bob", "password": "long-enough-2"})
    bob = await core.connected("bob", "long-enough-2")
    # changing one's own password needs the old one
    with pytest.raises(RequestError) as e:
        await bob.request("accounts.password", {"password": "long-enough-3", "old_password": "nope-nope"})
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    await bob.request("accounts.password", {"password": "long-enough-3", "old_password": "long-enough-2"})
    await bob.close()
    # disabling ends the account's sessions (SESSION_REVOKED) and refuses its logins
    bob = await core.connected("bob", "long-enough-3")
    await c.request("accounts.enable", {"username": "bob", "enabled": False})
    await asyncio.sleep(0.05)
    assert bob._proto is None
    with pytest.raises(RequestError) as e:
        await core.connected("bob", "long-enough-3")
    assert e.value.code is ErrorCode.LOGIN_FAILED
    await c.close()


async def test_token_login(core: Core) -> None:
    c = core.client()
    answer = await c.connect()
    token = answer["token"]
    await c.close()
    t = core.client(user=None, password=None)  # type: ignore[arg-type]
    t.token = token
    again = await t.connect()
    assert again["account"]["username"] == ADMIN
    await t.close()


async def test_events_fan_out_to_subscribers(core: Core) -> None:
    agents = [await core.connected(AGENT, AGENT_PW) for _ in range(5)]
    got: list[list] = [[] for _ in agents]
    for a, sink in zip(agents, got, strict=True):
        answer = await a.subscribe("messages", lambda t, s, n, d, sink=sink: sink.append((s, d["text"])))
        assert answer["mode"] == "snapshot" and answer["snapshot"] == {"recent": []}
    sup = await core.connected()
    for i in range(3):
        await sup.request("messages.send", {"text": f"m{i}"})
    await asyncio.sleep(0.1)
    for sink in got:
        assert sink == [(1, "m0"), (2, "m1"), (3, "m2")]
    with pytest.raises(RequestError) as e:
        await agents[0].request("messages.send", {"text": "agents cannot broadcast"})
    assert e.value.code is ErrorCode.PERMISSION_DENIED
    for a in agents + [sup]:
        await a.close()


async def test_workplaces(core: Core) -> None:
    c = await core.connected()
    wp = await c.request("workplaces.add", {"name": "seat-1", "extension": "1001", "location": "Praha"})
    assert wp["extension"] == "1001" and isinstance(wp["created_at"], str)
    with pytest.raises(RequestError) as e:
        await c.request("workplaces.add", {"name": "seat-2", "extension": "1001"})
    assert e.value.code is ErrorCode.CONFLICT
    assert [w["name"] for w in (await c.request("workplaces.list"))["workplaces"]] == ["seat-1"]
    await c.close()


async def test_not_master_points_elsewhere(core_factory) -> None:
    core = await core_factory(peers=("127.0.0.1:1",))
    core.app.service.set_master(False)  # type: ignore[union-attr]
    with pytest.raises(Exception) as e:
        await core.client().connect()
    assert "no server reachable" in str(e.value)
    # speak to it directly to see the answer
    c = core.client()
    with pytest.raises(RequestError) as e2:
        await c._connect_one(core.app.simprot_address)
    assert e2.value.code is ErrorCode.NOT_MASTER and e2.value.details["servers"] == ["127.0.0.1:1"]


async def test_login_throttled_per_source_address(core_factory) -> None:
    """Guessing across many account names from one address is locked too."""
    core = await core_factory(login_max_failures=4, login_lockout=30.0)
    for i in range(4):
        with pytest.raises(RequestError) as e:
            await core.client(f"guess{i}", "bad-password").connect()
        assert e.value.code is ErrorCode.LOGIN_FAILED
    with pytest.raises(RequestError) as e:
        await core.client(ADMIN, "admin-pass-1").connect()
    assert e.value.code is ErrorCode.RATE_LIMITED


async def test_client_walks_its_server_list(core: Core) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{s.getsockname()[1]}"  # bound but not listening: connection refused
    c = SimProtClient([dead, core.address], user=ADMIN, password="admin-pass-1", reconnect=False)
    await c.connect()
    assert (await c.request("whoami"))["username"] == ADMIN
    await c.close()
    s.close()


async def test_tls(core_factory, tmp_path) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    core = await core_factory(tls_cert=str(cert), tls_key=str(key))
    ctx = ssl.create_default_context(cafile=str(cert))
    c = SimProtClient([core.address], user=ADMIN, password="admin-pass-1", ssl=ctx, reconnect=False)
    await c.connect()
    assert (await c.request("echo", {"over": "tls"})) == {"over": "tls"}
    await c.close()
    # a plain-text client gets nowhere
    plain = core.client()
    with pytest.raises(Exception):  # noqa: B017 - the exact failure depends on how TLS rejects the bytes
        await asyncio.wait_for(plain.connect(), 5)


async def test_login_while_the_database_is_unreachable_gets_an_answer(core: Core) -> None:
    """A backend failure during login is INTERNAL_ERROR, not a hung handshake; the server keeps serving."""
    first = await core.connected()
    await core.app.db.pool.close()  # type: ignore[union-attr]  # the database goes away
    c = core.client()
    with pytest.raises(RequestError) as e:
        await asyncio.wait_for(c.connect(), 10)
    assert e.value.code is ErrorCode.INTERNAL_ERROR
    assert (await first.request("echo", {"x": 1})) == {"x": 1}  # sessions not needing the database go on
    await first.close()


async def test_directed_messages_reach_only_their_addressees(core: Core) -> None:
    admin = await core.connected()
    await admin.request("accounts.add", {"username": "agent2", "password": "agent-pass-2"})
    a1 = await core.connected(AGENT, AGENT_PW)
    a2 = await core.connected("agent2", "agent-pass-2")
    got1: list = []
    got2: list = []
    await a1.subscribe("messages", lambda t, s, n, d: got1.append((s, d["text"])))
    await a2.subscribe("messages", lambda t, s, n, d: got2.append((s, d["text"])))
    await admin.request("messages.send", {"text": "to all"})
    await admin.request("messages.send", {"text": "only agent1", "to": [AGENT]})
    await admin.request("messages.send", {"text": "all again"})
    await asyncio.sleep(0.1)
    assert got1 == [(1, "to all"), (2, "only agent1"), (3, "all again")]
    assert got2 == [(1, "to all"), (3, "all again")]  # a gap where the private one was
    late: list = []
    snap: list = []
    a3 = await core.connected("agent2", "agent-pass-2")
    await a3.subscribe("messages", lambda *a: None, lambda t, s: snap.append(s))
    assert [m["text"] for m in snap[0]["recent"]] == ["to all", "all again"]
    # replay honours the audience too
    sub = a2._subs["messages"]
    sub.seq = 0
    a2._proto.transport.abort()  # type: ignore[union-attr]
    c = core.client("agent2", "agent-pass-2", reconnect=False)
    await c.connect()
    c._subs["messages"] = sub.__class__("messages", lambda t, s, n, d: late.append(d["text"]), None,
                                        epoch=sub.epoch, seq=0)
    await c._resubscribe(c._subs["messages"])
    await asyncio.sleep(0.1)
    assert late == ["to all", "all again"]
    for x in (admin, a1, a3, c):
        await x.close()


async def test_scoped_admin_cannot_mint_admins(core: Core) -> None:
    admin, boss = await scoped_boss(core)
    await boss.request("accounts.add", {"username": "a2", "password": "agent-pass-2", "scope": "praha"})
    for req in ({"username": "a2", "role": "admin", "scope": "praha"},
                {"username": "boss", "role": "admin", "scope": "praha"}):
        with pytest.raises(RequestError) as e:
            await boss.request("accounts.grant", req)
        assert e.value.code is ErrorCode.PERMISSION_DENIED
    assert (await boss.request("accounts.grant", {"username": "a2", "role": "supervisor", "scope": "praha"}))[
        "roles"] == [["agent", "praha"], ["supervisor", "praha"]]
    await boss.close()
    await admin.close()


async def test_old_password_guesses_are_throttled(core_factory) -> None:
    core = await core_factory(login_max_failures=3)
    c = await core.connected(AGENT, AGENT_PW)
    for _ in range(3):
        with pytest.raises(RequestError) as e:
            await c.request("accounts.password", {"password": "new-pass-123", "old_password": "guess-guess"})
        assert e.value.code is ErrorCode.PERMISSION_DENIED
    with pytest.raises(RequestError) as e:
        await c.request("accounts.password", {"password": "new-pass-123", "old_password": AGENT_PW})
    assert e.value.code is ErrorCode.RATE_LIMITED
    await c.close()


async def test_scoped_admin_cannot_touch_a_centre_wide_admin(core: Core) -> None:
    admin, boss = await scoped_boss(core)
    await admin.request("accounts.add", {"username": "chief", "password": "chief-pass-1", "kind": "admin",
                                         "scope": "praha"})  # home scope praha, admin in "*"
    for op, args in (("accounts.enable", {"username": "chief", "enabled": False}),
                     ("accounts.password", {"username": "chief", "password": "taken-over-1"})):
        with pytest.raises(RequestError) as e:
            await boss.request(op, args)
        assert e.value.code is ErrorCode.PERMISSION_DENIED
    await boss.close()
    await admin.close()


async def test_revoked_session_does_not_reconnect(core: Core) -> None:
    admin = await core.connected()
    agent = core.client(AGENT, AGENT_PW, reconnect=True, backoff_initial=0.05)
    await agent.connect()
    await admin.request("accounts.enable", {"username": AGENT, "enabled": False})
    await asyncio.sleep(0.5)
    assert not agent.connected.is_set() and agent._reconnector is None and agent.reconnects == 0
    await agent.close()
    await admin.close()
