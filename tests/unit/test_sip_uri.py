"""URIs: parsing (RFC 3261 §19.1, §25.1), IPv6 references (RFC 5118), comparison (§19.1.4)."""

from __future__ import annotations

import pytest

from sipcore.syntax import ParseError
from sipcore.uri import AbsoluteUri, SipUri, parse_uri

PARSE = [
    ("sip:alice@atlanta.com", SipUri("atlanta.com", "alice")),
    ("sips:alice@atlanta.com:5061", SipUri("atlanta.com", "alice", port=5061, secure=True)),
    ("sip:alice:secretword@atlanta.com;transport=tcp",
     SipUri("atlanta.com", "alice", "secretword", params=(("transport", "tcp"),))),
    ("sip:+1-212-555-1212:1234@gateway.com;user=phone",
     SipUri("gateway.com", "+1-212-555-1212", "1234", params=(("user", "phone"),))),
    ("sip:alice@192.0.2.4", SipUri("192.0.2.4", "alice")),
    ("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
     SipUri("atlanta.com", params=(("method", "REGISTER"),), headers=(("to", "alice%40atlanta.com"),))),
    ("sip:alice;day=tuesday@atlanta.com", SipUri("atlanta.com", "alice;day=tuesday")),
    ("sip:proxy.example.com;lr", SipUri("proxy.example.com", params=(("lr", None),))),
    ("sip:host.example.com.", SipUri("host.example.com.")),
    ("sip:a@b.c?subject=&x=y", SipUri("b.c", "a", headers=(("subject", ""), ("x", "y")))),
    # RFC 5118: IPv6 references
    ("sip:[2001:db8::10]", SipUri("[2001:db8::10]")),
    ("sip:user@[2001:db8::10]:5070", SipUri("[2001:db8::10]", "user", port=5070)),
    ("sip:[2001:db8::10:5070]", SipUri("[2001:db8::10:5070]")),  # §4.3: no port, all address
    ("sip:user@[::ffff:192.0.2.10];maddr=[2001:db8::1]",
     SipUri("[::ffff:192.0.2.10]", "user", params=(("maddr", "[2001:db8::1]"),))),
    ("sip:[2001:db8:0:0:1:0:0:1]", SipUri("[2001:db8:0:0:1:0:0:1]")),
    # other schemes stay opaque
    ("tel:+1-201-555-0123", AbsoluteUri("tel", "+1-201-555-0123")),
    ("urn:service:sos", AbsoluteUri("urn", "service:sos")),
    ("HTTP://www.example.com/a?b=c", AbsoluteUri("http", "//www.example.com/a?b=c")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE, ids=[t for t, _ in PARSE])
def test_parse(text: str, expected: object) -> None:
    uri = parse_uri(text)
    assert uri == expected
    assert parse_uri(str(uri)) == uri  # rendering round-trips


def test_rendering_is_canonical() -> None:
    assert str(parse_uri("SIP:Alice@Example.COM;Transport=TCP")) == "sip:Alice@Example.COM;transport=TCP"
    assert str(SipUri("[2001:db8::1]", "u", port=5060, params=(("lr", None),))) == "sip:u@[2001:db8::1]:5060;lr"


def test_accessors() -> None:
    uri = parse_uri("sips:b%6Fb@[2001:db8::9:1]:5061;transport=TLS;maddr=239.255.255.1;lr")
    assert isinstance(uri, SipUri)
    assert uri.scheme == "sips" and uri.user_unescaped == "bob" and uri.address == "2001:db8::9:1"
    assert uri.transport == "tls" and uri.maddr == "239.255.255.1" and uri.lr
    assert uri.param("TRANSPORT") == "TLS" and uri.param("nope", "d") == "d" and not uri.has_param("ttl")


BAD = [
    "", "sip:", "sip:@example.com", "example.com", "<sip:a@b.c>", "sip:a@b.c ", " sip:a@b.c",
    "sip:a b@c.d", "sip:a@b c.d", "sip:a@b.c;x=y z",
    "sip:2001:db8::10",  # RFC 5118 §4.2: IPv6 without brackets
    "sip:[2001:db8::10", "sip:[2001:db8::10]x", "sip:[2001:db8::zz]", "sip:[192.0.2.1]",
    "sip:[fe80::1%25eth0]", "sip:a@b.c:", "sip:a@b.c:65536", "sip:a@b.c:12a", "sip:a@b.c:123456",
    "sip:a@256.1.1.1", "sip:a@1.2.3", "sip:a@-host.com", "sip:a@host-.com", "sip:a@a..b", "sip:a@example.123",
    "sip:a@b@c.d", "sip:a%2@b.c", "sip:a%zz@b.c", "sip:a@b.c;%", "sip:a@b.c;=x", "sip:a@b.c?x",
    "sip:a@b.c;x=", "sip:a@b.c;x=\"q\"", "sip:a\"b@c.d", "sip:a@b_c.d",
    "1sip:x", "si p:x", "foo:", "foo:a b", "foo:<x>", "foo:%g0",
]


@pytest.mark.parametrize("text", BAD)
def test_malformed(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


@pytest.mark.parametrize("kwargs", [
    {"host": "a b"}, {"host": "x", "user": ""}, {"host": "x", "user": "a@b"}, {"host": "x", "password": "p"},
    {"host": "x", "port": 70000}, {"host": "x", "port": "5060"}, {"host": "x", "params": (("a b", None),)},
    {"host": "x", "params": (("a", ""),)}, {"host": "x", "params": ("lr",)}, {"host": "x", "headers": (("a", "b c"),)},
])
def test_records_built_in_code_are_validated(kwargs: dict) -> None:
    with pytest.raises(ParseError):
        SipUri(**kwargs)


def test_absolute_uri_validation() -> None:
    with pytest.raises(ParseError):
        AbsoluteUri("sip", "a@b")
    with pytest.raises(ParseError):
        AbsoluteUri("1x", "a")
    assert AbsoluteUri("TEL", "+1").scheme == "tel"


# RFC 3261 §19.1.4, the RFC's own examples
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:[2001:db8::10]:5060", "sip:[2001:DB8::10]:5060"),
]
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),  # user differs
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:a@b.com", "sips:a@b.com"),
    ("sip:a@b.com;maddr=1.2.3.4", "sip:a@b.com"),
    ("sip:a@b.com;user=phone", "sip:a@b.com"),
    ("sip:a@b.com;x=1", "sip:a@b.com;x=2"),
    ("sip:a@b.com", "tel:+1234"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    assert parse_uri(a).equivalent(parse_uri(b)) and parse_uri(b).equivalent(parse_uri(a))


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent(a: str, b: str) -> None:
    assert not parse_uri(a).equivalent(parse_uri(b)) and not parse_uri(b).equivalent(parse_uri(a))


def test_absolute_uri_equivalence() -> None:
    assert parse_uri("tel:%2B1").equivalent(parse_uri("TEL:+1"))
    assert not parse_uri("tel:+1").equivalent(parse_uri("tel:+2"))


@pytest.mark.parametrize("text", [t for t, _ in PARSE] + BAD + [
    "sip:alice@atlanta.com;transport=tcp;lr", "sip:+4930123456@203.0.113.9:5060", "sips:b@[::1]:5061",
    "sip:a@b.c;x", "sip:a@b.c;;x", "sip:a@b.c;x=1=2", "sip:a@b.c;X=Y", "sip:a@B.C:00005", "sip:a;b=c@d.e;f"])
def test_the_scanner_agrees_with_the_parser(text: str) -> None:
    """The fast path takes the usual URIs and returns what the full parser returns; it declines
    (None) whatever it does not prove, and never accepts what the parser refuses."""
    from sipcore.uri import _parse_uri, _scan_sip_uri
    got = _scan_sip_uri(text)
    if got is None:
        return
    assert got == _parse_uri(text) and repr(got) == repr(_parse_uri(text))


def test_the_scanner_takes_the_usual_uris() -> None:
    from sipcore.uri import _scan_sip_uri
    for text in ("sip:alice@atlanta.com", "sip:+4930123456@203.0.113.9:5060", "sip:p1.example.com;lr",
                 "sips:bob@biloxi.example.com;transport=tcp"):
        assert _scan_sip_uri(text) == parse_uri(text)
    for text in ("sip:a%41@b.c", "sip:a:pw@b.c", "sip:a@b.c?x=y", "sip:[::1]", "SIP:a@b.c"):
        assert _scan_sip_uri(text) is None  # left to the full parser
