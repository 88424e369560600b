"""Header field names and the structured values the transaction and dialog layers read.

Names (RFC 3261 §7.3, §20): case-insensitive; :func:`canonical_name` maps any spelling, and the
compact forms (§7.3.3 and the extensions' own), to a lowercase *key* and the canonical display
name we serialize (``v`` -> ``("via", "Via")``). Unknown names keep their spelling.

Comma lists (§7.3.1): a header whose grammar is ``x *(COMMA x)`` may be split over several lines
or combined on one; :data:`LIST_HEADERS` names them. Everything else is never split on commas,
in particular the ones whose grammar has bare commas in it: WWW-Authenticate, Authorization,
Proxy-Authenticate, Proxy-Authorization, Authentication-Info, Date, and unknown headers (RFC 4475
§3.1.1.1 "UnknownHeaderWithUnusualValue").

Records (frozen, validated when built, ``str()`` renders the canonical form):
:class:`Via`, :class:`NameAddr` (From, To, Contact, Route, Record-Route, Refer-To, ...),
:class:`CSeq`, :class:`MediaType`. The ``parse_*`` functions take one unfolded value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sipcore.syntax import (
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
    parse_params,
    quote,
    quoted_end,
    render_params,
    unquote,
)
from sipcore.uri import AbsoluteUri, SipUri, Uri, check_host, parse_hostport, parse_uri

__all__ = [
    "CSeq", "Field", "HeaderValue", "LIST_HEADERS", "MediaType", "Method", "NameAddr", "Via", "canonical_name",
    "intern_method", "make_field", "make_fields", "parse_cseq", "parse_media_type", "parse_name_addr", "parse_via",
]

_FULL_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
    "Call-Info", "Contact", "Content-Disposition", "Content-Encoding", "Content-Language",
    "Content-Length", "Content-Type", "CSeq", "Date", "Diversion", "Error-Info", "Event", "Expires",
    "From", "Geolocation", "History-Info", "Identity", "Identity-Info", "In-Reply-To", "Join",
    "Max-Forwards", "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity",
    "P-Preferred-Identity", "Path", "Priority", "Privacy", "Proxy-Authenticate",
    "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-Sub",
    "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To", "Request-Disposition",
    "Require", "Resource-Priority", "Retry-After", "Route", "RSeq", "Security-Client",
    "Security-Server", "Security-Verify", "Server", "Service-Route", "Session-Expires", "SIP-ETag",
    "SIP-If-Match", "Subject", "Subscription-State", "Supported", "Target-Dialog", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate",
)
# Compact forms: RFC 3261 §7.3.3 (i m e l c f s k t v), RFC 3265 (o u), RFC 3515 (r), RFC 3892 (b),
# RFC 4028 (x), RFC 4474 (y n), RFC 3841 (a j d).
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event",
    "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "y": "Identity",
    "n": "Identity-Info", "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition",
}
_BY_LOWER: dict[str, tuple[str, str]] = {n.lower(): (n.lower(), n) for n in _FULL_NAMES}
_BY_LOWER.update({c: (n.lower(), n) for c, n in _COMPACT.items()})
# exact spellings seen on the wire, looked up before paying for .lower()
_BY_EXACT: dict[str, tuple[str, str]] = dict(_BY_LOWER)
_BY_EXACT.update({n: (n.lower(), n) for n in _FULL_NAMES})
_BY_EXACT.update({c.upper(): (n.lower(), n) for c, n in _COMPACT.items()})
_BY_EXACT.update({"Call-Id": _BY_LOWER["call-id"], "Cseq": _BY_LOWER["cseq"], "CSEQ": _BY_LOWER["cseq"]})

LIST_HEADERS = frozenset(n.lower() for n in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Call-Info", "Contact", "Content-Encoding",
    "Content-Language", "Diversion", "Error-Info", "History-Info", "In-Reply-To",
    "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Proxy-Require", "Reason", "Record-Route",
    "Reject-Contact", "Request-Disposition", "Require", "Resource-Priority", "Route",
    "Security-Client", "Security-Server", "Security-Verify", "Service-Route", "Supported",
    "Unsupported", "Via", "Warning",
))
"""Keys of the headers whose values are comma lists (RFC 3261 §7.3.1 and the extensions)."""


def canonical_name(name: str) -> tuple[str, str]:
    """``(key, display)`` for a header name: lowercase full-name key, canonical spelling.

    Compact forms become their full name. Raises ParseError if ``name`` is not a token.
    """
    hit = _BY_EXACT.get(name) or _BY_LOWER.get(name.lower())
    if hit is not None:
        return hit
    if not name or not TOKEN_CHARS.issuperset(name):
        raise ParseError(f"bad header name {cut(name)}")
    return name.lower(), name


class Method(StrEnum):
    """The methods we know (RFC 3261, 3262, 3265, 3311, 3428, 3515, 6086).

    Methods are case-sensitive tokens (§7.1). A request with another method still parses: its
    ``method`` is then a plain ``str`` (``known_method`` is None) and the UAS answers 405/501
    (§8.2.1). A Method member *is* a ``str``, so ``req.method == "INVITE"`` works either way.
    """

    INVITE = "INVITE"
    ACK = "ACK"
    BYE = "BYE"
    CANCEL = "CANCEL"
    OPTIONS = "OPTIONS"
    REGISTER = "REGISTER"
    REFER = "REFER"
    NOTIFY = "NOTIFY"
    SUBSCRIBE = "SUBSCRIBE"
    INFO = "INFO"
    PRACK = "PRACK"
    UPDATE = "UPDATE"
    MESSAGE = "MESSAGE"


_METHODS: dict[str, str] = {m.value: m for m in Method}


def intern_method(token: str) -> str:
    """The Method member for a known method token, else the token itself (unchecked)."""
    return _METHODS.get(token, token)


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
    hit = _PARSE_VIA_MEMO.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    record = _parse_via(value)
    _PARSE_VIA_MEMO.remember(value, record)
    return record


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
    hit = _PARSE_NAME_ADDR_MEMO.get(value)
    if hit is not None:
        return hit  # type: ignore[return-value]
    record = _parse_name_addr(value)
    _PARSE_NAME_ADDR_MEMO.remember(value, record)
    return record


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
    record = _parse_cseq(value)
    _PARSE_CSEQ_MEMO.remember(value, record)
    return record


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
