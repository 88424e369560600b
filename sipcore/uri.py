"""URIs: SIP/SIPS URIs (RFC 3261 §19.1, grammar §25.1) and, opaque, every other scheme.

:func:`parse_uri` returns a :class:`SipUri` for ``sip:``/``sips:`` and an :class:`AbsoluteUri`
for anything else that is syntactically an absolute URI (``tel:``, ``urn:``, ``http:``,
``nobodyKnowsThisScheme:...``; RFC 4475 §3.3.2 wants those parsed, the application answers 416).

Components are stored the way they appear on the wire: still %-escaped (``user``, ``password``,
parameter values, URI headers), because unescaping is not idempotent (RFC 4475 §3.1.1.3: the
value ``v%61lue%25%34%31`` means ``value%41``, never ``valueA``). :attr:`SipUri.user_unescaped`
decodes, and :meth:`SipUri.equivalent` compares the RFC 3261 §19.1.4 way (escapes decoded, host
case-insensitive, parameters by the RFC's rules). Parameter *names* are lowercased.

Hosts (RFC 3261 ``host``, RFC 5118): a domain name, a dotted IPv4 address, or an IPv6 reference
*with* its brackets, ``[2001:db8::1]``; :attr:`SipUri.address` has the bare address for sockets.
An IPv6 address without brackets is refused (RFC 5118 §4.2).

A record built in code is checked exactly like one read off the wire: ``__post_init__`` raises
:class:`~sipcore.syntax.ParseError` for anything the grammar does not allow.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sipcore.syntax import (
    ALPHANUM,
    DIGITS,
    RESERVED,
    UNRESERVED,
    Memo,
    Params,
    ParseError,
    check_escapes,
    cut,
    get_param,
    has_param,
    is_digits,
    render_params,
    trusted_constructor,
    unescape,
)

__all__ = ["AbsoluteUri", "SipUri", "Uri", "check_host", "host_ok", "parse_hostport", "parse_uri", "parse_uri_or_none"]

_USER_CHARS = UNRESERVED | frozenset("&=+$,;?/%")
_PASSWORD_CHARS = UNRESERVED | frozenset("&=+$,%")
_PARAM_CHARS = UNRESERVED | frozenset("[]/:&+$%")
_HEADER_CHARS = UNRESERVED | frozenset("[]/?:+$%")
_HOST_CHARS = ALPHANUM | frozenset("-.")
_SCHEME_CHARS = ALPHANUM | frozenset("+-.")
_URIC = UNRESERVED | RESERVED | frozenset("%[]")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# §19.1.4: present in one URI only, these parameters make two URIs differ (transport too: its
# example "sip:bob@biloxi.com" vs "sip:bob@biloxi.com;transport=udp" is listed as not equivalent)
_STRICT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


_GOOD_HOSTS = Memo(4096)  # hosts already checked: peers repeat theirs in every message


def check_host(host: str) -> None:
    """Raise ParseError unless ``host`` is hostname / IPv4address / IPv6reference (§25.1)."""
    if host in _GOOD_HOSTS:
        return
    _check_host(host)
    _GOOD_HOSTS.remember(host, True)


def _check_host(host: str) -> None:
    if host[:1] == "[":
        inner = host[1:-1]
        if host[-1:] != "]" or "%" in inner or ":" not in inner:
            raise ParseError(f"bad IPv6 reference {cut(host)}")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise ParseError(f"bad IPv6 reference {cut(host)}") from None
        return
    if not host or not _HOST_CHARS.issuperset(host):
        raise ParseError(f"bad host {cut(host)}")
    labels = (host[:-1] if host[-1] == "." else host).split(".")
    if all(label.isdigit() for label in labels):  # all-numeric: it must be a dotted IPv4 address
        if len(labels) != 4 or any(len(x) > 3 or int(x) > 255 for x in labels):
            raise ParseError(f"bad IPv4 address {cut(host)}")
        return
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-":
            raise ParseError(f"bad host {cut(host)}")
    if labels[-1][0] not in _ALPHA:  # toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum
        raise ParseError(f"bad host {cut(host)}")


def _port(text: str) -> int:
    if not is_digits(text) or len(text) > 5 or int(text) > 65535:
        raise ParseError(f"bad port {cut(text)}")
    return int(text)


def parse_hostport(text: str) -> tuple[str, int | None]:
    """``host [ ":" port ]`` (RFC 3261 hostport / sent-by without LWS) into (host, port).
    The port is checked here; the host by the record it goes into (:func:`check_host`)."""
    if text[:1] == "[":
        close = text.find("]")
        if close < 0:
            raise ParseError(f"unclosed IPv6 reference {cut(text)}")
        host, rest = text[:close + 1], text[close + 1:]
        if rest and rest[0] != ":":
            raise ParseError(f"junk after IPv6 reference {cut(text)}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.partition(":")
        port_text = port_text_ if colon else None
    return host, (None if port_text is None else _port(port_text))


def _check_uri_params(params: Params, what: str) -> Params:
    out = []
    for item in params:
        if not isinstance(item, tuple) or len(item) != 2:
            raise ParseError(f"{what} parameters must be (name, value) pairs, not {item!r}")
        name, value = item
        if not isinstance(name, str) or not name or not _PARAM_CHARS.issuperset(name):
            raise ParseError(f"bad {what} parameter name {name!r}")
        check_escapes(name, what)
        if value is not None:
            if not isinstance(value, str) or not value or not _PARAM_CHARS.issuperset(value):
                raise ParseError(f"bad value for {what} parameter {name!r}: {cut(str(value))}")
            check_escapes(value, what)
        out.append((name.lower(), value))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user:password@host:port;params?headers`` (``sips:`` when ``secure``)."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    secure: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.host, str):
            raise ParseError(f"SIP URI host must be a str, not {self.host!r}")
        check_host(self.host)
        if self.user is not None:
            if not isinstance(self.user, str) or not self.user or not _USER_CHARS.issuperset(self.user):
                raise ParseError(f"bad user part {cut(str(self.user))}")
            check_escapes(self.user, "user part")
        if self.password is not None:
            if self.user is None:
                raise ParseError("a password needs a user part")
            if not isinstance(self.password, str) or not _PASSWORD_CHARS.issuperset(self.password):
                raise ParseError(f"bad password {cut(str(self.password))}")
            check_escapes(self.password, "password")
        if self.port is not None and (type(self.port) is not int or not 0 <= self.port <= 65535):
            raise ParseError(f"bad port {self.port!r}")
        params = _check_uri_params(self.params, "URI")
        if params != self.params:
            object.__setattr__(self, "params", params)
        for item in self.headers:
            if not isinstance(item, tuple) or len(item) != 2:
                raise ParseError(f"URI headers must be (name, value) pairs, not {item!r}")
            name, value = item
            if not isinstance(name, str) or not name or not _HEADER_CHARS.issuperset(name) \
                    or not isinstance(value, str) or not _HEADER_CHARS.issuperset(value):
                raise ParseError(f"bad URI header {cut(str(name))}={cut(str(value))}")
            check_escapes(name + value, "URI header")

    @property
    def scheme(self) -> str:
        return "sips" if self.secure else "sip"

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %-escapes decoded (RFC 4475 §3.1.1.4: ``%00`` stays a NUL)."""
        return None if self.user is None else unescape(self.user)

    @property
    def address(self) -> str:
        """The host without IPv6 brackets, as a socket wants it."""
        return self.host[1:-1] if self.host[:1] == "[" else self.host

    def param(self, name: str, default: str | None = None) -> str | None:
        """A URI parameter's value (still escaped); ``default`` when absent or valueless."""
        return get_param(self.params, name, default)

    def has_param(self, name: str) -> bool:
        return has_param(self.params, name)

    @property
    def transport(self) -> str | None:
        value = get_param(self.params, "transport")
        return None if value is None else value.lower()

    @property
    def maddr(self) -> str | None:
        return get_param(self.params, "maddr")

    @property
    def lr(self) -> bool:
        """Loose routing (RFC 3261 §19.1.1, §16.12)."""
        return has_param(self.params, "lr")

    def __str__(self) -> str:
        parts = ["sips:" if self.secure else "sip:"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        if self.params:
            parts.append(render_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)

    def equivalent(self, other: Uri) -> bool:
        """URI comparison per RFC 3261 §19.1.4 (escapes decoded, host and params case-insensitive)."""
        if not isinstance(other, SipUri) or self.secure != other.secure:
            return False
        if self.user_unescaped != other.user_unescaped or _unesc(self.password) != _unesc(other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {unescape(k).lower(): v for k, v in self.params}
        theirs = {unescape(k).lower(): v for k, v in other.params}
        for name in _STRICT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (a is None) != (b is None) or (a is not None and b is not None
                                              and unescape(a).lower() != unescape(b).lower()):
                return False
        mh = {(unescape(k).lower(), unescape(v)) for k, v in self.headers}
        oh = {(unescape(k).lower(), unescape(v)) for k, v in other.headers}
        return mh == oh


def _unesc(text: str | None) -> str | None:
    return None if text is None else unescape(text)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other scheme, kept opaque: ``scheme`` (lowercased) and what follows the colon."""

    scheme: str
    opaque: str

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, str) or not self.scheme or self.scheme[0] not in _ALPHA \
                or not _SCHEME_CHARS.issuperset(self.scheme):
            raise ParseError(f"bad URI scheme {cut(str(self.scheme))}")
        if self.scheme.lower() in ("sip", "sips"):
            raise ParseError("sip/sips URIs are SipUri, not AbsoluteUri")
        if not isinstance(self.opaque, str) or not self.opaque or not _URIC.issuperset(self.opaque):
            raise ParseError(f"bad {self.scheme} URI {cut(str(self.opaque))}")
        check_escapes(self.opaque, "URI")
        if self.scheme != self.scheme.lower():
            object.__setattr__(self, "scheme", self.scheme.lower())

    def __str__(self) -> str:
        return f"{self.scheme}:{self.opaque}"

    def equivalent(self, other: Uri) -> bool:
        """RFC 3986-ish: same scheme and same text once escapes are decoded."""
        return isinstance(other, AbsoluteUri) and self.scheme == other.scheme \
            and unescape(self.opaque) == unescape(other.opaque)


Uri = SipUri | AbsoluteUri


_MEMO = Memo()


def parse_uri(text: str) -> Uri:
    """Parse a Request-URI or the URI of a name-addr/addr-spec. No LWS is allowed inside."""
    hit = _MEMO.get(text)
    if hit is not None:
        return hit  # type: ignore[return-value]
    uri = _scan_sip_uri(text) or _parse_uri(text)
    _MEMO.remember(text, uri)
    return uri


def parse_uri_or_none(text: str) -> Uri | None:
    """:func:`parse_uri`, None instead of ParseError (for the scanners of other records)."""
    hit = _MEMO.get(text)
    if hit is not None:
        return hit  # type: ignore[return-value]
    uri: Uri | None = _scan_sip_uri(text)
    if uri is None:
        try:
            uri = _parse_uri(text)
        except ParseError:
            return None
    _MEMO.remember(text, uri)
    return uri


_new_sip_uri = trusted_constructor(SipUri, "host", "user", "password", "port", "params", "headers", "secure")
_SCAN_USER_CHARS = _USER_CHARS - frozenset("%?:")
_SCAN_PARAM_CHARS = (_PARAM_CHARS - frozenset("%")) | frozenset(";=")


def host_ok(host: str) -> bool:
    """:func:`check_host` as a test (for the scanners, which never raise)."""
    if host in _GOOD_HOSTS:
        return True
    try:
        _check_host(host)
    except ParseError:
        return False
    _GOOD_HOSTS.remember(host, True)
    return True


def _scan_sip_uri(text: str) -> SipUri | None:
    """The usual ``sip:user@host:port;param=value`` (lowercase scheme, no escapes, no password,
    no URI headers, no IPv6): what :func:`_parse_uri` returns, or None to let it decide.

    Proof by character classes: the user part holds only user chars (without ``%``, so no
    escape to check), the host passes :func:`check_host`, the port is at most 5 digits and
    65535, and the parameters hold only paramchars, ``;`` and ``=`` (names and values
    non-empty, one ``=`` per piece)."""
    if text[:4] == "sip:":
        rest, secure = text[4:], False
    elif text[:5] == "sips:":
        rest, secure = text[5:], True
    else:
        return None
    user: str | None = None
    at = rest.find("@")
    if at >= 0:
        user = rest[:at]
        if not user or not _SCAN_USER_CHARS.issuperset(user):
            return None
        rest = rest[at + 1:]
    hostport, semi, param_text = rest.partition(";")
    host, colon, port_text = hostport.partition(":")
    if host not in _GOOD_HOSTS and (host[:1] == "[" or not host_ok(host)):
        return None
    port: int | None = None
    if colon:
        if not port_text or len(port_text) > 5 or not DIGITS.issuperset(port_text):
            return None
        port = int(port_text)
        if port > 65535:
            return None
    params: Params = ()
    if semi:
        if not _SCAN_PARAM_CHARS.issuperset(param_text):
            return None
        items = []
        for piece in param_text.split(";"):
            name, eq, value = piece.partition("=")
            if not name or (eq and (not value or "=" in value)):
                return None
            items.append((name.lower(), value if eq else None))
        params = tuple(items)
    return _new_sip_uri(host, user, None, port, params, (), secure)


def _parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or scheme[0] not in _ALPHA or not _SCHEME_CHARS.issuperset(scheme):
        raise ParseError(f"not a URI: {cut(text)}")
    lower = scheme.lower()
    if lower != "sip" and lower != "sips":
        return AbsoluteUri(lower, rest)
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:  # '@' cannot appear unescaped after the userinfo (not in paramchar or hvalue)
        userinfo, rest = rest[:at], rest[at + 1:]
        user_text, pcolon, pw = userinfo.partition(":")
        user, password = user_text, (pw if pcolon else None)
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = parse_hostport(hostport)
    params: Params = ()
    if semi:
        items = []
        for piece in param_text.split(";"):
            name, eq, value = piece.partition("=")
            items.append((name, value if eq else None))
        params = tuple(items)
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        hitems = []
        for piece in header_text.split("&"):
            name, eq, value = piece.partition("=")
            if not eq:
                raise ParseError(f"URI header without '=': {cut(piece)}")
            hitems.append((name, value))
        headers = tuple(hitems)
    return SipUri(host, user, password, port, params, headers, lower == "sips")
