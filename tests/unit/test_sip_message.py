"""SIP messages: parsing (RFC 3261 §7, §20, §25), accessors, serialization, building, responses."""

from __future__ import annotations

import pytest

from sipcore.framing import PING, StreamDecoder
from sipcore.headers import LIST_HEADERS, CSeq, MediaType, Method, NameAddr, Via, canonical_name
from sipcore.message import Request, Response, make_error_response, make_response
from sipcore.parser import MessageLimits, parse_message
from sipcore.syntax import ParseError, split_commas
from sipcore.uri import SipUri

SDP = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n"
       b"t=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def invite(*extra: str, body: bytes = SDP, cl: int | None = None) -> bytes:
    lines = [
        "INVITE sip:bob@biloxi.example.com SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport",
        "Via: SIP/2.0/TCP [2001:db8::9:1]:5070;branch=z9hG4bKother;received=[2001:db8::9:255]",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.example.com>",
        'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@pc33.atlanta.example.com>;expires=3600",
        "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
        "Content-Type: application/sdp",
        *extra,
        f"Content-Length: {len(body) if cl is None else cl}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_typical_invite() -> None:
    msg = req(invite())
    msg.validate()
    assert msg.method is Method.INVITE and msg.method == "INVITE" and msg.known_method is Method.INVITE
    assert msg.uri == SipUri("biloxi.example.com", "bob") and msg.version == "SIP/2.0"
    top = msg.via
    assert (top.transport, top.host, top.port, top.branch, top.wants_rport, top.rport, top.received) == \
        ("UDP", "pc33.atlanta.example.com", 5060, "z9hG4bK776asdhds", True, None, None)
    second = msg.vias[1]
    assert (second.host, second.address, second.port) == ("[2001:db8::9:1]", "2001:db8::9:1", 5070)
    assert second.received == "[2001:db8::9:255]"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == CSeq(314159, "INVITE") and msg.cseq.method is Method.INVITE
    assert msg.from_.display_name == "Alice A." and msg.from_tag == "1928301774"
    assert msg.to.display_name == "Bob" and msg.to_tag is None
    assert [c.uri for c in msg.contacts] == [SipUri("pc33.atlanta.example.com", "alice")]
    assert msg.contacts[0].expires == 3600
    assert [r.uri.host for r in msg.record_routes] == ["p2.example.com", "p1.example.com"]  # type: ignore[union-attr]
    assert [r.uri.host for r in msg.routes] == ["p3.example.com"]  # type: ignore[union-attr]
    assert msg.max_forwards == 70 and msg.expires is None
    assert msg.content_type == MediaType("application", "sdp") and msg.content_length == len(SDP)
    assert msg.body == SDP


def test_response_accessors() -> None:
    data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1;received=192.0.2.1;rport=5062\r\n"
            b"To: <sip:b@example.com>;tag=abc\r\nFrom: <sip:a@example.com>;tag=def\r\nCall-ID: x\r\n"
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    msg = parse_message(data)
    assert isinstance(msg, Response)
    msg.validate()
    assert (msg.status, msg.reason, msg.is_provisional, msg.is_final) == (180, "Ringing", True, False)
    assert msg.via.received == "192.0.2.1" and msg.via.rport == 5062 and msg.to_tag == "abc"


COMPACT = [("i", "Call-ID"), ("m", "Contact"), ("e", "Content-Encoding"), ("c", "Content-Type"),
           ("f", "From"), ("s", "Subject"), ("k", "Supported"), ("t", "To"), ("v", "Via"), ("o", "Event"),
           ("u", "Allow-Events"), ("r", "Refer-To"), ("b", "Referred-By"), ("x", "Session-Expires"),
           ("y", "Identity"), ("n", "Identity-Info"), ("a", "Accept-Contact"), ("j", "Reject-Contact"),
           ("d", "Request-Disposition"), ("l", "Content-Length")]


@pytest.mark.parametrize(("compact", "full"), COMPACT)
def test_compact_forms(compact: str, full: str) -> None:
    assert canonical_name(compact) == canonical_name(compact.upper()) == (full.lower(), full)
    assert canonical_name(full.upper()) == (full.lower(), full)


def test_compact_forms_serialize_to_full_names() -> None:
    data = (b"OPTIONS sip:a@example.com SIP/2.0\r\nv: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
            b"t: <sip:a@example.com>\r\nf: <sip:b@example.com>;tag=1\r\ni: cid\r\n"
            b"cSeQ: 2 OPTIONS\r\nk: path, gruu\r\nc: text/plain\r\nl: 5\r\nsUbJeCt:  hi \r\n\r\nhello")
    msg = req(data)
    msg.validate()
    assert msg.to_bytes() == (
        b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        b"To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: cid\r\n"
        b"CSeq: 2 OPTIONS\r\nSupported: path, gruu\r\nContent-Type: text/plain\r\nSubject: hi\r\n"
        b"Content-Length: 5\r\n\r\nhello")
    assert msg.header("supported") == msg.header("K") == "path, gruu"
    assert msg.header_values("Supported") == ["path", "gruu"]


def test_comma_lists_split_across_and_within_lines() -> None:
    msg = req(invite(
        'Contact: "Smith, John" <sip:j,r@example.com>;q=0.5, <sip:k@example.com>',
        "Allow: INVITE, ACK,BYE", "Allow: CANCEL",
        'WWW-Authenticate: Digest realm="a, b", nonce="x", algorithm=MD5',
        'Authorization: Digest username="u", realm="r", nonce="n", uri="sip:a@b", response="c"',
        "Proxy-Authorization: Digest username=\"u\", realm=\"r\"",
        "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        "X-Unknown: a, b, c",
    ))
    assert [c.display_name for c in msg.contacts] == [None, "Smith, John", None]
    assert msg.contacts[1].uri.user == "j,r" and msg.contacts[1].q == "0.5"  # type: ignore[union-attr]
    assert msg.header_values("allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    for name in ("WWW-Authenticate", "Authorization", "Proxy-Authorization", "Date", "X-Unknown"):
        assert len(msg.header_values(name)) == 1 and "," in msg.header_values(name)[0]
        assert canonical_name(name)[0] not in LIST_HEADERS


@pytest.mark.parametrize(("value", "parts"), [
    ("a", ["a"]), ("a,b", ["a", "b"]), (" a , b ", ["a", "b"]), ('"x,y" <u>, z', ['"x,y" <u>', "z"]),
    ('"a\\",b" <s:x>,c', ['"a\\",b" <s:x>', "c"]), ("<a,b>,<c>", ["<a,b>", "<c>"]),
])
def test_split_commas(value: str, parts: list[str]) -> None:
    assert split_commas(value) == parts


@pytest.mark.parametrize("value", ["a,,b", ",a", "a,", '"a,b', "<a,b"])
def test_split_commas_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        split_commas(value)


def test_folding_and_quoted_strings() -> None:
    msg = req(invite("Subject: I know you're there,\r\n         pick up the phone\r\n\tand talk to me!",
                     'Reply-To: "Bob \\"The\\" \\\\ Builder" <sip:bob@example.com>'))
    assert msg.header("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert parse_message(msg.to_bytes()).header("Subject") == msg.header("Subject")
    from sipcore.headers import parse_name_addr
    assert parse_name_addr(msg.header("Reply-To") or "").display_name == 'Bob "The" \\ Builder'


def test_leading_crlf_and_datagram_without_final_empty_line() -> None:
    data = invite(body=b"")
    assert req(b"\r\n\r\n" + data).to_bytes() == req(data).to_bytes()
    assert req(data[:-2]).to_bytes() == req(data).to_bytes()  # ends after the last CRLF


@pytest.mark.parametrize(("data", "fragment"), [
    (b"", "only CRLF"), (b"\r\n\r\n", "only CRLF"), (b"INVITE sip:a@b.c SIP/2.0\r\nVia: x", "empty line"),
    (invite().replace(b"\r\nMax", b"\nMax"), "bare CR or LF"),
    (invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 7\r0"), "bare CR or LF"),
    (invite(cl=len(SDP) + 1), "only"), (invite(cl=-1), "Content-Length"),
    (invite("Content-Length: 7"), "conflicting"), (invite().replace(b"Content-Length: ", b"Content-Length: +"), "bad"),
    (invite().replace(b"Max-Forwards: 70", b"Max-Forwards 70"), "without a colon"),
    (invite().replace(b"Max-Forwards: 70", b"Max Forwards: 70"), "bad header name"),
    (invite().replace(b"Max-Forwards: 70", b": 70"), "bad header name"),
    (invite().replace(b"Max-Forwards", b"Max-F\xc3\xb6rwards"), "bad header name"),
    (b"INVITE sip:a@b.c SIP/2.0\r\n folded\r\nVia: x\r\n\r\n", "folded"),
    (invite().replace(b"INVITE sip", b"INV\xc3\x8bTE sip", 1), "bad method"),
    (invite().replace(b" SIP/2.0\r\n", b" SIP/2\r\n", 1), "version"),
    (invite().replace(b" SIP/2.0\r\n", b" HTTP/1.1\r\n", 1), "version"),
    (invite().replace(b"sip:bob@biloxi.example.com SIP", b" SIP", 1), "Request-URI"),
    (invite().replace(b"sip:bob@biloxi.example.com SIP", b"sip:a  SIP", 1), "request line"),
    (b"SIP/2.0 20 OK\r\n\r\n", "status"), (b"SIP/2.0 700 Huh\r\n\r\n", "status"),
    (b"SIP/2.0 099 Huh\r\n\r\n", "status"), (b"SIP/2.0 2\xd9\xa000 OK\r\n\r\n", "status"),
])
def test_malformed_datagrams(data: bytes, fragment: str) -> None:
    with pytest.raises(ParseError, match=fragment):
        parse_message(data)


def test_duplicate_equal_content_lengths_are_accepted() -> None:
    assert req(invite(f"l: {len(SDP)}")).body == SDP


def test_lowercase_version_is_accepted_and_normalised() -> None:
    msg = req(invite().replace(b" SIP/2.0\r\n", b" sip/2.0\r\n", 1))
    assert msg.version == "SIP/2.0"
    msg.validate()


def test_unknown_method_parses() -> None:
    data = invite().replace(b"INVITE", b"FROBNICATE")
    msg = req(data)
    msg.validate()
    assert msg.method == "FROBNICATE" and msg.known_method is None and not isinstance(msg.method, Method)


def test_limits() -> None:
    limits = MessageLimits(max_message_size=2000, max_headers=20, max_line_length=200)
    parse_message(invite(), limits=limits)
    with pytest.raises(ParseError) as info:
        parse_message(invite(body=b"x" * 2000), limits=limits)
    assert info.value.status == 513
    with pytest.raises(ParseError, match="more than 20") as info:
        parse_message(invite(*[f"X-{i}: {i}" for i in range(10)]), limits=limits)
    assert info.value.status == 400 and info.value.headers is not None and len(info.value.headers) == 20
    with pytest.raises(ParseError, match="longer than 200") as info:
        parse_message(invite("X-Long: " + "a" * 200), limits=limits)
    assert info.value.status == 400 and info.value.headers is not None
    with pytest.raises(ParseError, match="start line") as info:
        parse_message(invite().replace(b"sip:bob@", b"sip:" + b"b" * 200 + b"@", 1), limits=limits)
    assert info.value.status == 414
    # folded physical lines count once
    parse_message(invite("X-Folded: a" + "\r\n b" * 30), limits=MessageLimits(max_headers=20))
    with pytest.raises(ValueError):
        MessageLimits(max_headers=0)


def test_errors_carry_what_parsed() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(invite().replace(b"Max-Forwards: 70", b"garbage"))
    err = info.value
    assert err.method == "INVITE" and not err.is_response and err.headers is not None
    assert ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com") in err.headers
    answer = make_error_response(err, to_tag="t1")
    assert answer is not None and answer.status == 400 and answer.reason == "Bad Request"
    assert [n for n, _ in answer.headers] == ["Via", "Via", "To", "From", "Call-ID", "CSeq"]
    assert answer.to_tag == "t1" and answer.from_tag == "1928301774"
    with pytest.raises(ParseError) as info:
        parse_message(invite().replace(b"INVITE", b"ACK").replace(b"Max-Forwards: 70", b"garbage"))
    assert make_error_response(info.value) is None  # never answer an ACK


def test_round_trip_table() -> None:
    """parse -> serialize -> parse keeps every field; serializing again changes nothing."""
    samples = [
        invite(), invite(body=b""), invite("Subject: folded\r\n  twice\r\n  here"),
        invite("X-Bin: \xff\xfe".encode("latin-1").decode("utf-8", "surrogateescape")),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nTo: <sip:b@e.com>;tag=2\r\n"
        b"From: <sip:a@e.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nl: 3\r\n\r\nabc",
        b"MESSAGE sip:a@e.com SIP/2.0\r\nVia: SIP/2.0/TLS h.example.com;branch=z9hG4bK1\r\n"
        b"To: <sip:a@e.com>\r\nFrom: <sip:b@e.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 MESSAGE\r\n"
        b"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: 6\r\n\r\n\xe2\x82\xac\x00\xff\r",
    ]
    for data in samples:
        first = parse_message(data)
        first.validate()
        second = parse_message(first.to_bytes())
        second.validate()
        assert second.headers == first.headers and second.body == first.body
        assert (second.vias, second.cseq, second.call_id, second.from_, second.to, second.contacts) == \
            (first.vias, first.cseq, first.call_id, first.from_, first.to, first.contacts)
        assert second.to_bytes() == first.to_bytes() and second == first and hash(second) == hash(first)


def test_invalid_utf8_survives_a_round_trip() -> None:
    data = invite().replace(b"Bob <", b'"B\xffb" <')
    msg = req(data)
    assert msg.to.display_name == "B\udcffb"
    assert b'To: "B\xffb" <sip:bob@biloxi.example.com>\r\n' in msg.to_bytes()


def build_request() -> Request:
    return Request(
        Method.OPTIONS, SipUri("example.com", "bob"),
        [("v", Via("udp", "192.0.2.1", 5060, (("branch", "z9hG4bKabc"), ("rport", None)))),
         ("Max-Forwards", 70),
         ("To", NameAddr(SipUri("example.com", "bob"), "Bob")),
         ("From", NameAddr(SipUri("example.com", "alice"), "Alice Liddell", (("tag", "xyz"),))),
         ("Call-ID", "abc@192.0.2.1"), ("CSeq", CSeq(1, "OPTIONS")),
         ("Content-Length", "999"), ("Accept", "application/sdp")],
    )


def test_building_a_request() -> None:
    msg = build_request()
    msg.validate()
    assert msg.to_bytes() == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n"
        b"Max-Forwards: 70\r\nTo: Bob <sip:bob@example.com>\r\n"
        b"From: Alice Liddell <sip:alice@example.com>;tag=xyz\r\nCall-ID: abc@192.0.2.1\r\n"
        b"CSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n")
    assert bytes(msg) == msg.to_bytes() and req(bytes(msg)) == msg


def test_builders_return_new_messages() -> None:
    msg = build_request()
    via2 = Via("TCP", "proxy.example.com", params=(("branch", "z9hG4bKp"),))
    proxied = msg.prepend_header("Via", via2).replace_header("Max-Forwards", 69)
    assert [v.host for v in proxied.vias] == ["proxy.example.com", "192.0.2.1"] and proxied.max_forwards == 69
    assert [v.host for v in msg.vias] == ["192.0.2.1"] and msg.max_forwards == 70  # unchanged
    assert proxied.with_header("X-A", "1").header("x-a") == "1"
    assert proxied.without_header("accept").header("Accept") is None
    assert proxied.replace_header("Subject", "new").headers[-1] == ("Subject", "new")
    with_body = proxied.with_body(b"v=0\r\n", "application/sdp")
    assert with_body.content_length == 5 and with_body.content_type == MediaType("application", "sdp")
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in bytes(with_body)
    assert with_body.with_header("Content-Length", "3") is with_body
    assert msg.prepend_header("Record-Route", "<sip:rr.example.com;lr>").headers[0][0] == "Record-Route"


@pytest.mark.parametrize(("name", "value"), [
    ("X-Evil", "a\r\nVia: injected"), ("X-Evil", "a\nb"), ("X-Evil", "a\x00"), ("Bad Name", "x"), ("", "x"),
])
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(ParseError):
        build_request().with_header(name, value)


def test_constructor_validation() -> None:
    with pytest.raises(ParseError):
        Request("IN VITE", "sip:a@b.c")
    with pytest.raises(ParseError):
        Request("INVITE", "<sip:a@b.c>")
    with pytest.raises(ParseError):
        Response(99)
    with pytest.raises(ParseError):
        Response(200, "OK\r\nX: y")
    with pytest.raises(TypeError):
        Request("INVITE", "sip:a@b.c", [("X", 1.5)])  # type: ignore[list-item]
    with pytest.raises(ParseError):
        Via("UDP", "bad host")
    with pytest.raises(ParseError):
        CSeq(2**32, "INVITE")
    assert Response(299).reason == "OK" and Response(488).reason == "Not Acceptable Here"


def test_make_response() -> None:
    msg = req(invite("Timestamp: 54"))
    ok = make_response(msg, 200, to_tag="resp1", headers=[("Contact", "<sip:bob@192.0.2.4>")], body=b"x")
    assert ok.status == 200 and ok.reason == "OK"
    assert ok.header_values("Via") == msg.header_values("Via")
    assert ok.from_ == msg.from_ and ok.call_id == msg.call_id and ok.cseq == msg.cseq
    assert ok.to_tag == "resp1" and ok.to.uri == msg.to.uri
    assert ok.header("Timestamp") is None and ok.contacts[0].uri.host == "192.0.2.4"  # type: ignore[union-attr]
    assert ok.body == b"x" and ok.content_length == 1
    trying = make_response(msg, 100, to_tag="resp1")
    assert trying.to_tag is None and trying.header("Timestamp") == "54" and trying.reason == "Trying"
    tagged = req(invite().replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:b@e.com>;tag=old"))
    assert make_response(tagged, 486, "Busy", to_tag="new").to_tag == "old"
    assert make_response(tagged, 486, "Busy").reason == "Busy"
    with pytest.raises(ParseError):
        make_response(msg, 200, to_tag="bad tag")
    resp = parse_message(bytes(ok))
    resp.validate()


def test_make_error_response_for_a_validation_failure() -> None:
    msg = req(invite().replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"))
    with pytest.raises(ParseError) as info:
        msg.validate()
    answer = make_error_response(info.value, to_tag="z")
    assert answer is not None and answer.status == 400 and answer.cseq == CSeq(314159, "BYE")
    assert answer.to_tag == "z"
    with pytest.raises(ParseError) as info:
        req(invite().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)).validate()
    answer = make_error_response(info.value)
    assert answer is not None and answer.status == 505 and answer.reason == "Version Not Supported"


@pytest.mark.parametrize(("old", "new", "fragment"), [
    (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: a b", "Call-ID"),
    (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com", b"Call-ID: a@", "Call-ID"),
    (b"CSeq: 314159 INVITE", b"CSeq: 314159", "CSeq"),
    (b"CSeq: 314159 INVITE", b"CSeq: -1 INVITE", "CSeq"),
    (b"Max-Forwards: 70", b"Max-Forwards: 256", "Max-Forwards"),
    (b"Max-Forwards: 70", b"Max-Forwards: seventy", "Max-Forwards"),
    (b"Max-Forwards: 70", b"To: <sip:x@y.z>", "more than one To"),
    (b"Content-Type: application/sdp", b"Content-Type: sdp", "media type"),
    (b"Via: SIP/2.0/UDP pc33", b"Via: SIP/2.0 pc33", "Via"),
    (b";branch=z9hG4bK776asdhds", b";branch=", "Via"),
    (b"Route: <sip:p3.example.com;lr>", b"Route: <sip:p3.example.com;lr", "Route"),
    (b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=3600", b"Contact: *, <sip:a@b.c>", "Contact"),
    (b"From: \"Alice A.\"", b"From: \"Alice A.\" x", "From"),
    (b"INVITE sip:bob@biloxi.example.com", b"INVITE sip:bob@biloxi.example.com:99999", "Request-URI"),
])
def test_validate_rejects(old: bytes, new: bytes, fragment: str) -> None:
    data = invite().replace(old, new, 1)
    assert data != invite()
    with pytest.raises(ParseError, match=fragment) as info:
        req(data).validate()
    assert info.value.status == 400 and info.value.method == "INVITE"


def test_contact_wildcard_and_expires() -> None:
    data = (b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
            b"To: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: r1\r\n"
            b"CSeq: 2 REGISTER\r\nContact: *\r\nExpires: 0\r\nContent-Length: 0\r\n\r\n")
    msg = req(data)
    msg.validate()
    assert msg.contact_wildcard and msg.contacts == () and msg.expires == 0


def test_stream_decoder_keepalives_and_errors() -> None:
    one = invite()
    dec = StreamDecoder()
    events = dec.feed(b"\r\n\r\n" + one + b"\r\n" + one[:10])
    assert events[0] is PING and isinstance(events[1], Request) and len(events) == 2
    events = dec.feed(one[10:] + b"\r\n")
    assert len(events) == 1 and events[0] == events[0] and dec.buffered == 2
    assert dec.feed(b"\r\n") == [PING] and dec.buffered == 0
    # a malformed but framed message is not fatal
    bad = invite().replace(b"Max-Forwards: 70", b"garbage")
    events = dec.feed(bad + one)
    assert isinstance(events[0], ParseError) and not events[0].fatal and isinstance(events[1], Request)
    answer = make_error_response(events[0])
    assert answer is not None and answer.status == 400
    # Content-Length is mandatory on a stream
    (err,) = dec.feed(one.replace(b"Content-Length: ", b"X-Length: ") + one)
    assert isinstance(err, ParseError) and err.fatal and dec.closed and err.method == "INVITE"
    assert make_error_response(err) is not None


def test_stream_decoder_bounds() -> None:
    limits = MessageLimits(max_message_size=1000)
    dec = StreamDecoder(limits)
    (err,) = dec.feed(invite(body=b"x" * 1000))
    assert isinstance(err, ParseError) and err.status == 513 and err.fatal
    dec = StreamDecoder(limits)
    assert dec.feed(b"INVITE sip:a@b.c SIP/2.0\r\n" + b"X: y\r\n" * 100) == []
    (err,) = dec.feed(b"X: y\r\n" * 100)
    assert isinstance(err, ParseError) and err.status == 513 and dec.buffered == 0
    dec = StreamDecoder()
    for byte in invite():  # byte by byte: linear, and the same message at the end
        out = dec.feed(bytes([byte]))
    assert len(out) == 1 and out[0] == parse_message(invite())


def test_list_accessors_are_bounded() -> None:
    from sipcore.message import MAX_LIST_VALUES
    many = ", ".join(f"SIP/2.0/UDP h{i}.example.com" for i in range(MAX_LIST_VALUES + 1))
    msg = req(invite().replace(b"Via: SIP/2.0/UDP pc33", f"Via: {many}\r\nVia: SIP/2.0/UDP pc33".encode(), 1))
    assert msg.via.host == "h0.example.com"  # the top one alone is fine
    with pytest.raises(ParseError, match="more than"):
        _ = msg.vias
    assert len(msg.header_values("Via")) == MAX_LIST_VALUES + 3


def test_parse_memo_is_bounded_and_shares_immutable_records() -> None:
    from sipcore.syntax import Memo
    memo = Memo(max_entries=2, max_text=5)
    for text in ("a", "b", "c", "toolong"):
        memo.remember(text, text.upper())
    assert dict(memo) == {"c": "C"}
    first, second = req(invite()), req(invite())
    assert first.from_ is second.from_  # the same raw value parses once
    assert isinstance(first.with_header("X", "1"), Request)


# --- with_top_via ------------------------------------------------------------------------------------

STAMPED = Via("UDP", "pc33.atlanta.example.com", 5060,
              (("branch", "z9hG4bK776asdhds"), ("rport", "5062"), ("received", "192.0.2.7")))


def test_with_top_via_replaces_only_the_first_value() -> None:
    msg = req(invite())
    msg.validate()
    stamped = msg.with_top_via(STAMPED)
    assert stamped.header_values("Via") == [str(STAMPED), msg.header_values("Via")[1]]
    assert stamped.via is STAMPED and stamped.vias[0] is STAMPED and stamped.vias[1] == msg.vias[1]
    assert stamped.cseq is msg.cseq and stamped.from_ is msg.from_ and stamped.uri is msg.uri  # cache kept
    assert [n for n, _ in stamped.headers] == [n for n, _ in msg.headers]
    assert msg.via.received is None and msg.header("Via") != stamped.header("Via")  # the original is unchanged
    stamped.validate()
    again = req(bytes(stamped))
    again.validate()
    assert again.vias == stamped.vias and bytes(again) == bytes(stamped)


def test_with_top_via_keeps_the_other_values_of_the_line() -> None:
    data = invite().replace(b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n",
                            b"v: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport ,"
                            b" SIP/2.0/TCP p1.example.com;branch=z9hG4bKp1\r\n")
    msg = req(data)
    stamped = msg.with_top_via(STAMPED)  # not validated: the cache has no Via list yet
    assert stamped.header_values("Via") == [str(STAMPED), "SIP/2.0/TCP p1.example.com;branch=z9hG4bKp1",
                                            msg.header_values("Via")[2]]
    assert [v.host for v in stamped.vias] == ["pc33.atlanta.example.com", "p1.example.com", "[2001:db8::9:1]"]
    response = parse_message(bytes(make_response(stamped, 200, to_tag="t")))
    assert response.via == STAMPED and len(response.vias) == 3


def test_with_top_via_refuses() -> None:
    msg = build_request()
    with pytest.raises(TypeError):
        msg.with_top_via("SIP/2.0/UDP h.example.com")  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="missing Via"):
        msg.without_header("Via").with_top_via(STAMPED)
    ok = make_response(req(invite()), 200, to_tag="x")
    assert ok.with_top_via(STAMPED).via == STAMPED  # responses too


# --- the scanners: the fast path builds the very records the validating constructors build ----------

def test_records_from_the_wire_equal_records_built_in_code() -> None:
    msg = req(invite())
    msg.validate()
    top = msg.via
    assert type(top) is Via and top == Via("UDP", "pc33.atlanta.example.com", 5060,
                                           (("branch", "z9hG4bK776asdhds"), ("rport", None)))
    assert hash(top) == hash(Via(top.transport, top.host, top.port, top.params))
    assert msg.from_ == NameAddr(SipUri("atlanta.example.com", "alice"), "Alice A.", (("tag", "1928301774"),))
    assert type(msg.from_) is NameAddr and type(msg.from_.uri) is SipUri
    with pytest.raises(AttributeError):
        top.host = "evil.example.com"  # type: ignore[misc]  # still frozen


def test_values_sharing_a_shape_are_told_apart() -> None:
    """A remembered shape (the text around the tag or branch) is only a shortcut: the new tag or
    branch is checked, and anything it does not cover takes the full parser."""
    from sipcore.headers import parse_name_addr, parse_via
    base = '"Shape Test" <sip:shape@example.com;lr>;x=1;tag='
    first, second = parse_name_addr(base + "one"), parse_name_addr(base + "two-2")
    assert (first.tag, second.tag, second.param("x"), second.display_name) == ("one", "two-2", "1", "Shape Test")
    assert second.uri is first.uri and second.params == (("x", "1"), ("tag", "two-2"))
    assert parse_name_addr(base + '"quoted"').tag == '"quoted"'  # not a token: the full parser
    for bad in ("", "a b", "a;", "a=b", "é"):
        with pytest.raises(ParseError):
            parse_name_addr(base + bad)
    via = "SIP/2.0/UDP shape.example.com:5070;branch=z9hG4bK{};rport;received=192.0.2.9"
    one, two = parse_via(via.format("one")), parse_via(via.format("two.2"))
    assert two.branch == "z9hG4bKtwo.2" and two.params[1:] == one.params[1:] and two.port == 5070
    assert parse_via(via.format("a;b")).params == (  # "b" is one more parameter
        ("branch", "z9hG4bKa"), ("b", None), ("rport", None), ("received", "192.0.2.9"))
    assert parse_via(via.format('"q"').replace("z9hG4bK", "")).branch == '"q"'  # quoted: the full parser
    for bad in ("a b", "a=b", "é"):
        with pytest.raises(ParseError):
            parse_via(via.format(bad))
    with pytest.raises(ParseError):
        parse_via(via.format("").replace("z9hG4bK", ""))  # empty branch
    assert parse_via(via.format("x").replace(";received=192.0.2.9", "")).params == \
        (("branch", "z9hG4bKx"), ("rport", None))  # another tail: another shape


def test_trusted_constructor_checks_the_slots() -> None:
    from sipcore.syntax import trusted_constructor
    build = trusted_constructor(CSeq, "number", "method")
    assert build(7, Method.BYE) == CSeq(7, "BYE") and type(build(7, "BYE")) is CSeq
    with pytest.raises(ValueError):
        trusted_constructor(CSeq, "method", "number")
