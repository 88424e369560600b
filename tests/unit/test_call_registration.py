"""Phones registering with digest auth (ctiserver.calls.registration): real parsed REGISTERs, the
client side computed by sipcore.digest.DigestClient, a fake clock."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ctiserver.accounts import WorkplaceStore
from ctiserver.calls.registration import PhoneRegistry
from sipcore.digest import DigestClient, parse_challenge
from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.registrar import Registrar

REALM = "ctiserver"
PEER = Peer("udp", "127.0.0.1", 5091)
URI = "sip:127.0.0.1:5060"


def row(extension: str, password: str | None, realm: str = REALM) -> dict[str, Any]:
    md5, sha256 = WorkplaceStore.sip_ha1s(extension, realm, password) if password else (None, None)
    return {"id": 1, "name": f"ws-{extension}", "extension": extension, "sip_uri": "", "location": "",
            "sip_ha1_md5": md5, "sip_ha1_sha256": sha256}


WORKPLACES = {"1001": row("1001", "secret-1001"), "1002": row("1002", "secret-1002"),
              "1003": row("1003", None)}


def registry(**kw: Any) -> PhoneRegistry:
    return PhoneRegistry(Registrar(), realm=REALM, workplace=WORKPLACES.get, **kw)


def register(user: str = "1001", *, authorization: list[str] = (), cseq: int = 1,  # type: ignore[assignment]
             to: str | None = None, uri: str = URI) -> Request:
    lines = [f"REGISTER {uri} SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:5091;branch=z9hG4bK-{cseq}",
             f"From: <sip:{user}@127.0.0.1>;tag=abc", f"To: {to or f'<sip:{user}@127.0.0.1>'}",
             "Call-ID: reg-1", f"CSeq: {cseq} REGISTER", "Max-Forwards: 70",
             f"Contact: <sip:{user}@127.0.0.1:5091>", "Expires: 600"]
    lines += [f"Authorization: {a}" for a in authorization]
    msg = parse_message(("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode())
    assert isinstance(msg, Request)
    return msg


def challenges(res: Response) -> list[str]:
    assert res.status == 401, res
    return res.header_values("WWW-Authenticate")


def login(reg: PhoneRegistry, client: DigestClient, now: float, user: str = "1001", *, pick: int = 0,
          cseq: int = 1) -> Response:
    """The two round trips of a phone: REGISTER, 401, REGISTER with credentials."""
    first = reg.register(register(user, cseq=cseq), PEER, now)
    auth = client.respond(challenges(first)[pick], method="REGISTER", uri=URI)
    return reg.register(register(user, authorization=[auth], cseq=cseq + 1), PEER, now)


def test_challenge_offers_sha256_then_md5_with_one_nonce() -> None:
    res = registry().register(register(), PEER, 0.0)
    assert res.reason == "Unauthorized" and res.to_tag
    sha, md5 = (parse_challenge(v) for v in challenges(res))
    assert (sha.algorithm.value, md5.algorithm.value) == ("SHA-256", "MD5")
    assert sha.realm == md5.realm == REALM and sha.nonce == md5.nonce and sha.qop == ("auth",)
    assert not sha.stale


@pytest.mark.parametrize("pick", [0, 1], ids=["sha256", "md5"])
def test_right_password_registers_the_binding(pick: int) -> None:
    reg = registry()
    res = login(reg, DigestClient("1001", "secret-1001"), 10.0, pick=pick)
    assert res.status == 200 and res.header_values("Contact") == ["<sip:1001@127.0.0.1:5091>;expires=600"]
    [binding] = reg.registrar.lookup("1001", 11.0)
    assert binding.contact == "sip:1001@127.0.0.1:5091" and binding.peer == PEER
    assert reg.stats["registered"] == 1 and reg.stats["refused"] == 0


def test_a_refresh_with_the_cached_nonce_and_next_count_needs_no_new_challenge() -> None:
    reg, client = registry(), DigestClient("1001", "secret-1001")
    assert login(reg, client, 0.0).status == 200
    again = client.authorize(REALM, method="REGISTER", uri=URI)
    assert again is not None
    assert reg.register(register(authorization=[again], cseq=3), PEER, 60.0).status == 200


def test_wrong_password_unknown_extension_and_no_credentials_look_alike() -> None:
    reg = registry()
    wrong = login(reg, DigestClient("1001", "not-the-password"), 0.0)
    unknown = login(reg, DigestClient("1099", "whatever-pass"), 0.0, "1099")     # no workplace
    no_ha1 = login(reg, DigestClient("1003", "whatever-pass"), 0.0, "1003")      # no password set
    answers = (wrong, unknown, no_ha1)
    assert {(r.status, r.reason, r.body) for r in answers} == {(403, "Forbidden", b"")}
    assert len({tuple(name for name, _ in r.headers) for r in answers}) == 1    # no extra header anywhere
    # and the challenges before looked alike whatever the extension
    c1 = challenges(reg.register(register("1001"), PEER, 1.0))
    c2 = challenges(reg.register(register("1099"), PEER, 1.0))
    assert [parse_challenge(v).algorithm for v in c1] == [parse_challenge(v).algorithm for v in c2]
    assert reg.registrar.lookup("1001", 1.0) == [] and reg.registrar.lookup("1099", 1.0) == []
    assert reg.stats["refused"] == 3


def test_credentials_of_another_extension_are_refused() -> None:
    reg = registry()
    first = reg.register(register("1001"), PEER, 0.0)
    auth = DigestClient("1002", "secret-1002").respond(challenges(first)[0], method="REGISTER", uri=URI)
    res = reg.register(register("1001", authorization=[auth], cseq=2), PEER, 0.0)
    assert res.status == 403 and reg.registrar.lookup("1001", 0.0) == []


def test_expired_nonce_gets_stale_true_and_the_phone_retries_without_its_user() -> None:
    reg, client = registry(nonce_lifetime=30.0), DigestClient("1001", "secret-1001")
    first = reg.register(register(), PEER, 0.0)
    late = client.respond(challenges(first)[0], method="REGISTER", uri=URI)
    res = reg.register(register(authorization=[late], cseq=2), PEER, 100.0)
    assert all(parse_challenge(v).stale for v in challenges(res))
    auth = client.respond(challenges(res)[0], method="REGISTER", uri=URI)
    assert reg.register(register(authorization=[auth], cseq=3), PEER, 100.0).status == 200
    assert reg.stats["stale"] == 1 and reg.stats["refused"] == 0


def test_a_nonce_from_before_a_restart_is_answered_stale() -> None:
    before, after = registry(), registry()        # each process makes its own secret
    client = DigestClient("1001", "secret-1001")
    assert login(before, client, 0.0).status == 200
    cached = client.authorize(REALM, method="REGISTER", uri=URI)
    assert cached is not None
    res = after.register(register(authorization=[cached], cseq=3), PEER, 10.0)
    assert all(parse_challenge(v).stale for v in challenges(res))
    auth = client.respond(challenges(res)[0], method="REGISTER", uri=URI)
    assert after.register(register(authorization=[auth], cseq=4), PEER, 10.0).status == 200


def test_credentials_for_another_realm_only_get_a_challenge() -> None:
    other = PhoneRegistry(Registrar(), realm="elsewhere", workplace=WORKPLACES.get)
    foreign = DigestClient("1001", "secret-1001").respond(
        challenges(other.register(register(), PEER, 0.0))[0], method="REGISTER", uri=URI)
    reg = registry()
    res = reg.register(register(authorization=[foreign]), PEER, 0.0)
    assert res.status == 401 and not parse_challenge(challenges(res)[0]).stale and reg.stats["refused"] == 0


def test_ha1s_of_another_realm_do_not_work() -> None:
    """Changing sip.realm invalidates the stored HA1s (documented in migration 0004)."""
    old = {"1001": row("1001", "secret-1001", realm="old-realm")}
    reg = PhoneRegistry(Registrar(), realm=REALM, workplace=old.get)
    assert login(reg, DigestClient("1001", "secret-1001"), 0.0).status == 403


def test_replayed_credentials_and_a_wrong_uri_are_refused() -> None:
    reg, client = registry(), DigestClient("1001", "secret-1001")
    first = reg.register(register(), PEER, 0.0)
    auth = client.respond(challenges(first)[0], method="REGISTER", uri=URI)
    assert reg.register(register(authorization=[auth], cseq=2), PEER, 0.0).status == 200
    assert reg.register(register(authorization=[auth], cseq=3), PEER, 1.0).status == 403   # same nc again
    other = client.respond(challenges(first)[0], method="REGISTER", uri="sip:10.9.9.9")
    assert reg.register(register(authorization=[other], cseq=4), PEER, 1.0).status == 403


def test_malformed_authorization_is_a_400_and_counts_as_a_failure() -> None:
    reg = registry()
    res = reg.register(register(authorization=['Digest username="1001", realm="ctiserver", nonce=']), PEER, 0.0)
    assert res.status == 400 and reg.stats["refused"] == 1


def test_unreadable_to_or_no_user_is_answered_before_any_challenge() -> None:
    reg = registry()
    assert reg.register(register(to="<sip:127.0.0.1>"), PEER, 0.0).status == 404
    assert reg.register(register(to="not a uri at all <"), PEER, 0.0).status == 400


def test_failures_lock_the_source_out_then_it_recovers() -> None:
    reg = registry(max_failures=3, failure_rate=0.1, lockout=60.0)
    guesser = DigestClient("1001", "guess-guess")
    for i in range(4):                                     # 3 allowed at once, the 4th locks
        assert login(reg, guesser, float(i)).status == 403
    assert reg.locked("127.0.0.1", 4.0)
    right = DigestClient("1001", "secret-1001")
    res = reg.register(register(), PEER, 5.0)              # even a plain REGISTER: no challenge now
    assert res.status == 403 and reg.stats["locked_out"] == 1
    other = Peer("udp", "127.0.0.2", 5091)                 # another source is not affected
    first = reg.register(register(), other, 10.0)
    auth = right.respond(challenges(first)[0], method="REGISTER", uri=URI)
    assert reg.register(register(authorization=[auth], cseq=5), PEER, 10.0).status == 403   # right, but locked
    auth = right.respond(challenges(first)[0], method="REGISTER", uri=URI)
    assert reg.register(register(authorization=[auth], cseq=6), other, 10.0).status == 200
    assert not reg.locked("127.0.0.1", 64.0)
    assert login(reg, right, 64.0, cseq=10).status == 200


def test_the_lockout_table_is_bounded() -> None:
    reg = registry(max_failures=1, failure_rate=0.01, max_sources=5)
    for i in range(20):
        peer = Peer("udp", f"10.0.0.{i}", 5060)
        for _ in range(2):
            first = reg.register(register(), peer, 0.0)
            if first.status == 401:
                auth = DigestClient("1001", "guess-guess").respond(challenges(first)[0], method="REGISTER",
                                                                   uri=URI)
                reg.register(register(authorization=[auth], cseq=2), peer, 0.0)
    assert len(reg._locked) <= 5
    assert reg.locked("10.0.0.19", 1.0) and not reg.locked("10.0.0.0", 1.0)


def test_sip_ha1s_are_the_digest_ha1s() -> None:
    md5, sha256 = WorkplaceStore.sip_ha1s("1001", "ctiserver", "pässwörd")
    assert md5 == hashlib.md5("1001:ctiserver:pässwörd".encode()).hexdigest()
    assert sha256 == hashlib.sha256("1001:ctiserver:pässwörd".encode()).hexdigest()
    assert PhoneRegistry(Registrar(), realm=REALM, workplace=lambda e: None).realm == REALM
    with pytest.raises(ValueError):
        PhoneRegistry(Registrar(), realm=REALM, workplace=lambda e: None, max_failures=0)
