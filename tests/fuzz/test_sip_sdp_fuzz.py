"""Property tests: only SdpError escapes the SDP parser and negotiation, only AuthError the Digest parsers.

Random bytes, random line-shaped text and mutations of valid bodies. Whatever parses must serialize
to something that parses back to the same description. (The digest header parser lives here too: it
is the other parser of peer text in this part of sipcore.)
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipcore.digest import (
    AuthError,
    DigestServer,
    Outcome,
    StoredSecret,
    authorization,
    parse_challenge,
    parse_credentials,
    parse_digest,
)
from sipcore.offer_answer import LocalMedia, build_answer, build_offer, make_origin, process_answer
from sipcore.sdp import SdpError, SessionDescription, parse_sdp

SEEDS = [
    b"v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=rtcp:49171\r\na=sendrecv\r\n",
    b"v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=Full\r\ni=info\r\nu=http://example.com/x\r\ne=a@example.com\r\n"
    b"p=+1 617 555-6011\r\nc=IN IP6 2001:db8::2\r\nb=AS:128\r\nt=3034423619 3042462419\r\nr=7d 1h 0 25h\r\n"
    b"z=2882844526 -1h 2898848070 0\r\nk=prompt\r\na=recvonly\r\nm=audio 49170/2 RTP/AVP 0 101\r\n"
    b"i=main\r\nc=IN IP6 2001:db8::3\r\nb=TIAS:64000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=rtcp:53020 IN IP6 2001:db8::4\r\na=inactive\r\nm=video 0 RTP/AVP 31\r\nm=application 9 TCP/BFCP *\r\n",
]
LOCAL = LocalMedia(address="203.0.113.5", port=40000)
ORIGIN = make_origin("203.0.113.5", 1)
OUR_OFFER = build_offer(LOCAL, ORIGIN)


def check(data: bytes | str) -> None:
    """The property: SdpError or a description that round-trips, negotiates or fails with SdpError."""
    try:
        d = parse_sdp(data)
    except SdpError:
        return
    again = parse_sdp(d.to_bytes())
    assert again == d and again.to_bytes() == d.to_bytes()
    for negotiate in (lambda: build_answer(d, LOCAL, ORIGIN), lambda: process_answer(OUR_OFFER, d),
                      lambda: process_answer(d, d)):
        try:
            negotiate()
        except SdpError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    check(data)


_LINE = st.tuples(st.sampled_from("vosiuepcbtrzkamx"), st.sampled_from(["=", "=", "=", ":", ""]),
                  st.text(alphabet=" 0123456789.:/-IPN4 6abcdefmrtpsuvAVPCMUrtpmapfmtpsendonly\t\x00é*",
                          max_size=30))


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, max_size=25), st.sampled_from(["\r\n", "\n"]))
def test_line_shaped_text(lines: list[tuple[str, str, str]], eol: str) -> None:
    check(eol.join(["v=0", *("".join(line) for line in lines)]) + eol)


_MUTATION = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 2000), st.integers(1, 20)),
    st.tuples(st.just("insert"), st.integers(0, 2000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("replace"), st.integers(0, 2000), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("dup_line"), st.integers(0, 40), st.integers(0, 40)),
    st.tuples(st.just("swap_lines"), st.integers(0, 40), st.integers(0, 40)),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    for kind, a, b in mutations:
        if kind in ("dup_line", "swap_lines"):
            lines = data.split(b"\r\n")
            i, j = a % len(lines), b % len(lines)
            if kind == "dup_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            data = b"\r\n".join(lines)
            continue
        pos = a % (len(data) + 1)
        if kind == "delete":
            data = data[:pos] + data[pos + b:]
        elif kind == "insert":
            data = data[:pos] + b + data[pos:]
        else:
            data = data[:pos] + b + data[pos + 1:]
    return data


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_bodies(seed: bytes, mutations: list[tuple]) -> None:
    check(mutate(seed, mutations))


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SEEDS), st.sampled_from(["sendrecv", "sendonly", "recvonly", "inactive", None]))
def test_valid_seeds_negotiate(seed: bytes, direction: str | None) -> None:
    d = parse_sdp(seed)
    assert isinstance(d, SessionDescription)
    check(seed if direction is None else seed.replace(b"a=sendrecv", b"a=" + direction.encode()))


# -- Digest header values ---------------------------------------------------------------------------

REALM = "pbx.example.com"
URI = "sip:pbx.example.com"
SERVER = DigestServer(realm=REALM, secret=b"s" * 32, random=lambda n: b"\x01" * n)


def lookup(username: str, realm: str) -> StoredSecret | None:
    return StoredSecret(password="pw") if username == "alice" else None


VALID = authorization(parse_challenge(SERVER.challenges(1000.0)[0]), username="alice", password="pw",
                      method="REGISTER", uri=URI, cnonce="c").header_value()
_HEADER_TEXT = st.text(alphabet='Digest rlmnoqu=",\\ \t\x00\r\n,abcxyzé\udcff', max_size=120)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), _HEADER_TEXT, st.builds(lambda s: "Digest " + s, _HEADER_TEXT)))
def test_digest_parsers_raise_only_auth_error(value: str) -> None:
    for parse in (parse_digest, parse_challenge, parse_credentials):
        try:
            parse(value)
        except AuthError:
            pass
    try:
        SERVER.verify(value, method="REGISTER", uri=URI, now=1001.0, lookup=lookup)
    except AuthError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(['"', ",", "\\", " ", "=", "a", "0", "é", ""]),
                          st.integers(0, 3)), min_size=1, max_size=4))
def test_mutated_authorization(edits: list[tuple[int, str, int]]) -> None:
    value = VALID
    for pos, text, cut in edits:
        pos %= len(value) + 1
        value = value[:pos] + text + value[pos + cut:]
    try:
        verdict = SERVER.verify(value, method="REGISTER", uri=URI, now=1001.0, lookup=lookup)
    except AuthError:
        return
    if verdict.outcome is Outcome.OK:  # only if every field that matters is still what it was
        original, mutated = parse_credentials(VALID), parse_credentials(value)
        assert (mutated.username, mutated.response.lower(), mutated.nonce, mutated.uri, mutated.cnonce) == (
            original.username, original.response, original.nonce, original.uri, original.cnonce)
