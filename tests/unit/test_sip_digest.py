"""Digest authentication (RFC 7616, RFC 8760, RFC 2617): vectors, header values, server and client."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from sipcore.digest import (
    Algorithm,
    AuthError,
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    Outcome,
    StoredSecret,
    authorization,
    choose_challenge,
    compute_response,
    parse_challenge,
    parse_credentials,
    parse_digest,
)
from sipcore.errors import SipError

# -- the RFC examples --------------------------------------------------------------------------------

RFC7616_CHALLENGE = (  # RFC 7616 §3.9.1, folded onto one line as a SIP parser hands it over
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize("algorithm, response", [
    (Algorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    (Algorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
])
def test_rfc7616_example(algorithm: Algorithm, response: str) -> None:
    challenge = dataclasses.replace(parse_challenge(RFC7616_CHALLENGE), algorithm=algorithm)
    creds = authorization(challenge, username="Mufasa", password="Circle of Life", method="GET",
                          uri="/dir/index.html", cnonce=RFC7616_CNONCE)
    assert creds.response == response
    assert (creds.qop, creds.nc, creds.cnonce, creds.opaque) == (
        "auth", "00000001", RFC7616_CNONCE, "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    assert parse_credentials(creds.header_value()) == creds


def test_rfc7616_authorization_header_parses() -> None:
    value = ('Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, '
             'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
             f'cnonce="{RFC7616_CNONCE}", qop=auth, '
             'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
             'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    c = parse_credentials(value)
    ha1 = Algorithm.SHA256.hash("Mufasa:http-auth@example.org:Circle of Life")
    assert compute_response(Algorithm.SHA256, ha1=ha1, nonce=c.nonce, method="GET", uri=c.uri, qop=c.qop, nc=c.nc,
                            cnonce=c.cnonce) == c.response


def test_rfc2617_example() -> None:  # RFC 2617 §3.5
    challenge = parse_challenge('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    assert challenge.algorithm is Algorithm.MD5  # the default when absent
    creds = authorization(challenge, username="Mufasa", password="Circle Of Life", method="GET",
                          uri="/dir/index.html", cnonce="0a4f113b")
    assert creds.response == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_style_challenge_has_no_qop() -> None:
    challenge = Challenge("r", "n")
    creds = authorization(challenge, username="u", password="p", method="INVITE", uri="sip:x", cnonce="c")
    ha1, ha2 = Algorithm.MD5.hash("u:r:p"), Algorithm.MD5.hash("INVITE:sip:x")
    assert creds.response == Algorithm.MD5.hash(f"{ha1}:n:{ha2}")
    assert (creds.qop, creds.nc, creds.cnonce) == (None, None, None)
    assert "qop" not in creds.header_value() and "nc=" not in creds.header_value()


def test_sess_and_auth_int() -> None:
    challenge = Challenge("r", "n", Algorithm.SHA256_SESS, None, ("auth-int",))
    creds = authorization(challenge, username="u", password="p", method="MESSAGE", uri="sip:x", cnonce="c",
                          nc=3, body=b"hello")
    h = Algorithm.SHA256.hash
    ha1 = h(f"{h('u:r:p')}:n:c")
    ha2 = h(f"MESSAGE:sip:x:{Algorithm.SHA256.hash_bytes(b'hello')}")
    assert creds.response == h(f"{ha1}:n:00000003:c:auth-int:{ha2}") and creds.nc == "00000003"


def test_userhash_on_the_client() -> None:
    challenge = Challenge("r", "n", Algorithm.SHA256, None, ("auth",), userhash=True)
    creds = authorization(challenge, username="u", password="p", method="REGISTER", uri="sip:r", cnonce="c")
    assert creds.username == Algorithm.SHA256.hash("u:r") and creds.userhash


# -- header value parsing ----------------------------------------------------------------------------

def test_parse_quoted_escapes_and_case() -> None:
    p = parse_digest('digest  Realm="a, \\"b\\" \\\\ c",NONCE=xyz ,  , opaque="" ,stale=TRUE')
    assert p == {"realm": 'a, "b" \\ c', "nonce": "xyz", "opaque": "", "stale": "TRUE"}
    c = parse_challenge('Digest realm="a, \\"b\\"", nonce="n", stale=TRUE, algorithm=md5')
    assert c.stale and c.algorithm is Algorithm.MD5 and c.realm == 'a, "b"'
    assert parse_challenge(c.header_value()) == c  # quoting round trips


@pytest.mark.parametrize("value, text", [
    ("Basic abc", "not a Digest"),
    ("Digest", "without parameters"),
    ("Digest realm", "malformed"),
    ('Digest realm="x', "malformed"),
    ('Digest realm="x" nonce="y"', "malformed"),
    ("Digest realm=a b", "malformed"),
    ('Digest realm="a\r\nb"', "malformed"),
    ('Digest realm="a", REALM="b"', "twice"),
    ("Digest " + ", ".join(f"p{i}=v" for i in range(33)), "more than 32"),
    ('Digest realm="' + "x" * 5000 + '"', "longer than 4096"),
])
def test_malformed_values(value: str, text: str) -> None:
    with pytest.raises(AuthError, match=text) as info:
        parse_digest(value)
    assert info.value.status == 400 and isinstance(info.value, SipError)


@pytest.mark.parametrize("value, text", [
    ('Digest realm="r"', "without realm or nonce"),
    ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "unsupported algorithm"),
])
def test_unusable_challenges(value: str, text: str) -> None:
    with pytest.raises(AuthError, match=text):
        parse_challenge(value)


@pytest.mark.parametrize("value, text", [
    ('Digest username="u", realm="r", nonce="n", uri="sip:x"', "without response"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth', "without cnonce"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, cnonce="c", nc=xyz', "hex"),
    ('Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth, cnonce="c", nc=123456789',
     "hex"),
])
def test_malformed_credentials(value: str, text: str) -> None:
    with pytest.raises(AuthError, match=text):
        parse_credentials(value)


def test_choose_challenge_takes_the_first_we_support() -> None:
    values = ['Digest realm="r", nonce="1", algorithm=SHA-512-256', "garbage",
              'Digest realm="r", nonce="2", algorithm=SHA-256', 'Digest realm="r", nonce="3", algorithm=MD5']
    chosen = choose_challenge(values)
    assert chosen is not None and (chosen.nonce, chosen.algorithm) == ("2", Algorithm.SHA256)
    assert choose_challenge(values[:2]) is None


def test_client_refuses_unknown_qop() -> None:
    with pytest.raises(AuthError):
        authorization(Challenge("r", "n", qop=("auth-conf",)), username="u", password="p", method="M", uri="u",
                      cnonce="c")


# -- server: challenge -> client -> verify -----------------------------------------------------------

SECRET = b"s" * 32
REALM = "pbx.example.com"
URI = "sip:pbx.example.com"
USERS = {"alice": StoredSecret(password="wonderland"),
         "bob": StoredSecret(ha1_md5=Algorithm.MD5.hash(f"bob:{REALM}:builder"),
                             ha1_sha256=Algorithm.SHA256.hash(f"bob:{REALM}:builder"))}


def lookup(username: str, realm: str) -> StoredSecret | None:
    assert realm == REALM
    return USERS.get(username)


def counter_random() -> object:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def server(**kwargs: object) -> DigestServer:
    return DigestServer(realm=REALM, secret=SECRET, random=counter_random(), **kwargs)  # type: ignore[arg-type]


def test_challenges_offer_sha256_first() -> None:
    values = server().challenges(1000.0)
    challenges = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in challenges] == [Algorithm.SHA256, Algorithm.MD5]
    assert {c.nonce for c in challenges} == {challenges[0].nonce} and challenges[0].qop == ("auth",)
    assert all(c.realm == REALM and c.opaque and not c.stale for c in challenges)
    assert parse_challenge(server().challenges(1000.0, stale=True)[0]).stale


@pytest.mark.parametrize("algorithm", list(Algorithm))
@pytest.mark.parametrize("user, password", [("alice", "wonderland"), ("bob", "builder")])
def test_round_trip_every_algorithm(algorithm: Algorithm, user: str, password: str) -> None:
    srv = server(algorithms=(algorithm,))
    client = DigestClient(user, password, random=counter_random())  # type: ignore[arg-type]
    value = client.respond(srv.challenges(1000.0)[0], method="REGISTER", uri=URI)
    verdict = srv.verify(value, method="REGISTER", uri=URI, now=1001.0, lookup=lookup)
    assert (verdict.outcome, verdict.username) == (Outcome.OK, user)
    # the next request reuses the nonce with nc=2 (no new round trip)
    second = client.authorize(REALM, method="INVITE", uri=URI)
    assert second is not None and "nc=00000002" in second
    assert srv.verify(second, method="INVITE", uri=URI, now=1002.0, lookup=lookup).outcome is Outcome.OK


def authorized(srv: DigestServer, *, user: str = "alice", password: str = "wonderland", now: float = 1000.0,
               method: str = "REGISTER", uri: str = URI, index: int = 0) -> str:
    challenge = parse_challenge(srv.challenges(now)[index])
    return authorization(challenge, username=user, password=password, method=method, uri=uri,
                         cnonce="abc").header_value()


def test_wrong_password_and_unknown_user_look_the_same() -> None:
    srv = server()
    wrong = srv.verify(authorized(srv, password="nope"), method="REGISTER", uri=URI, now=1001, lookup=lookup)
    unknown = srv.verify(authorized(srv, user="mallory"), method="REGISTER", uri=URI, now=1001, lookup=lookup)
    assert wrong == unknown
    assert wrong.outcome is Outcome.FAILED and wrong.username is None


@pytest.mark.parametrize("change, reason", [
    (lambda c: dataclasses.replace(c, nonce=c.nonce[:-2] + ("AA" if c.nonce[-2:] != "AA" else "BB")), "not ours"),
    (lambda c: dataclasses.replace(c, nonce="x" * 43), "not ours"),
    (lambda c: dataclasses.replace(c, opaque="forged"), "not ours"),
    (lambda c: dataclasses.replace(c, opaque=None), "not ours"),
    (lambda c: dataclasses.replace(c, realm="other.example.com"), "wrong realm"),
    (lambda c: dataclasses.replace(c, uri="sip:elsewhere.example.com"), "uri"),
    (lambda c: dataclasses.replace(c, algorithm="SHA-512-256"), "algorithm"),
    (lambda c: dataclasses.replace(c, algorithm="MD5-sess"), "algorithm"),  # valid, but not offered
    (lambda c: dataclasses.replace(c, qop=None, nc=None, cnonce=None), "qop"),
    (lambda c: dataclasses.replace(c, nc="00000000"), "qop"),
    (lambda c: dataclasses.replace(c, response="0" * 64), "bad credentials"),
    (lambda c: dataclasses.replace(c, nc="00000002"), "bad credentials"),  # nc is inside the hash
    (lambda c: dataclasses.replace(c, userhash=True), "userhash"),
])
def test_tampering_fails(change: object, reason: str) -> None:
    srv = server()
    creds = change(parse_credentials(authorized(srv)))  # type: ignore[operator]
    verdict = srv.verify(creds.header_value(), method="REGISTER", uri=URI, now=1001, lookup=lookup)
    assert verdict.outcome is Outcome.FAILED and reason in verdict.reason


def test_uri_check_can_be_skipped_and_method_counts() -> None:
    srv = server()
    value = authorized(srv, uri="sip:alias.example.com")
    assert srv.verify(value, method="REGISTER", uri=None, now=1001, lookup=lookup).outcome is Outcome.OK
    value = authorized(srv)
    assert srv.verify(value, method="INVITE", uri=URI, now=1001, lookup=lookup).outcome is Outcome.FAILED


def test_expired_nonce_is_stale_only_with_the_right_password() -> None:
    srv = server(nonce_lifetime=60.0)
    ok = authorized(srv, now=1000.0)
    assert srv.verify(ok, method="REGISTER", uri=URI, now=1060.0, lookup=lookup).outcome is Outcome.OK
    stale = srv.verify(authorized(srv, now=1000.0), method="REGISTER", uri=URI, now=1060.5, lookup=lookup)
    assert (stale.outcome, stale.username) == (Outcome.STALE, "alice")
    wrong = authorized(srv, now=1000.0, password="nope")
    assert srv.verify(wrong, method="REGISTER", uri=URI, now=1061, lookup=lookup).outcome is Outcome.FAILED
    future = authorized(srv, now=2000.0)  # issued "later" than now: a clock step; ask again
    assert srv.verify(future, method="REGISTER", uri=URI, now=1000, lookup=lookup).outcome is Outcome.STALE


def test_nonces_from_another_secret_are_not_ours() -> None:
    other = DigestServer(realm=REALM, secret=b"t" * 32)
    verdict = server().verify(authorized(other), method="REGISTER", uri=URI, now=1001, lookup=lookup)
    assert verdict.outcome is Outcome.FAILED


def nc_request(challenge: Challenge, nc: int, method: str = "REGISTER") -> str:
    return authorization(challenge, username="alice", password="wonderland", method=method, uri=URI, cnonce="c",
                         nc=nc).header_value()


def test_replayed_nonce_count_fails_but_reordering_is_fine() -> None:
    srv = server()
    ch = parse_challenge(srv.challenges(1000.0)[0])

    def outcome(nc: int) -> Outcome:
        return srv.verify(nc_request(ch, nc), method="REGISTER", uri=URI, now=1001, lookup=lookup).outcome

    assert [outcome(n) for n in (1, 3, 2, 5, 4)] == [Outcome.OK] * 5  # parallel requests, out of order
    assert [outcome(n) for n in (1, 3, 5)] == [Outcome.FAILED] * 3  # replays
    assert outcome(100) is Outcome.OK
    assert outcome(36) is Outcome.FAILED  # 64 or more behind the highest: no longer tracked, refused
    assert outcome(37) is Outcome.OK  # 63 behind and not seen
    assert outcome(0xFFFFFFFF) is Outcome.OK  # a jump far past the window (and no giant shift)
    assert [outcome(n) for n in (0xFFFFFFFF, 101)] == [Outcome.FAILED, Outcome.FAILED]
    assert outcome(0xFFFFFFFE) is Outcome.OK


def test_nonce_table_is_bounded_and_forgotten_nonces_are_stale() -> None:
    srv = server(max_nonces=3)
    challenges = [parse_challenge(srv.challenges(1000.0 + i)[0]) for i in range(5)]
    for ch in challenges:
        assert srv.verify(nc_request(ch, 1), method="REGISTER", uri=URI, now=1010, lookup=lookup).outcome \
            is Outcome.OK
    assert len(srv._counts) == 3  # the bound holds
    # the two forgotten ones cannot be replayed: stale, so the client takes a fresh nonce
    for ch in challenges[:2]:
        assert srv.verify(nc_request(ch, 1), method="REGISTER", uri=URI, now=1010, lookup=lookup).outcome \
            is Outcome.STALE
    # the tracked ones still count
    assert srv.verify(nc_request(challenges[4], 1), method="REGISTER", uri=URI, now=1010,
                      lookup=lookup).outcome is Outcome.FAILED
    assert srv.verify(nc_request(challenges[4], 2), method="REGISTER", uri=URI, now=1010,
                      lookup=lookup).outcome is Outcome.OK


def test_failed_attempts_do_not_burn_nonce_counts() -> None:
    srv = server()
    ch = parse_challenge(srv.challenges(1000.0)[0])
    forged = parse_credentials(nc_request(ch, 1))
    forged = dataclasses.replace(forged, response="f" * 64)
    assert srv.verify(forged.header_value(), method="REGISTER", uri=URI, now=1001, lookup=lookup).outcome \
        is Outcome.FAILED
    assert srv.verify(nc_request(ch, 1), method="REGISTER", uri=URI, now=1001, lookup=lookup).outcome is Outcome.OK


def test_malformed_authorization_raises_400() -> None:
    with pytest.raises(AuthError) as info:
        server().verify('Digest username="u"', method="REGISTER", uri=URI, now=1, lookup=lookup)
    assert info.value.status == 400


def test_client_counts_per_nonce_and_resets_on_a_new_one() -> None:
    srv = server()
    client = DigestClient("alice", "wonderland", random=counter_random())  # type: ignore[arg-type]
    assert client.authorize(REALM, method="REGISTER", uri=URI) is None
    first = srv.challenges(1000.0)[0]
    values = [client.respond(first, method="REGISTER", uri=URI) for _ in range(2)]
    assert [parse_credentials(v).nc for v in values] == ["00000001", "00000002"]
    assert parse_credentials(values[0]).cnonce != parse_credentials(values[1]).cnonce
    stale = srv.challenges(2000.0, stale=True)[0]
    assert parse_credentials(client.respond(stale, method="REGISTER", uri=URI)).nc == "00000001"


def test_server_configuration_is_checked() -> None:
    with pytest.raises(ValueError):
        DigestServer(realm=REALM, secret=b"short")
    with pytest.raises(ValueError):
        DigestServer(realm=REALM, secret=SECRET, algorithms=())


def test_credentials_value_round_trips() -> None:
    c = Credentials('we"ird\\user', REALM, "n", URI, "00", "SHA-256", "c", "o", "auth", "00000001")
    assert parse_credentials(c.header_value()) == c
