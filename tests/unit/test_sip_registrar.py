"""The registrar (RFC 3261 §10.3): bindings, expiry, ordering, wildcard removal, bounds."""

from __future__ import annotations

from sipcore.message import Request
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.registrar import Registrar

PEER = Peer("udp", "127.0.0.1", 5091)


def register(contact: str | None, *, cseq: int = 1, call_id: str = "reg-1", expires: int | None = None,
             user: str = "1001") -> Request:
    lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-" + str(cseq),
             f"From: <sip:{user}@127.0.0.1>;tag=abc", f"To: <sip:{user}@127.0.0.1>",
             f"Call-ID: {call_id}", f"CSeq: {cseq} REGISTER", "Max-Forwards: 70"]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def test_register_refresh_expire_and_lookup() -> None:
    r = Registrar(min_expires=60, max_expires=3600)
    res = r.register(register("<sip:1001@127.0.0.1:5091>", expires=120), PEER, 0.0)
    assert res.status == 200 and res.to_tag
    assert res.header_values("Contact") == ["<sip:1001@127.0.0.1:5091>;expires=120"]
    [b] = r.lookup("1001", 10.0)
    assert (b.contact, b.expires_at, b.peer) == ("sip:1001@127.0.0.1:5091", 120.0, PEER)
    assert r.register(register("<sip:1001@127.0.0.1:5091>", cseq=2, expires=7200), PEER, 60.0).status == 200
    assert r.lookup("1001", 3000.0)[0].expires_at == 3660.0          # cut to max_expires
    assert r.lookup("1001", 3661.0) == [] and r.expire(3661.0) == 1 and len(r) == 0


def test_contact_param_wins_and_several_contacts() -> None:
    r = Registrar()
    res = r.register(register("<sip:1001@10.0.0.1>;expires=300, <sip:1001@10.0.0.2>", expires=600), PEER, 0.0)
    assert res.status == 200 and sorted(res.header_values("Contact")) == [
        "<sip:1001@10.0.0.1>;expires=300", "<sip:1001@10.0.0.2>;expires=600"]
    assert [b.contact for b in r.lookup("1001", 1.0)] == ["sip:1001@10.0.0.2", "sip:1001@10.0.0.1"]


def test_remove_one_and_all() -> None:
    r = Registrar()
    r.register(register("<sip:1001@10.0.0.1>, <sip:1001@10.0.0.2>"), PEER, 0.0)
    assert r.register(register("<sip:1001@10.0.0.1>;expires=0", cseq=2), PEER, 1.0).status == 200
    assert [b.contact for b in r.lookup("1001", 2.0)] == ["sip:1001@10.0.0.2"]
    assert r.register(register("*", cseq=3, expires=0), PEER, 2.0).status == 200
    assert r.lookup("1001", 3.0) == []


def test_errors() -> None:
    r = Registrar(min_expires=60)
    res = r.register(register("<sip:1001@10.0.0.1>", expires=30), PEER, 0.0)
    assert res.status == 423 and res.header("Min-Expires") == "60" and r.lookup("1001", 0.0) == []
    assert r.register(register("*", expires=30), PEER, 0.0).status == 400
    assert r.register(register("*"), PEER, 0.0).status == 400
    assert r.register(register("<sip:1001@10.0.0.1>;expires=abc"), PEER, 0.0).status == 400
    r.register(register("<sip:1001@10.0.0.1>", cseq=5), PEER, 0.0)
    assert r.register(register("<sip:1001@10.0.0.1>", cseq=5), PEER, 1.0).status == 500   # not higher
    assert r.register(register("<sip:1001@10.0.0.1>", cseq=4, call_id="other"), PEER, 1.0).status == 200
    assert r.register(register("<sip:x@h>", user=""), PEER, 0.0).status in (400, 404)


def test_query_without_contact_lists_the_bindings() -> None:
    r = Registrar()
    r.register(register("<sip:1001@10.0.0.1>", expires=100), PEER, 0.0)
    res = r.register(register(None, cseq=2), PEER, 40.0)
    assert res.status == 200 and res.header_values("Contact") == ["<sip:1001@10.0.0.1>;expires=60"]


def test_bounds() -> None:
    r = Registrar(max_bindings=2, max_aors=1)
    assert r.register(register("<sip:a@h1.example>, <sip:a@h2.example>, <sip:a@h3.example>"), PEER, 0.0).status == 403
    assert r.register(register("<sip:a@h1.example>"), PEER, 0.0).status == 200
    assert r.register(register("<sip:b@h1.example>", user="1002"), PEER, 0.0).status == 403   # max_aors
