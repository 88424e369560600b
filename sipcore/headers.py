"""The structured header values the transaction and dialog layers read, and header fields.

Records (frozen, validated when built, ``str()`` renders the canonical form):
:class:`Via`, :class:`NameAddr` (From, To, Contact, Route, Record-Route, Refer-To, ...),
:class:`CSeq`, :class:`MediaType`. The ``parse_*`` functions take one unfolded value; each tries
its memo (values peers repeat), then its scanner (the usual shape of a value, see
:mod:`sipcore.syntax`), then the full parser.

Header names, compact forms, comma-list headers and methods live in :mod:`sipcore.names` and are
re-exported here (:func:`canonical_name`, :data:`LIST_HEADERS`, :class:`Method`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sipcore.names import _METHODS, LIST_HEADERS, Method, canonical_name, intern_method
from sipcore.syntax import (
    DIGITS,
    TOKEN_CHARS,
    Memo,
    Params,
    ParseError,
    check_params,
    cut,
    get_param,
    has_param,
    is_digits,
    is_token,
    match_token,
    parse_params,
    quote,
    quoted_end,
    render_params,
    scan_params,
    trusted_constructor,
    unquote,
)
from sipcore.uri import AbsoluteUri, SipUri, Uri, check_host, host_ok, parse_hostport, parse_uri, parse_uri_or_none

__all__ = [
    "CSeq", "Field", "HeaderValue", "LIST_HEADERS", "MediaType", "Method", "NameAddr", "Via", "canonical_name",
    "intern_method", "make_field", "make_fields", "parse_cseq", "parse_media_type", "parse_name_addr", "parse_via",
]

# --- Via (§20.42) -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;received=...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if not isinstance(self.transport, str) or not is_token(self.transport):
            raise ParseError(f"bad Via transport {cut(str(self.transport))}")
        if not isinstance(self.host, str):
            raise ParseError(f"bad Via host {self.host!r}")
        check_host(self.host)
        if self.port is not None and (type(self.port) is not int or not 0 <= self.port <= 65535):
            raise ParseError(f"bad Via port {self.port!r}")
        name, slash, version = self.protocol.partition("/") if isinstance(self.protocol, str) else ("", "", "")
        if not slash or not is_token(name) or not is_token(version):
            raise ParseError(f"bad Via protocol {self.protocol!r}")
        params = check_params(self.params, "Via")
        if params != self.params:
            object.__setattr__(self, "params", params)
        if self.transport != self.transport.upper():
            object.__setattr__(self, "transport", self.transport.upper())

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def maddr(self) -> str | None:
        return get_param(self.params, "maddr")

    @property
    def ttl(self) -> int | None:
        value = get_param(self.params, "ttl")
        if value is None:
            return None
        if not is_digits(value) or len(value) > 3 or int(value) > 255:
            raise ParseError(f"bad Via ttl {cut(value)}")
        return int(value)

    @property
    def wants_rport(self) -> bool:
        """The ``rport`` parameter is present (RFC 3581 §3: answer to the source port)."""
        return has_param(self.params, "rport")

    @property
    def rport(self) -> int | None:
        """The ``rport`` value filled in by a server (RFC 3581 §4); None if absent or bare."""
        value = get_param(self.params, "rport")
        if value is None:
            return None
        if not is_digits(value) or len(value) > 5 or int(value) > 65535:
            raise ParseError(f"bad Via rport {cut(value)}")
        return int(value)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def address(self) -> str:
        """The sent-by host without IPv6 brackets, as a socket wants it."""
        return self.host[1:-1] if self.host[:1] == "[" else self.host

    def param(self, name: str, default: str | None = None) -> str | None:
        return get_param(self.params, name, default)

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{render_params(self.params)}"


_PARSE_VIA_MEMO = Memo()


def parse_via(value: str) -> Via:
    memo = _PARSE_VIA_MEMO
    hit = memo.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    record = _scan_via(value) or _parse_via(value)
    if len(value) <= memo.max_text and len(memo) < memo.max_entries:
        memo[value] = record  # Memo.remember, inline
    else:
        memo.remember(value, record)
    return record


_new_via = trusted_constructor(Via, "transport", "host", "port", "params", "protocol")
_SCAN_TRANSPORTS = frozenset(("UDP", "TCP", "TLS", "SCTP", "WS", "WSS"))
_SHAPES_MAX = 2048
# Via text up to ";branch=" -> (text after the branch value, transport, host, port, params around)
_VIA_SHAPES: dict[str, tuple[str, str, str, int | None, Params, Params]] = {}


def _scan_via(value: str) -> Via | None:
    """``SIP/2.0/UDP host:port;branch=...``: the usual shape (one SP, no other LWS, no quotes,
    no IPv6, token parameters); what :func:`_parse_via` returns, or None to let it decide.

    The branch is new in every transaction, the rest repeats: the scan of the text around the
    branch value is remembered (a *shape*), and a Via with a known shape only needs its branch
    checked (a token: no ``;`` in it, and :func:`scan_params` would have accepted it too)."""
    at = value.find(";branch=")
    if at < 0:
        return _scan_via_text(value)
    start = at + 8
    head = value[:start]
    shape = _VIA_SHAPES.get(head)
    if shape is not None:
        tail, transport, host, port, before, after = shape
        branch = value[start:len(value) - len(tail)]
        if value.endswith(tail) and ((branch.isalnum() and branch.isascii()) or match_token(branch)):
            params = (*before, ("branch", branch), *after) if before or after else (("branch", branch),)
            return _new_via(transport, host, port, params, "SIP/2.0")
    via = _scan_via_text(value)
    if via is not None:
        end = value.find(";", start)
        tail = value[end:] if end >= 0 else ""
        params = via.params
        k = value.count(";", 0, at)  # the branch is the k-th parameter
        if k < len(params) and params[k] == ("branch", value[start:len(value) - len(tail)]):
            if len(_VIA_SHAPES) >= _SHAPES_MAX:
                _VIA_SHAPES.clear()
            _VIA_SHAPES[head] = (tail, via.transport, via.host, via.port, params[:k], params[k + 1:])
    return via


def _scan_via_text(value: str) -> Via | None:
    head, semi, param_text = value.partition(";")
    if head[:8] != "SIP/2.0/":
        return None
    transport, _, sent_by = head[8:].partition(" ")
    host, colon, port_text = sent_by.partition(":")
    if transport not in _SCAN_TRANSPORTS or host[:1] == "[" or not host_ok(host):
        return None
    port: int | None = None
    if colon:
        if not port_text or len(port_text) > 5 or not DIGITS.issuperset(port_text) or int(port_text) > 65535:
            return None
        port = int(port_text)
    params = scan_params(param_text) if semi else ()
    return None if params is None else _new_via(transport, host, port, params, "SIP/2.0")


def _parse_via(value: str) -> Via:
    """One via-parm: ``sent-protocol LWS sent-by *( SEMI via-params )``; LWS allowed around ``/``."""
    head, semi, param_text = value.partition(";") if '"' not in value else _partition_semi(value)
    parts = head.split("/", 2)
    if len(parts) != 3:
        raise ParseError(f"bad Via {cut(value)}")
    name, version = parts[0].strip(" \t"), parts[1].strip(" \t")
    transport, _, sent_by = parts[2].strip(" \t").replace("\t", " ").partition(" ")
    # sent-by = host [ COLON port ] where COLON = SWS ":" SWS
    sent_by = sent_by.replace(" ", "")
    if not sent_by:
        raise ParseError(f"bad Via sent-by {cut(value)}")
    host, port = parse_hostport(sent_by)
    params = parse_params(param_text) if semi else ()
    return Via(transport, host, port, params, f"{name}/{version}")


def _partition_semi(value: str) -> tuple[str, str, str]:
    """``value.partition(";")``, skipping semicolons inside quoted strings."""
    pos = 0
    while True:
        s = value.find(";", pos)
        q = value.find('"', pos)
        if q >= 0 and (s < 0 or q < s):
            pos = quoted_end(value, q)
            continue
        if s < 0:
            return value, "", ""
        return value[:s], ";", value[s + 1:]


_TOKENS_AND_SPACE = TOKEN_CHARS | frozenset(" ")


# --- name-addr / addr-spec (§20.10, §20.20, §20.39, ...) ---------------------------------------------

@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display Name" <uri>;param=value``: From, To, Contact, Route, Record-Route, Refer-To, ..."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    def __post_init__(self) -> None:
        if not isinstance(self.uri, (SipUri, AbsoluteUri)):
            raise ParseError(f"NameAddr needs a parsed URI, not {self.uri!r}")
        if self.display_name is not None and (not isinstance(self.display_name, str)
                                              or "\r" in self.display_name or "\n" in self.display_name):
            raise ParseError(f"bad display name {self.display_name!r}")
        params = check_params(self.params, "name-addr")
        if params != self.params:
            object.__setattr__(self, "params", params)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    @property
    def expires(self) -> int | None:
        """The Contact ``expires`` parameter (§20.10); ParseError if not a 32-bit delta-seconds."""
        value = get_param(self.params, "expires")
        return None if value is None else _delta_seconds(value, "Contact expires")

    @property
    def q(self) -> str | None:
        return get_param(self.params, "q")

    def param(self, name: str, default: str | None = None) -> str | None:
        return get_param(self.params, name, default)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        if not is_token(tag):
            raise ParseError(f"bad tag {tag!r}")
        params = tuple(p for p in self.params if p[0] != "tag") + (("tag", tag),)
        return NameAddr(self.uri, self.display_name, params)

    def __str__(self) -> str:
        name = self.display_name
        if name is None:
            shown = ""
        elif name and all(is_token(w) for w in name.split(" ")):
            shown = name + " "
        else:
            shown = quote(name) + " "
        return f"{shown}<{self.uri}>{render_params(self.params)}"


_PARSE_NAME_ADDR_MEMO = Memo()


def parse_name_addr(value: str) -> NameAddr:
    memo = _PARSE_NAME_ADDR_MEMO
    hit = memo.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    # _scan_name_addr's first step, inline: a From/To with a new tag and a known address
    key, sep, tag = value.rpartition(";tag=")
    shape = _ADDRESS_SHAPES.get(key) if sep else None
    if shape is not None and ((tag.isalnum() and tag.isascii()) or match_token(tag)):
        uri, display, before = shape
        record = _new_name_addr(uri, display, (*before, ("tag", tag)) if before else (("tag", tag),))
    else:
        record = _scan_name_addr(value) or _parse_name_addr(value)
    if len(value) <= memo.max_text and len(memo) < memo.max_entries:
        memo[value] = record  # Memo.remember, inline
    else:
        memo.remember(value, record)
    return record


_new_name_addr = trusted_constructor(NameAddr, "uri", "display_name", "params")
# name-addr text before its last ";tag=" -> (uri, display name, the parameters before the tag)
_ADDRESS_SHAPES: dict[str, tuple[Uri, str | None, Params]] = {}


def _scan_name_addr(value: str) -> NameAddr | None:
    """``"Display" <uri>;tag=...``, ``Display <uri>``, ``<uri>`` or ``uri;tag=...`` without LWS
    around them (or in the parameters), quoted-pairs or an unclosed bracket: what
    :func:`_parse_name_addr` returns, or None to let it decide.

    Tags are new in every dialog, addresses repeat: when the last parameter is the tag, the
    scan of what precedes ``;tag=`` is remembered (a *shape*), and a value with a known shape
    only needs its tag checked (a token, which :func:`scan_params` would have accepted too)."""
    key, sep, tag = value.rpartition(";tag=")
    if sep:
        shape = _ADDRESS_SHAPES.get(key)
        if shape is not None and ((tag.isalnum() and tag.isascii()) or match_token(tag)):
            uri, display, before = shape
            return _new_name_addr(uri, display, (*before, ("tag", tag)) if before else (("tag", tag),))
    record = _scan_name_addr_text(value, value.find(">"))
    if sep and record is not None:
        params = record.params
        if params and params[-1] == ("tag", tag):  # then key + ";tag=" + any token parses alike
            if len(_ADDRESS_SHAPES) >= _SHAPES_MAX:
                _ADDRESS_SHAPES.clear()
            _ADDRESS_SHAPES[key] = (record.uri, record.display_name, params[:-1])
    return record


def _scan_name_addr_text(value: str, gt: int) -> NameAddr | None:
    if gt < 0:  # addr-spec
        if "<" in value or value[:1] == '"':
            return None
        uri_text, semi, param_text = value.partition(";")
        if "?" in uri_text or "," in uri_text or " " in uri_text or "\t" in uri_text:
            return None
        display = None
    else:
        lt = value.find("<")
        if lt < 0 or lt > gt:
            return None
        display = None
        if lt:
            text = value[:lt]
            if text[0] == '"':
                text = text.rstrip(" \t")
                display = text[1:-1]
                if len(text) < 2 or text[-1] != '"' or '"' in display or "\\" in display \
                        or "\r" in display or "\n" in display:
                    return None
            else:
                display = text.rstrip(" ")
                if not display or display[0] == " " or "  " in display or not _TOKENS_AND_SPACE.issuperset(display):
                    return None
        uri_text = value[lt + 1:gt]
        semi = value[gt + 1:gt + 2]
        if semi and semi != ";":
            return None
        param_text = value[gt + 2:]
    uri = parse_uri_or_none(uri_text)
    if uri is None:
        return None
    if not semi:
        return _new_name_addr(uri, display, ())
    params = scan_params(param_text)
    return None if params is None else _new_name_addr(uri, display, params)


def _parse_name_addr(value: str) -> NameAddr:
    """``( name-addr / addr-spec ) *( SEMI param )``, as in From, To, Contact, Route, ...

    Accepts no LWS between a token display name and ``<`` (RFC 4475 §3.1.1.6, an erratum). In the
    addr-spec form, what follows the first ``;`` is header parameters, and a URI containing ``?``
    must be in angle brackets (§20.10; RFC 4475 §3.1.2.13).
    """
    text = value.strip(" \t")
    display: str | None = None
    if text[:1] == '"':
        end = quoted_end(text, 0)
        display = unquote(text[:end])
        text = text[end:].lstrip(" \t")
        if text[:1] != "<":
            raise ParseError(f"quoted display name not followed by <uri>: {cut(value)}")
    lt = text.find("<")
    if lt >= 0 and (text.find(";", 0, lt) < 0 or display is not None):
        if display is None and lt:
            display = " ".join(w for w in text[:lt].replace("\t", " ").split(" ") if w)
            if not _TOKENS_AND_SPACE.issuperset(display):  # RFC 4475 §3.1.2.15: unquoted non-token
                raise ParseError(f"display name must be tokens or a quoted string: {cut(text[:lt])}")
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError(f"unclosed '<' in {cut(value)}")
        uri = parse_uri(text[lt + 1:gt])
        rest = text[gt + 1:].lstrip(" \t")
    else:
        uri_text, semi, rest_ = text.partition(";")
        uri_text = uri_text.rstrip(" \t")
        if "?" in uri_text or "," in uri_text:
            raise ParseError(f"URI with '?' or ',' must be enclosed in <>: {cut(value)}")
        uri = parse_uri(uri_text)
        rest = semi + rest_
    if not rest:
        return NameAddr(uri, display)
    if rest[0] != ";":
        raise ParseError(f"junk after address: {cut(rest)}")
    return NameAddr(uri, display, parse_params(rest[1:]))


# --- CSeq (§20.16), Content-Type (§20.15), delta-seconds ----------------------------------------------

@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE``. The number is a 32-bit unsigned integer (§8.1.1.5, RFC 4475 §3.1.2.4)."""

    number: int
    method: str

    def __post_init__(self) -> None:
        if type(self.number) is not int or not 0 <= self.number <= 0xFFFFFFFF:
            raise ParseError(f"CSeq number out of range: {self.number!r}")
        if not isinstance(self.method, str) or not is_token(self.method):
            raise ParseError(f"bad CSeq method {cut(str(self.method))}")

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


_PARSE_CSEQ_MEMO = Memo()


def parse_cseq(value: str) -> CSeq:
    hit = _PARSE_CSEQ_MEMO.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    record = _scan_cseq(value) or _parse_cseq(value)
    _PARSE_CSEQ_MEMO.remember(value, record)
    return record


_new_cseq = trusted_constructor(CSeq, "number", "method")


def _scan_cseq(value: str) -> CSeq | None:
    """``4711 INVITE``: up to 9 digits (below 2**32), one SP, a known method; else None."""
    number, _, method = value.partition(" ")
    known = _METHODS.get(method)
    if known is None or not number or len(number) > 9 or not DIGITS.issuperset(number):
        return None
    return _new_cseq(int(number), known)


def _parse_cseq(value: str) -> CSeq:
    parts = [p for p in value.replace("\t", " ").split(" ") if p]  # LWS is SP/HTAB only
    if len(parts) != 2:
        raise ParseError(f"bad CSeq {cut(value)}")
    number, method = parts
    if not is_digits(number) or len(number.lstrip("0")) > 10:
        raise ParseError(f"bad CSeq number {cut(number)}")
    return CSeq(int(number), intern_method(method))


def _delta_seconds(value: str, what: str) -> int:
    """delta-seconds (1*DIGIT) that fits 32 bits (RFC 4475 §3.1.2.4); leading zeros allowed."""
    if not is_digits(value) or len(value.lstrip("0")) > 10 or int(value) > 0xFFFFFFFF:
        raise ParseError(f"bad {what} {cut(value)}")
    return int(value)


def parse_delta_seconds(value: str, what: str) -> int:
    return _delta_seconds(value.strip(" \t"), what)


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype;param=value`` (Content-Type, §20.15). Type and subtype are lowercased."""

    type: str
    subtype: str
    params: Params = ()

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not is_token(self.type) \
                or not isinstance(self.subtype, str) or not is_token(self.subtype):
            raise ParseError(f"bad media type {self.type!r}/{self.subtype!r}")
        params = check_params(self.params, "media type")
        if params != self.params:
            object.__setattr__(self, "params", params)
        if self.type != self.type.lower():
            object.__setattr__(self, "type", self.type.lower())
        if self.subtype != self.subtype.lower():
            object.__setattr__(self, "subtype", self.subtype.lower())

    @property
    def mime(self) -> str:
        """``"application/sdp"``: what to compare against."""
        return f"{self.type}/{self.subtype}"

    def param(self, name: str, default: str | None = None) -> str | None:
        return get_param(self.params, name, default)

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}{render_params(self.params)}"


_PARSE_MEDIA_TYPE_MEMO = Memo()


def parse_media_type(value: str) -> MediaType:
    hit = _PARSE_MEDIA_TYPE_MEMO.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    record = _parse_media_type(value)
    _PARSE_MEDIA_TYPE_MEMO.remember(value, record)
    return record


def _parse_media_type(value: str) -> MediaType:
    head, semi, rest = value.partition(";") if '"' not in value else _partition_semi(value)
    mtype, slash, subtype = head.partition("/")
    if not slash:
        raise ParseError(f"bad media type {cut(value)}")
    params = parse_params(rest) if semi else ()
    return MediaType(mtype.strip(" \t"), subtype.strip(" \t"), params)


# --- header fields given in code -------------------------------------------------------------------

HeaderValue = str | int | Via | NameAddr | CSeq | MediaType | SipUri | AbsoluteUri
"""What a header value may be when a message is built in code; records are rendered with str()."""
Field = tuple[str, str, str]
"""A header line inside a message: (key, canonical name, raw value)."""


def make_field(name: str, value: HeaderValue) -> Field | None:
    """Check one header given in code (name a token, value free of CR/LF/NUL: no header
    injection); None for Content-Length, which messages always compute themselves."""
    if not isinstance(name, str):
        raise TypeError(f"header name must be a str, not {name!r}")
    key, display = canonical_name(name)
    if key == "content-length":
        return None
    if isinstance(value, str):
        text = value.strip(" \t")
    elif isinstance(value, (Via, NameAddr, CSeq, MediaType, SipUri, AbsoluteUri)) or \
            (type(value) is int and value >= 0):
        text = str(value)
    else:
        raise TypeError(f"bad value for header {display}: {value!r}")
    if "\r" in text or "\n" in text or "\0" in text:
        raise ParseError(f"header {display} value contains CR, LF or NUL: {cut(text)}")
    return key, display, text


def make_fields(headers: Iterable[tuple[str, HeaderValue]]) -> list[Field]:
    out = []
    for name, value in headers:
        field = make_field(name, value)
        if field is not None:
            out.append(field)
    return out
