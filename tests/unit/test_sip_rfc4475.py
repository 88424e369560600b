"""RFC 4475 torture tests: every message of the RFC's bit-exact archive (Appendix A).

The ``.dat`` files in ``tests/data/rfc4475/`` were decoded from the RFC's base64 archive (gzip
CRC verified; see the README there). The receive path under test is the one the transport
layer uses: ``msg = parse_message(datagram); msg.validate()``; on ParseError the UAS answers
``make_error_response(err)`` (None: drop it). What we do with each message:

============  ========  ==========================================================================
file          RFC §     outcome (RFC expectation -> ours)
============  ========  ==========================================================================
wsinv         3.1.1.1   valid -> parses and validates; folding, escapes in quotes, compact forms
intmeth       3.1.1.2   valid -> parses and validates; extension method is a plain str (501 above)
esc01         3.1.1.3   valid -> parses; escapes kept as on the wire, decoded by accessors
escnull       3.1.1.4   valid -> parses; %00 user parts stay distinct (no C-string truncation)
esc02         3.1.1.5   valid -> parses; RE%47IST%45R is an unknown method; 2 Contacts, not 3
lwsdisp       3.1.1.6   "should accept" -> accepted (no LWS between display name and <)
longreq       3.1.1.7   valid -> parses; 34 Vias, long names/values
dblreq        3.1.1.8   valid -> the REGISTER; the trailing INVITE octets are ignored (datagram)
semiuri       3.1.1.9   valid -> user part "user;par=u@example.net" once unescaped
transports    3.1.1.10  valid -> UDP, SCTP, TLS, UNKNOWN, TCP transports
mpart01       3.1.1.11  valid -> 553-byte binary body with NULs framed by Content-Length
unreason      3.1.1.12  valid -> UTF-8 reason phrase kept
noreason      3.1.1.13  valid -> empty reason phrase
badinv01      3.1.2.1   "should 400" -> validate: 400 (empty Via list elements, empty params)
clerr         3.1.2.2   "should 400" on UDP -> parse: 400 (Content-Length beyond the datagram);
                        on a stream: the decoder waits for more bytes
ncl           3.1.2.3   error; TCP: close -> parse: 400; stream: fatal error (close)
scalar02      3.1.2.4   "should 400 (CSeq)" -> validate: 400; Max-Forwards/Expires/expires= also
                        refused by their accessors
scalarlg      3.1.2.5   response: discard -> validate fails, is_response: no answer (dropped)
quotbal       3.1.2.6   "should 400" -> validate: 400 (unterminated quoted string in To)
ltgtruri      3.1.2.7   "reasonable to 400" -> validate: 400 (Request-URI in <>)
lwsruri       3.1.2.8   "should 400" -> parse: 400 (request line has 4 elements)
lwsstart      3.1.2.9   "acceptable to reject" -> parse: 400 (double SP in request line)
trws          3.1.2.10  "acceptable to reject" -> parse: 400 (SP after SIP-Version)
escruri       3.1.2.11  "acceptable to 400" -> validate: 400 (headers in Request-URI, §19.1.1)
baddate       3.1.2.12  reject only if Date matters -> accepted; Date is kept raw, never parsed
regbadct      3.1.2.13  "reasonable to 400" -> validate: 400 (addr-spec URI with '?' not in <>)
badaspec      3.1.2.14  "reasonable to 400" -> validate: 400 (spaces inside <...>)
baddn         3.1.2.15  "reasonable to 400" -> validate: 400 (unquoted non-token display name)
badvers       3.1.2.16  "should 505" -> validate: 505
mismatch01    3.1.2.17  "will 400" -> validate: 400 (CSeq method differs)
mismatch02    3.1.2.18  "501, 400 acceptable" -> validate: 400; known_method is None, so a UAS
                        that checks the method first (§8.2.1) answers 501
bigcode       3.1.2.19  response: drop -> parse error, is_response: dropped
badbranch     3.2.1     parser must not break -> parses; branch "z9hG4bK" left to transactions
insuf         3.3.1     "ideally 400" -> validate: 400 (no Call-ID/From/To); the 400 copies Via
unkscm        3.3.2     parse; app answers 416 -> parses; Request-URI is an AbsoluteUri
novelsc       3.3.3     parse; app 416/404 -> parses; AbsoluteUri "soap.beep"
unksm2        3.3.4     parse; registrar 400 -> parses; To/From/Contact are AbsoluteUris
bext01        3.3.5     parse; app 420 -> parses; Require/Proxy-Require split into 2 values each
invut         3.3.6     parse; UA 415 -> parses; Content-Type application/unknownformat
regaut01      3.3.7     parse -> parses; Authorization kept whole (never split on commas)
multi01       3.3.8     "would 400" -> validate: 400 (duplicate single-valued headers)
mcl01         3.3.9     error; TCP: close -> parse: 400 (conflicting Content-Length); stream: fatal
bcast         3.3.10    parse; then discard -> parses; second Via 255.255.255.255 (for the UA)
zeromf        3.3.11    legal -> parses; Max-Forwards 0
cparam01      3.3.12    parse -> "unknownparam" is a Contact (header) parameter, not a URI one
cparam02      3.3.13    parse -> "unknownparam" is a URI parameter
regescrt      3.3.14    parse -> the Contact URI keeps its escaped Route header
sdp01         3.3.15    parse; app 406/400 -> parses; Accept text/nobodyKnowsThis
inv2543       3.4.1     accept (RFC 2543) -> parses: no branch, no From tag, no Content-Length
                        (body = rest of the datagram); on a stream: fatal (Content-Length needed)
test          (none)    in the archive but not in the RFC text -> parse: 400 (line without colon)
============  ========  ==========================================================================
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipcore.framing import StreamDecoder
from sipcore.headers import Method
from sipcore.message import Request, Response, make_error_response
from sipcore.parser import parse_message
from sipcore.syntax import ParseError
from sipcore.uri import AbsoluteUri, SipUri

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


def load(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def parsed(name: str) -> Request | Response:
    msg = parse_message(load(name))
    msg.validate()
    return msg


def request(name: str) -> Request:
    msg = parsed(name)
    assert isinstance(msg, Request)
    return msg


VALID = ["wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq", "semiuri",
         "transports", "mpart01", "unreason", "noreason", "baddate", "badbranch", "unkscm", "novelsc",
         "unksm2", "bext01", "invut", "regaut01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt",
         "sdp01", "inv2543"]
PARSE_400 = ["clerr", "ncl", "lwsruri", "lwsstart", "trws", "mcl01", "test"]
VALIDATE_FAILS = {"badinv01": 400, "scalar02": 400, "quotbal": 400, "ltgtruri": 400, "escruri": 400,
                  "regbadct": 400, "badaspec": 400, "baddn": 400, "badvers": 505, "mismatch01": 400,
                  "mismatch02": 400, "insuf": 400, "multi01": 400}
DROPPED_RESPONSES = {"scalarlg": "validate", "bigcode": "parse"}


def test_the_table_covers_the_whole_archive() -> None:
    names = {p.stem for p in DATA.glob("*.dat")}
    covered = set(VALID) | set(PARSE_400) | set(VALIDATE_FAILS) | set(DROPPED_RESPONSES)
    assert names == covered and len(names) == 50


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse_validate_and_round_trip(name: str) -> None:
    msg = parsed(name)
    again = parse_message(msg.to_bytes())
    again.validate()
    assert again.to_bytes() == msg.to_bytes()
    assert again.headers == msg.headers and again.body == msg.body
    assert (again.via, again.cseq, again.call_id, again.from_, again.to) == \
        (msg.via, msg.cseq, msg.call_id, msg.from_, msg.to)


@pytest.mark.parametrize("name", PARSE_400)
def test_parse_errors_answer_400_with_the_headers_that_parsed(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(load(name))
    err = info.value
    assert err.status == 400 and not err.is_response and err.headers
    answer = make_error_response(err, to_tag="x1")
    if name == "test":  # no Via: no way to route an answer
        assert answer is None
        return
    assert answer is not None and answer.status == 400
    assert answer.header("Call-ID") == dict(err.headers)["Call-ID"]
    assert answer.to_tag in ("x1", "3xfe-9921883-z9f")  # lwsruri's To already has a tag


@pytest.mark.parametrize(("name", "status"), sorted(VALIDATE_FAILS.items()))
def test_validation_failures(name: str, status: int) -> None:
    msg = parse_message(load(name))
    with pytest.raises(ParseError) as info:
        msg.validate()
    err = info.value
    assert err.status == status and not err.is_response
    assert err.method == msg.method  # type: ignore[union-attr]
    answer = make_error_response(err)
    assert answer is not None and answer.status == status
    assert answer.header("Via") == msg.header("Via")


@pytest.mark.parametrize(("name", "stage"), sorted(DROPPED_RESPONSES.items()))
def test_bad_responses_are_dropped(name: str, stage: str) -> None:
    with pytest.raises(ParseError) as info:
        msg = parse_message(load(name))
        assert stage == "validate"
        msg.validate()
    assert info.value.is_response
    assert make_error_response(info.value) is None


# --- 3.1.1 valid messages, field by field ---------------------------------------------------------

def test_wsinv_short_tortuous_invite() -> None:
    msg = request("wsinv")
    assert msg.method is Method.INVITE
    assert msg.uri == SipUri("chair-dnrc.example.com", "vivekg", params=(("unknownparam", None),))
    assert msg.to.tag == "1918181833n" and msg.to.display_name is None
    assert msg.from_.display_name == 'J Rosenberg \\"' and msg.from_tag == "98asjd8"
    assert msg.max_forwards == 68 and msg.cseq.number == 9 and msg.cseq.method == "INVITE"
    assert msg.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.header("Subject") == ""
    assert msg.header("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.header_values("UnknownHeaderWithUnusualValue") == [";;,,;;,;"]
    assert msg.routes[0].uri.lr and msg.routes[0].uri.param("unknownwith") == "value"  # type: ignore[union-attr]
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"
    assert len(msg.body) == 150 and msg.body.startswith(b"v=0\r\n")
    out = msg.to_bytes()
    assert b"\r\nSubject: \r\n" in out and b"\r\nContact: " in out and b"\r\nm:" not in out


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = request("intmeth")
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.method == method and msg.known_method is None and msg.cseq.method == method
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)" and uri.host == "example.com"
    assert msg.via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.from_.param("fromParam''~+*_!.-%") == '"работающий"'
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.max_forwards == 255
    assert msg.header("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_kept_on_the_wire_and_decoded_on_request() -> None:
    msg = request("esc01")
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "sips%3Auser%40example.com" and uri.user_unescaped == "sips:user@example.com"
    assert msg.to.uri.user_unescaped == "user"  # type: ignore[union-attr]
    assert msg.from_.uri.user_unescaped == "I have spaces"  # type: ignore[union-attr]
    contact = msg.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert contact.params == (("%6c%72", None), ("n%61me", "v%61lue%25%34%31"))
    # "value%41" is NOT "valueA" (RFC 3986: unescape once)
    assert contact.equivalent(SipUri("host5.example.net", "caller", params=(("lr", None), ("name", "value%2541"))))
    assert not contact.equivalent(SipUri("host5.example.net", "caller", params=(("lr", None), ("name", "valueA"))))
    assert msg.content_type is not None and msg.content_type.mime == "application/sdp"  # "C:" compact form


def test_escnull_nul_in_user_parts() -> None:
    msg = request("escnull")
    assert msg.to.uri.user_unescaped == "null-\x00-null"  # type: ignore[union-attr]
    users = [c.uri.user_unescaped for c in msg.contacts]  # type: ignore[union-attr]
    assert users == ["\x00", "\x00\x00"]
    assert not msg.contacts[0].uri.equivalent(msg.contacts[1].uri)


def test_esc02_percent_that_is_not_an_escape() -> None:
    msg = request("esc02")
    assert msg.method == "RE%47IST%45R" and msg.known_method is None and msg.method != "REGISTER"
    assert msg.to.display_name == "%Z%45" and msg.from_.display_name == "%Z%45"
    assert [c.uri.host for c in msg.contacts] == ["host1.example.com", "host3.example.com"]  # type: ignore[union-attr]
    assert msg.header("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert msg.via.branch == "z9hG4bK209%fzsnel234"


def test_lwsdisp_and_semiuri_and_transports() -> None:
    assert request("lwsdisp").from_.display_name == "caller"
    semi = request("semiuri").uri
    assert isinstance(semi, SipUri)
    assert semi.user_unescaped == "user;par=u@example.net" and semi.host == "example.com" and semi.params == ()
    assert len(request("semiuri").header_values("Accept")) == 6
    assert [v.transport for v in request("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_longreq_long_values() -> None:
    msg = request("longreq")
    assert len(msg.vias) == 34 and msg.via.host == "sip33.example.com"
    assert msg.vias[-1].received == "192.0.2.5" and msg.vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert msg.to.display_name == "I have a user name of " + "extreme" * 10 + " proportion"
    assert msg.to.uri.port == 6000  # type: ignore[union-attr]
    assert msg.from_tag == "12" + "982" * 50 + "424"
    assert msg.contacts[0].uri.user == "amazinglylongcallername" * 5  # type: ignore[union-attr]
    assert msg.header("Unknown-" + "Long" * 20 + "-Name") is not None


def test_dblreq_ignores_trailing_octets_of_a_datagram() -> None:
    msg = request("dblreq")
    assert msg.method == "REGISTER" and msg.body == b"" and b"INVITE" not in msg.to_bytes()


def test_mpart01_binary_body() -> None:
    msg = request("mpart01")
    assert len(msg.body) == 553 and b"\x00" in msg.body and msg.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert msg.content_type is not None and msg.content_type.mime == "multipart/mixed"
    assert msg.content_type.param("boundary") == "7a9cbec02ceef655"
    assert msg.via.wants_rport and msg.via.rport is None and msg.via.port == 5070
    assert msg.header("Date") == "Sat, 15 Oct 2005 04:44:56 GMT"


def test_reason_phrases() -> None:
    unreason = parsed("unreason")
    assert isinstance(unreason, Response) and unreason.status == 200
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = parsed("noreason")
    assert isinstance(noreason, Response) and noreason.status == 100 and noreason.reason == ""


# --- 3.1.2 invalid messages: what exactly is refused ----------------------------------------------

def test_scalar02_every_overlarge_scalar_is_refused() -> None:
    msg = parse_message(load("scalar02"))
    for accessor in ("cseq", "max_forwards", "expires"):
        with pytest.raises(ParseError):
            getattr(msg, accessor)
    with pytest.raises(ParseError):
        _ = msg.contacts[0].expires
    with pytest.raises(ParseError, match="CSeq"):
        msg.validate()


def test_clerr_on_a_stream_waits_for_the_rest() -> None:
    dec = StreamDecoder()
    assert dec.feed(load("clerr")) == [] and not dec.closed and dec.buffered == len(load("clerr"))


@pytest.mark.parametrize("name", ["ncl", "mcl01", "inv2543"])
def test_framing_errors_close_a_stream(name: str) -> None:
    dec = StreamDecoder()
    (err,) = dec.feed(load(name))
    assert isinstance(err, ParseError) and err.fatal and dec.closed
    assert dec.feed(b"OPTIONS sip:x SIP/2.0\r\n") == []


def test_mismatch02_unknown_method_can_be_answered_501() -> None:
    msg = parse_message(load("mismatch02"))
    assert isinstance(msg, Request) and msg.known_method is None  # the UAS answers 501 first


def test_insuf_400_copies_what_there_is() -> None:
    msg = parse_message(load("insuf"))
    with pytest.raises(ParseError) as info:
        msg.validate()
    answer = make_error_response(info.value)
    assert answer is not None
    assert [n for n, _ in answer.headers] == ["CSeq", "Via"]


# --- 3.2 / 3.3 / 3.4: the parser's part -----------------------------------------------------------

def test_application_layer_messages_expose_what_the_application_needs() -> None:
    assert request("badbranch").via.branch == "z9hG4bK"
    unkscm = request("unkscm").uri
    assert isinstance(unkscm, AbsoluteUri) and unkscm.scheme == "nobodyknowsthisscheme"
    novelsc = request("novelsc").uri
    assert isinstance(novelsc, AbsoluteUri) and str(novelsc) == "soap.beep://192.0.2.103:3002"
    unksm2 = request("unksm2")
    assert str(unksm2.to.uri) == "isbn:2983792873" and str(unksm2.from_.uri) == "http://www.example.com"
    assert str(unksm2.contacts[0].uri) == "name:John_Smith"
    bext = request("bext01")
    assert bext.header_values("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert bext.header_values("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    invut = request("invut")
    assert invut.content_type is not None and invut.content_type.mime == "application/unknownformat"
    assert request("regaut01").header_values("Authorization") == ["NoOneKnowsThisScheme opaque-data=here"]
    bcast = parsed("bcast")
    assert [v.host for v in bcast.vias] == ["192.0.2.198", "255.255.255.255"]
    assert request("zeromf").max_forwards == 0
    assert request("sdp01").header("Accept") == "text/nobodyKnowsThis"


def test_contact_parameters_versus_uri_parameters() -> None:
    (c1,) = request("cparam01").contacts
    assert c1.params == (("unknownparam", None),) and c1.uri.params == ()  # type: ignore[union-attr]
    (c2,) = request("cparam02").contacts
    assert c2.params == () and c2.uri.params == (("unknownparam", None),)  # type: ignore[union-attr]
    (c3,) = request("regescrt").contacts
    assert c3.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)  # type: ignore[union-attr]


def test_inv2543_rfc2543_syntax() -> None:
    msg = request("inv2543")
    assert msg.via.branch is None and msg.from_tag is None and msg.max_forwards is None
    assert msg.body == load("inv2543").split(b"\r\n\r\n", 1)[1]
    assert msg.record_routes[0].uri.maddr == "ss1.example.com"  # type: ignore[union-attr]
    # addr-spec form: ";user=phone" is a header parameter of To, not a URI one (§20.10)
    assert msg.to.param("user") == "phone" and msg.to.uri.params == ()  # type: ignore[union-attr]


def test_valid_messages_through_the_stream_decoder_in_small_reads() -> None:
    """Every message with a Content-Length frames the same on a stream as in a datagram."""
    names = [n for n in VALID if n not in ("inv2543", "dblreq")]
    stream = b"\r\n\r\n".join(load(n) for n in names)  # with keep-alive pings in between
    dec = StreamDecoder()
    events: list[object] = []
    for i in range(0, len(stream), 7):
        events.extend(dec.feed(stream[i:i + 7]))
    messages = [e for e in events if isinstance(e, (Request, Response))]
    assert [m.to_bytes() for m in messages] == [parse_message(load(n)).to_bytes() for n in names]
    assert len(events) == 2 * len(names) - 1 and not dec.closed and dec.buffered == 0


# --- the fast paths change nothing ------------------------------------------------------------------

def _outcome(data: bytes) -> tuple[object, ...]:
    """What the receive path makes of a datagram: the error (status, text) or the parsed records."""
    try:
        msg = parse_message(data)
        msg.validate()
    except ParseError as exc:
        return ("error", exc.status, str(exc), exc.is_response, exc.method)
    uri = msg.uri if isinstance(msg, Request) else None
    return ("ok", msg.to_bytes(), msg.vias, msg.call_id, msg.cseq, msg.from_, msg.to, msg.contacts,
            msg.record_routes, msg.content_type, msg.max_forwards, uri)


def test_the_scanners_change_no_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message of the archive gets the same answer (same records, same error, same words)
    with the scanners as with the full parsers alone."""
    from sipcore import headers, parser, uri
    from sipcore.syntax import Memo
    names = sorted(p.stem for p in DATA.glob("*.dat"))
    fast = {name: _outcome(load(name)) for name in names}
    assert headers._scan_via("SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1") is not None  # the fast path is on
    for module in (headers, parser, uri):
        for attr in dir(module):
            if attr.startswith("_scan_"):
                monkeypatch.setattr(module, attr, lambda value: None)
            if isinstance(getattr(module, attr), Memo):
                monkeypatch.setattr(module, attr, Memo(max_entries=1))  # as good as no memo
    assert headers._scan_via("SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK1") is None  # and now off
    full = {name: _outcome(load(name)) for name in names}
    assert full == fast
    assert sorted(name for name, outcome in fast.items() if outcome[0] == "ok") == sorted(VALID)
