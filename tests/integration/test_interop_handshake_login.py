"""Interoperability tests (offline: §14 bytes, handshake, login): the independent client written from docs/simprot.md
alone, against the real server. Every assertion states what the document promises."""

from __future__ import annotations

import re

import pytest

from tests.integration.interop_support import (
    ADMIN,
    AGENT,
    HEX16,
    _worked_example_frames,
    client,
    expect_connection_end,
    expect_error,
    run,
)
from tests.interop_client import (
    ERROR_NAMES,
    FrameDecoder,
    SimProtClient,
    encode_frame,
    parse_address,
)

# ---- offline: §14 bytes




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


# ---- handshake


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


# ---- login


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
