"""SIP requests and responses (RFC 3261 §7): the records the parser returns and the stack builds.

How it works. A message holds its start line, its header fields as ``(key, name, value)`` triples
in wire order (``key`` the lowercase full name, ``name`` the canonical spelling we serialize,
``value`` the unfolded raw text), and its body. That is all :func:`sipcore.parser.parse_message`
computes up front. Structured values (:attr:`via`, :attr:`cseq`, :attr:`from_`, :attr:`contacts`,
...) are parsed on first access and cached; a malformed one raises :class:`ParseError` (400) from
the accessor. :meth:`validate` parses every field the transaction and dialog layers rely on and
checks their consistency, so after it returns those accessors cannot raise. Receive path:
``msg = parse_message(data); msg.validate()``; on ParseError answer
``make_error_response(err)`` (None means: drop it).

Messages are immutable: there are no setters, and the builders (:meth:`with_header`,
:meth:`prepend_header`, :meth:`replace_header`, :meth:`without_header`, :meth:`with_top_via`,
:meth:`with_body`) return new messages. ``bytes(msg)`` is canonical: full header names, CRLF line ends, one field per
line as received (list values stay combined as they came), and a ``Content-Length`` that we
always write ourselves, last, from the body. Content-Length is therefore never among
:attr:`headers`; :attr:`content_length` is the body's length.

Header values given in code may be ``str``, ``int`` or any of the records (``Via``, ``NameAddr``,
``CSeq``, ``MediaType``, ``SipUri``, ``AbsoluteUri``); they are rendered with ``str()`` and refused
if they contain CR, LF or NUL (header injection).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Self, TypeVar

from sipcore.headers import (
    _PARSE_VIA_MEMO,
    LIST_HEADERS,
    CSeq,
    Field,
    HeaderValue,
    MediaType,
    Method,
    NameAddr,
    Via,
    canonical_name,
    intern_method,
    make_field,
    make_fields,
    parse_cseq,
    parse_delta_seconds,
    parse_media_type,
    parse_name_addr,
    parse_via,
)
from sipcore.syntax import ParseError, cut, default_reason, is_token, split_commas
from sipcore.uri import AbsoluteUri, SipUri, Uri, parse_uri
from sipcore.validation import (
    MAX_LIST_VALUES,
    build_index,
    check_call_id,
    check_fields,
    check_max_forwards,
    is_contact_wildcard,
    parse_list,
    parse_single,
)

__all__ = [
    "MAX_LIST_VALUES", "HeaderValue", "Method", "Request", "Response", "make_error_response", "make_response",
]

_R = TypeVar("_R")
_RESPONSE_COPY = frozenset(("via", "from", "to", "call-id", "cseq"))


class Message:
    """What requests and responses share: header fields, body, lazy structured accessors."""

    __slots__ = ("_fields", "_body", "_version", "_index", "_cache", "_wire")

    _fields: list[Field]
    _body: bytes
    _version: str
    _index: dict[str, Sequence[str]] | None
    _cache: dict[str, object]
    _wire: bytes | None

    def _init_common(self, fields: list[Field], body: bytes, version: str) -> None:
        self._fields = fields
        self._body = body
        self._version = version
        self._index = None
        self._cache = {}
        self._wire = None

    # --- raw header access -------------------------------------------------------------------------
    def _lines(self, key: str) -> Sequence[str]:
        index = self._index
        if index is None:
            index = self._index = build_index(self._fields)
        return index.get(key) or ()

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """``(name, raw value)`` per header line, in order (Content-Length excluded)."""
        return tuple((n, v) for _, n, v in self._fields)

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def version(self) -> str:
        return self._version

    def header(self, name: str) -> str | None:
        """The raw value of the first line of header ``name`` (any case, compact form allowed)."""
        lines = self._lines(canonical_name(name)[0])
        return lines[0] if lines else None

    def has_header(self, name: str) -> bool:
        return bool(self._lines(canonical_name(name)[0]))

    def header_values(self, name: str) -> list[str]:
        """All values of ``name``: comma lists (§7.3.1) split, every other header one per line."""
        key = canonical_name(name)[0]
        lines = self._lines(key)
        if key not in LIST_HEADERS:
            return list(lines)
        out: list[str] = []
        for line in lines:
            out.extend(split_commas(line))
        return out

    # --- structured accessors (lazy, cached) --------------------------------------------------------
    @property
    def via(self) -> Via:
        """The top Via (the one transactions match on, §17.1.3/§17.2.3)."""
        got = self._cache.get("via")
        if got is None:
            lines = self._lines("via")
            if not lines:
                raise ParseError("missing Via header")
            try:
                got = parse_via(split_commas(lines[0])[0] if "," in lines[0] else lines[0])
            except ParseError as exc:
                raise ParseError(f"Via: {exc}") from None
            self._cache["via"] = got
        return got  # type: ignore[return-value]

    @property
    def vias(self) -> tuple[Via, ...]:
        got = self._parsed_list("via", "Via", parse_via)
        if not got:
            raise ParseError("missing Via header")
        return got

    @property
    def call_id(self) -> str:
        got = self._cache.get("call-id")
        if got is None:
            got = self._cache["call-id"] = check_call_id(self._lines("call-id"))
        return got  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        got = self._cache.get("cseq")
        if got is None:
            got = self._cache["cseq"] = parse_single(self._lines("cseq"), "CSeq", parse_cseq)
        return got  # type: ignore[return-value]

    def _name_addr(self, key: str, display: str) -> NameAddr:
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = parse_single(self._lines(key), display, parse_name_addr)
        return got  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("from", "From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("to", "To")

    @property
    def from_tag(self) -> str | None:
        return self.from_.tag

    @property
    def to_tag(self) -> str | None:
        return self.to.tag

    def _parsed_list(self, key: str, display: str, parser: Callable[[str], _R]) -> tuple[_R, ...]:
        """All values of a comma-list header, parsed (at most MAX_LIST_VALUES of them)."""
        got = self._cache.get(key + "*")
        if got is None:
            lines = self._lines(key)
            got = self._cache[key + "*"] = parse_list(lines, display, parser) if lines else ()
        return got  # type: ignore[return-value]

    @property
    def contact_wildcard(self) -> bool:
        """``Contact: *`` (REGISTER removing all bindings, §10.2.2)."""
        return is_contact_wildcard(self._lines("contact"))

    @property
    def contacts(self) -> tuple[NameAddr, ...]:
        """The Contact values (empty for none and for the ``*`` wildcard)."""
        if self.contact_wildcard:
            return ()
        return self._parsed_list("contact", "Contact", parse_name_addr)

    @property
    def routes(self) -> tuple[NameAddr, ...]:
        return self._parsed_list("route", "Route", parse_name_addr)

    @property
    def record_routes(self) -> tuple[NameAddr, ...]:
        return self._parsed_list("record-route", "Record-Route", parse_name_addr)

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22), 0..255; None if absent."""
        lines = self._lines("max-forwards")
        if not lines:
            return None
        return check_max_forwards(lines[0])

    @property
    def expires(self) -> int | None:
        """The Expires header (§20.19) in seconds; None if absent; ParseError beyond 32 bits."""
        lines = self._lines("expires")
        return parse_delta_seconds(lines[0], "Expires") if lines else None

    @property
    def content_type(self) -> MediaType | None:
        got = self._cache.get("content-type")
        if got is None:
            lines = self._lines("content-type")
            if not lines:
                return None
            got = self._cache["content-type"] = parse_single(lines, "Content-Type", parse_media_type)
        return got  # type: ignore[return-value]

    @property
    def content_length(self) -> int:
        return len(self._body)

    # --- validation ---------------------------------------------------------------------------------
    def _check_common(self) -> dict[str, Sequence[str]]:
        """The checks requests and responses share (see :func:`sipcore.validation.check_fields`)."""
        if self._version != "SIP/2.0":
            raise ParseError(f"SIP version {cut(self._version)} is not supported", status=505)
        index = self._index
        if index is None:
            index = self._index = build_index(self._fields)
        check_fields(self._fields, index, self._cache, bool(self._body))
        return index

    def _error_context(self, exc: ParseError) -> ParseError:
        exc.headers = self.headers
        return exc

    # --- serialization ------------------------------------------------------------------------------
    if TYPE_CHECKING:   # Request and Response define it
        def _start_line(self) -> str: ...

    def to_bytes(self) -> bytes:
        wire = self._wire
        if wire is None:
            head = [self._start_line(), "\r\n"]
            head += [f"{n}: {v}\r\n" for _, n, v in self._fields]
            head.append(f"Content-Length: {len(self._body)}\r\n\r\n")
            wire = "".join(head).encode("utf-8", "surrogateescape") + self._body
            self._wire = wire
        return wire

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    # --- builders -----------------------------------------------------------------------------------
    if TYPE_CHECKING:   # Request and Response define it
        def _derive(self, fields: list[Field], body: bytes | None = None) -> Self: ...

    def with_header(self, name: str, value: HeaderValue) -> Self:
        """A copy with one more header line, at the end."""
        f = make_field(name, value)
        return self if f is None else self._derive(self._fields + [f])

    def prepend_header(self, name: str, value: HeaderValue) -> Self:
        """A copy with the value first among its name (a proxy's Via or Record-Route, §16.6)."""
        f = make_field(name, value)
        if f is None:
            return self
        fields = list(self._fields)
        at = next((i for i, (k, _, _) in enumerate(fields) if k == f[0]), 0)
        fields.insert(at, f)
        return self._derive(fields)

    def replace_header(self, name: str, value: HeaderValue) -> Self:
        """A copy where ``name`` has this one value, in place of the first old one (else at the end)."""
        f = make_field(name, value)
        if f is None:
            return self
        fields: list[Field] = []
        placed = False
        for old in self._fields:
            if old[0] != f[0]:
                fields.append(old)
            elif not placed:
                fields.append(f)
                placed = True
        if not placed:
            fields.append(f)
        return self._derive(fields)

    def without_header(self, name: str) -> Self:
        key = canonical_name(name)[0]
        return self._derive([f for f in self._fields if f[0] != key])

    def with_top_via(self, via: Via) -> Self:
        """A copy whose top Via value is ``via``; the other values of the first Via line and the
        other Via lines stay (a transport stamping ``received``/``rport``, RFC 3261 §18.2.1, RFC
        3581 §4; :meth:`replace_header` would drop them). The parse cache goes along, the Via
        entries updated, so a validated message needs no new ``validate()``; ``parse_via``'s memo
        learns the text the responses will carry back (§18.2.2). ParseError if there is no Via or
        the first Via line is not a well-formed comma list."""
        if not isinstance(via, Via):
            raise TypeError(f"with_top_via needs a Via, not {via!r}")
        fields = self._fields
        at = next((i for i, field in enumerate(fields) if field[0] == "via"), -1)
        if at < 0:
            raise ParseError("missing Via header")
        key, name, value = fields[at]
        text = str(via)
        _PARSE_VIA_MEMO.remember(text, via)
        if "," in value:
            rest = split_commas(value)[1:]
            if rest:
                text = ", ".join([text, *rest])
        copy = self._derive([*fields[:at], (key, name, text), *fields[at + 1:]])
        cache = dict(self._cache)
        cache["via"] = via
        vias = cache.get("via*")
        if isinstance(vias, tuple):
            cache["via*"] = (via, *vias[1:])
        copy._cache = cache
        return copy

    def with_body(self, body: bytes, content_type: str | MediaType | None = None) -> Self:
        """A copy with this body (and Content-Type, if given); Content-Length follows by itself."""
        fields = self._fields
        if content_type is not None:
            ct = make_field("Content-Type", content_type)
            assert ct is not None
            fields = [f for f in fields if f[0] != "content-type"] + [ct]
        return self._derive(list(fields), bytes(body))


class Request(Message):
    """A SIP request. ``method`` is a :class:`Method` member when known, else the token as str."""

    __slots__ = ("_method", "_uri_text")

    _method: str
    _uri_text: str

    def __init__(self, method: str, uri: Uri | str, headers: Iterable[tuple[str, HeaderValue]] = (),
                 body: bytes = b"") -> None:
        if not isinstance(method, str) or not is_token(method):
            raise ParseError(f"bad method {method!r}")
        if isinstance(uri, str):
            parsed = parse_uri(uri)
        elif isinstance(uri, (SipUri, AbsoluteUri)):
            parsed = uri
        else:
            raise TypeError(f"request URI must be a SipUri, AbsoluteUri or str, not {uri!r}")
        self._method = intern_method(method)
        self._uri_text = str(parsed)
        self._init_common(make_fields(headers), bytes(body), "SIP/2.0")
        self._cache["uri"] = parsed

    @classmethod
    def _from_wire(cls, method: str, uri_text: str, version: str, fields: list[Field],
                   body: bytes) -> Self:
        self = cls.__new__(cls)
        self._method = method
        self._uri_text = uri_text
        self._init_common(fields, body, version)
        return self

    @property
    def method(self) -> str:
        return self._method

    @property
    def known_method(self) -> Method | None:
        """The method as a :class:`Method`, or None for an extension method (§8.2.1: 405/501)."""
        return self._method if isinstance(self._method, Method) else None

    @property
    def uri_text(self) -> str:
        return self._uri_text

    @property
    def uri(self) -> Uri:
        """The Request-URI, parsed on first access (ParseError if malformed)."""
        got = self._cache.get("uri")
        if got is None:
            try:
                got = parse_uri(self._uri_text)
            except ParseError as exc:
                raise ParseError(f"Request-URI: {exc}") from None
            self._cache["uri"] = got
        return got  # type: ignore[return-value]

    def validate(self) -> None:
        """Parse and check what the transaction/dialog layers need (RFC 3261 §8.1.1, §8.2).

        Raises ParseError (with ``method`` and ``headers`` set, for :func:`make_error_response`):
        505 for another SIP version; 400 for a malformed Request-URI or one carrying headers
        (§19.1.1 Table 1, RFC 4475 §3.1.2.11), a missing or malformed Via, From, To, Call-ID or
        CSeq, a CSeq method that differs from the request's (§8.1.1.5), a duplicated single-valued
        header, a malformed Max-Forwards, Contact, Record-Route or Content-Type.
        Not checked (the application's business): the URI scheme, Require, Expires, the body.
        """
        try:
            index = self._check_common()
            cache = self._cache
            uri = cache.get("uri")
            if uri is None:
                uri = self.uri
            if type(uri) is SipUri and uri.headers:
                raise ParseError("Request-URI must not contain headers (RFC 3261 §19.1.1)")
            cseq: CSeq = cache["cseq"]  # type: ignore[assignment]
            if cseq.method != self._method:
                raise ParseError(f"CSeq method {cut(str(cseq.method))} differs from "
                                 f"{cut(str(self._method))}")
            lines = index.get("route")
            if lines is not None:
                cache["route*"] = parse_list(lines, "Route", parse_name_addr)
        except ParseError as exc:
            exc.method = self._method
            raise self._error_context(exc) from None

    def _start_line(self) -> str:
        return f"{self._method} {self._uri_text} {self._version}"

    def _derive(self, fields: list[Field], body: bytes | None = None) -> Self:
        msg = type(self)._from_wire(self._method, self._uri_text, self._version, fields,
                                    self._body if body is None else body)
        if "uri" in self._cache:
            msg._cache["uri"] = self._cache["uri"]
        return msg

    def __repr__(self) -> str:
        return f"<Request {str(self._method)!r} {cut(self._uri_text)} {len(self._fields)} headers " \
               f"{len(self._body)} body bytes>"


class Response(Message):
    """A SIP response: status 100..699 and a reason phrase (the default one if not given)."""

    __slots__ = ("_status", "_reason")

    _status: int
    _reason: str

    def __init__(self, status: int, reason: str | None = None,
                 headers: Iterable[tuple[str, HeaderValue]] = (), body: bytes = b"") -> None:
        if type(status) is not int or not 100 <= status <= 699:
            raise ParseError(f"status code must be an int in 100..699, not {status!r}")
        if reason is None:
            reason = default_reason(status)
        elif not isinstance(reason, str) or "\r" in reason or "\n" in reason or "\0" in reason:
            raise ParseError(f"bad reason phrase {reason!r}")
        self._status = status
        self._reason = reason
        self._init_common(make_fields(headers), bytes(body), "SIP/2.0")

    @classmethod
    def _build(cls, status: int, reason: str | None, fields: list[Field], body: bytes) -> Self:
        """Like the constructor (status and reason checked), with fields already validated."""
        self = cls(status, reason, (), body)
        self._fields = fields
        return self

    @classmethod
    def _from_wire(cls, status: int, reason: str, version: str, fields: list[Field],
                   body: bytes) -> Self:
        self = cls.__new__(cls)
        self._status = status
        self._reason = reason
        self._init_common(fields, body, version)
        return self

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def is_provisional(self) -> bool:
        return self._status < 200

    @property
    def is_final(self) -> bool:
        return self._status >= 200

    def validate(self) -> None:
        """Parse and check what the transaction layer needs; a response that fails is dropped
        (§18.1.2; RFC 4475 §3.1.2.5, §3.1.2.19). Same header checks as :meth:`Request.validate`."""
        try:
            self._check_common()
        except ParseError as exc:
            exc.is_response = True
            raise self._error_context(exc) from None

    def _start_line(self) -> str:
        return f"{self._version} {self._status} {self._reason}"

    def _derive(self, fields: list[Field], body: bytes | None = None) -> Self:
        return type(self)._from_wire(self._status, self._reason, self._version, fields,
                                     self._body if body is None else body)

    def __repr__(self) -> str:
        return f"<Response {self._status} {cut(self._reason)} {len(self._fields)} headers " \
               f"{len(self._body)} body bytes>"


def _to_with_tag(raw: str, tag: str, parsed: object = None) -> str:
    """The To value with ``;tag=`` added unless it has one (textual if the value is malformed).
    ``parsed`` is the value's parse when the request has it cached already."""
    try:
        has_tag = (parsed if isinstance(parsed, NameAddr) else parse_name_addr(raw)).tag is not None
    except ParseError:
        tail = raw[raw.rfind(">") + 1:].lower()
        has_tag = "tag=" in tail.replace(" ", "")
    return raw if has_tag else f"{raw};tag={tag}"


def _copy_for_response(source: Iterable[Field], status: int, to_tag: str | None,
                       to: object = None) -> list[Field]:
    """The fields a response copies; ``to`` is the parse of the first To value, if known."""
    if to_tag is not None and not is_token(to_tag):
        raise ParseError(f"bad To tag {to_tag!r}")
    out = []
    for key, name, value in source:
        if key in _RESPONSE_COPY:
            if key == "to" and to_tag is not None and status != 100:
                value = _to_with_tag(value, to_tag, to)
                to = None  # it was the first To's
            out.append((key, name, value))
        elif key == "timestamp" and status == 100:  # §8.2.6.1
            out.append((key, name, value))
    return out


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, HeaderValue]] = (),
                  body: bytes = b"") -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6: Via (all, in order), From, To, Call-ID and
    CSeq copied verbatim; ``to_tag`` added to To unless it has a tag or ``status`` is 100; a 100
    also echoes Timestamp (§8.2.6.1). ``headers`` are appended. Choosing the tag is the caller's
    job (a UAS MUST add one to every non-100 response outside a dialog, §8.2.6.2)."""
    fields = _copy_for_response(request._fields, status, to_tag, request._cache.get("to")) + make_fields(headers)
    return Response._build(status, reason, fields, body)


def make_error_response(error: ParseError, *, to_tag: str | None = None) -> Response | None:
    """The response a UAS sends for a request that failed to parse or validate, or None when
    none is due: the bytes were a response, the request was an ACK (never answered, §17.2.3), or
    no Via survived to route the answer. Status and reason are the error's."""
    if error.is_response or error.headers is None or error.method == "ACK":
        return None
    source = []
    for name, value in error.headers:
        key, display = canonical_name(name)
        source.append((key, display, value))
    if not any(key == "via" for key, _, _ in source):
        return None
    status = error.status if 100 <= error.status <= 699 else 400
    return Response._build(status, error.reason, _copy_for_response(source, status, to_tag), b"")
