"""Property tests for the SIP parser: whatever the bytes, only ParseError escapes.

Checked for every input that parses: every accessor and ``validate()`` raise nothing but
ParseError; serializing and parsing again gives the same message; every structured value that
parsed renders to text that parses back to an equal record; an error response can be built for
every request error. And the stream decoder frames the same events however the stream is cut.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcore.framing import StreamDecoder
from sipcore.headers import parse_cseq, parse_media_type, parse_name_addr, parse_via
from sipcore.message import Request, Response, make_error_response
from sipcore.parser import MessageLimits, parse_message
from sipcore.syntax import ParseError
from sipcore.uri import parse_uri

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"
CORPUS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]
TYPICAL = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK776asdhds;rport, SIP/2.0/TCP p.example.com\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice \\"A\\"" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>;expires=60, *\r\n"
    b"Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>\r\nExpires: 30\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\r\n"
)
SEEDS = CORPUS + [TYPICAL]
ACCESSORS = ("via", "vias", "call_id", "cseq", "from_", "to", "from_tag", "to_tag", "contacts",
             "contact_wildcard", "routes", "record_routes", "max_forwards", "expires", "content_type")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _attempt(fn, *args):  # type: ignore[no-untyped-def]
    """Call ``fn``; a ParseError is an answer, anything else fails the test."""
    try:
        return fn(*args)
    except ParseError as exc:
        assert isinstance(exc.status, int) and 100 <= exc.status <= 699 and str(exc)
        return None


def exercise(msg: Request | Response) -> None:
    """Every accessor, validation, error answers, record and message round trips."""
    for name in ACCESSORS:
        value = _attempt(getattr, msg, name)
        records = value if isinstance(value, tuple) else (value,)
        for record in records:
            _check_record(record)
    if isinstance(msg, Request):
        uri = _attempt(getattr, msg, "uri")
        if uri is not None:
            assert parse_uri(str(uri)) == uri
    for name, _ in msg.headers:
        _attempt(msg.header_values, name)
    try:
        msg.validate()
    except ParseError as exc:
        answer = make_error_response(exc, to_tag="fuzz")
        if answer is not None:
            assert parse_message(bytes(answer)).status == answer.status  # type: ignore[union-attr]
    again = parse_message(msg.to_bytes())
    assert again.to_bytes() == msg.to_bytes() and again.headers == msg.headers and again.body == msg.body


def _check_record(record: object) -> None:
    from sipcore.headers import CSeq, MediaType, NameAddr, Via
    parsers = {Via: parse_via, NameAddr: parse_name_addr, CSeq: parse_cseq, MediaType: parse_media_type}
    parser = parsers.get(type(record))  # type: ignore[call-overload]
    if parser is not None:
        assert parser(str(record)) == record, record


def parse_and_exercise(data: bytes, limits: MessageLimits | None = None) -> None:
    try:
        msg = parse_message(data) if limits is None else parse_message(data, limits=limits)
    except ParseError as exc:
        assert isinstance(exc.status, int)
        if not exc.is_response:
            _attempt(make_error_response, exc)
        return
    exercise(msg)


@FAST
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    parse_and_exercise(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] = draw(st.sampled_from(b' \t\r\n:;,"<>@[]%\\=/?\x00\xff')) if draw(st.booleans()) \
                else draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from([b"\r\n", b"\r\n ", b",", b";", b'"', b"<", b">", b"%",
                                                b"\r\n\r\n", b":", b"[", b"]", b"\n", b"\r", b" ", b"@"]))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[at:]
        else:
            end = min(len(data), at + draw(st.integers(1, 40)))
            data[at:at] = data[at:end]
    return bytes(data)


@FAST
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    parse_and_exercise(data)


NAMES = ["Via", "v", "To", "t", "From", "f", "Call-ID", "i", "CSeq", "Contact", "m", "Route", "Record-Route",
         "Max-Forwards", "Expires", "Content-Type", "c", "Content-Length", "l", "Allow", "Supported", "k",
         "WWW-Authenticate", "Date", "X-Any", "vIA", "CSEQ"]
VALUE_CHARS = st.sampled_from(list("aZ09.-_~!*'()%+`:;,=@/?&$[]<>\"\\ \t") + ["sip:", "SIP/2.0/UDP ", "z9hG4bK",
                                                                           "tag=", "[::1]", "é", "\x00"])


def fragments(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(VALUE_CHARS, max_size=max_size).map("".join)


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        start = draw(st.sampled_from(["INVITE sip:a@b.c SIP/2.0", "ACK sip:[::1]:5 SIP/2.0", "X-Y z:q SIP/2.0",
                                      "SIP/2.0 200 OK", "SIP/2.0 100", "BYE sip:a@b.c sip/2.0"]))
    else:
        start = draw(fragments(30))
    lines = [start]
    for _ in range(draw(st.integers(0, 12))):
        name = draw(st.sampled_from(NAMES))
        value = "".join(draw(st.lists(VALUE_CHARS, max_size=25)))
        fold = "\r\n " if draw(st.integers(0, 9)) == 0 else ""
        lines.append(f"{name}:{fold}{value}")
    body = draw(st.binary(max_size=20))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


@FAST
@given(header_blocks())
def test_random_header_blocks(data: bytes) -> None:
    parse_and_exercise(data)
    parse_and_exercise(data, MessageLimits(max_message_size=200, max_headers=4, max_line_length=30))


@FAST
@given(fragments(40).map(lambda s: "sip:" + s if len(s) % 2 else s))
def test_uri_parser(text: str) -> None:
    uri = _attempt(parse_uri, text)
    if uri is not None:
        assert parse_uri(str(uri)) == uri


@FAST
@given(fragments(40))
def test_header_value_parsers(text: str) -> None:
    for parser in (parse_via, parse_name_addr, parse_cseq, parse_media_type):
        record = _attempt(parser, text)
        if record is not None:
            _check_record(record)


STREAM_PIECES = [p for p in SEEDS if b"Content-Length" in p or b"\r\nl:" in p.lower()] + [
    b"\r\n\r\n", b"\r\n", TYPICAL.replace(b"Max-Forwards: 70", b"garbage"),
]


def _events(decoder: StreamDecoder, chunks: list[bytes]) -> list[object]:
    out: list[object] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if isinstance(event, ParseError):
                out.append(("error", event.status, event.fatal))
            elif isinstance(event, (Request, Response)):
                out.append(event.to_bytes())
            else:
                out.append(event)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(STREAM_PIECES), min_size=1, max_size=6), st.data())
def test_stream_chunking_does_not_change_the_events(pieces: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(pieces)
    if data.draw(st.booleans()):  # sometimes damage it too
        stream = data.draw(mutated().map(lambda m: m)) + stream
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    limits = MessageLimits(max_message_size=data.draw(st.sampled_from([65536, 4096, 700])))
    whole = _events(StreamDecoder(limits), [stream])
    assert _events(StreamDecoder(limits), chunks) == whole
    decoder = StreamDecoder(limits)
    _events(decoder, chunks)
    assert decoder.buffered <= limits.max_message_size + max((len(c) for c in chunks), default=0)


# --- the scanners (fast paths) against the full parsers ----------------------------------------------
# A scanner either declines (None) or returns exactly what the full parser returns; it never
# accepts what the full parser refuses. Values are drawn near the usual shapes, then damaged.

def _full(parser, text):  # type: ignore[no-untyped-def]
    try:
        return ("ok", parser(text))
    except ParseError:
        return ("refused", None)


def _agrees(scanner, parser, text: str) -> None:  # type: ignore[no-untyped-def]
    got = scanner(text)
    if got is not None:
        assert _full(parser, text) == ("ok", got), text
        assert repr(got) == repr(parser(text)) and type(got) is type(parser(text))


_HOSTS = st.sampled_from(["example.com", "h.example.com", "192.0.2.1", "256.1.1.1", "a..b", "-a.com", "x",
                          "[2001:db8::1]", "", "h_x", "example.com.", "1.2.3", "ex ample"])
_PORTS = st.sampled_from(["", ":5060", ":0", ":65535", ":65536", ":00005", ":", ":12a", ":123456"])
_TOKENS = st.sampled_from(["a", "Tag", "branch", "z9hG4bK1", "rport", "x-y.z", "lr", "TRANSPORT", "", "a b",
                           "é", "a%20", "[x]", "a:b", '"q"', "a=b", "1.2.3.4"])
_PARAMS = st.lists(st.tuples(_TOKENS, st.one_of(st.none(), _TOKENS)), max_size=3).map(
    lambda ps: "".join(f";{n}" if v is None else f";{n}={v}" for n, v in ps))
_USERS = st.sampled_from(["", "alice", "+4930", "a;b=c", "a:pw", "a%41", "a?b", "a b", "u.s-e_r", "a@b"])
_URIS = st.builds(lambda scheme, user, host, port, params: f"{scheme}{'' if user is None else user + '@'}"
                  f"{host}{port}{params}", st.sampled_from(["sip:", "sips:", "SIP:", "tel:", "si p:"]),
                  st.one_of(st.none(), _USERS), _HOSTS, _PORTS, _PARAMS)
_DISPLAYS = st.sampled_from(["", "Bob ", "Bob", '"Alice A." ', '"A\\"B" ', '"a<b" ', "a  b ", " Bob ", "B\tb ",
                             '"x"', '"" ', "a;b ", "a>b "])
_NAME_ADDRS = st.one_of(st.builds(lambda d, u, p: f"{d}<{u}>{p}", _DISPLAYS, _URIS, _PARAMS),
                        st.builds(lambda u, p: f"{u}{p}", _URIS, _PARAMS))
_VIAS = st.builds(lambda proto, transport, host, port, params: f"{proto}{transport} {host}{port}{params}",
                  st.sampled_from(["SIP/2.0/", "SIP / 2.0 / ", "sip/2.0/", "SIP/2.1/"]),
                  st.sampled_from(["UDP", "udp", "TCP", "TLS", "WS", "X y", ""]), _HOSTS, _PORTS, _PARAMS)
_CSEQS = st.builds(lambda n, sp, m: f"{n}{sp}{m}", st.sampled_from(["1", "0", "999999999", "4294967295",
                                                                     "4294967296", "", "-1", "1a", "0001"]),
                   st.sampled_from([" ", "  ", "\t", ""]), st.sampled_from(["INVITE", "BYE", "FOO", "invite", ""]))


@st.composite
def _damaged(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    text = draw(base)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.sampled_from(list("aZ09.-_~!*'()%+`:;,=@/?&$[]<>\"\\ \t\r\n\x00é"))) + text[at:]
        else:
            text = text[:at] + text[at + 1:]
    return text


@FAST
@given(_damaged(_VIAS), _damaged(_NAME_ADDRS), _damaged(_URIS), _damaged(_CSEQS), _damaged(_PARAMS))
def test_scanners_agree_with_the_full_parsers(via: str, name_addr: str, uri: str, cseq: str, params: str) -> None:
    from sipcore import headers
    from sipcore import uri as uri_module
    from sipcore.syntax import check_params, parse_params, scan_params
    _agrees(headers._scan_via, headers._parse_via, via)
    _agrees(headers._scan_name_addr, headers._parse_name_addr, name_addr)
    _agrees(uri_module._scan_sip_uri, uri_module._parse_uri, uri)
    _agrees(headers._scan_cseq, headers._parse_cseq, cseq)
    _agrees(scan_params, lambda text: check_params(parse_params(text), "test"), params[1:])


@FAST
@given(st.builds(lambda d, u, p: f"{d}<{u}>{p}", _DISPLAYS, _URIS, _PARAMS), _TOKENS, _TOKENS, _PARAMS)
def test_remembered_shapes_only_shortcut(prefix: str, tag1: str, tag2: str, tail: str) -> None:
    """Values that share the text around their tag (or branch) share a remembered shape; the
    second one must still parse exactly as the full parser says."""
    from sipcore import headers
    for first, second, parser in (
            (f"{prefix};tag={tag1}", f"{prefix};tag={tag2}", headers._parse_name_addr),
            (f"SIP/2.0/UDP h.example.com;branch={tag1}{tail}", f"SIP/2.0/UDP h.example.com;branch={tag2}{tail}",
             headers._parse_via)):
        scanner = headers._scan_name_addr if parser is headers._parse_name_addr else headers._scan_via
        _agrees(scanner, parser, first)
        _agrees(scanner, parser, second)


@FAST
@given(fragments(30))
def test_call_id_and_max_forwards_checks(text: str) -> None:
    from sipcore.syntax import WORD_CHARS
    from sipcore.validation import check_call_id, check_max_forwards
    left, at, right = text.partition("@")
    expected = bool(left) and WORD_CHARS.issuperset(left) and (not at or (bool(right) and WORD_CHARS.issuperset(right)))
    assert (_attempt(check_call_id, [text]) is not None) == expected
    digits = text.strip("é")
    mf = _attempt(check_max_forwards, digits)
    assert mf is None or (digits.isascii() and digits.isdigit() and int(digits) == mf <= 255)
