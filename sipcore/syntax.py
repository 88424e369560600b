"""The lexical layer under the SIP parser: the one parse error, limits, and RFC 3261 §25 helpers.

Everything here works on ``str`` values that the parser has already unfolded (RFC 3261 §7.3.1:
each ``CRLF`` + whitespace continuation became one space), so the only whitespace left inside a
value is SP and HTAB. The helpers split on separators *outside* quoted strings and ``<...>``,
which is what the grammar's ``SEMI``/``COMMA``/``EQUAL`` (each allowing ``SWS`` around it) mean.

Speed: character classes are ``frozenset`` s checked with ``issuperset`` (one C loop per string);
the fast paths (no quote in the value, no comma) are plain ``str.split``/``partition``; and
:class:`Memo` lets the record parsers share results for values peers keep repeating.

Scanners and trusted records. Real traffic brings new values in every call (Call-ID, tags,
branch), so the memos miss and the cost is in the parse itself. The record parsers therefore try
a *scanner* first (:func:`scan_params` here, the ``_scan_*`` functions of :mod:`sipcore.uri` and
:mod:`sipcore.headers`): it handles the usual shape of a value (no quotes, no escapes, no LWS) and
proves, with character-class checks, everything the record's ``__post_init__`` would check; it
then builds the record with :func:`trusted_constructor` (no re-validation). For anything else it
returns None and the full parser runs, so errors and unusual values are handled exactly as
before. A scanner never raises and never accepts what the full parser refuses (the fuzz tests
compare the two).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote as _url_unquote

from sipcore.errors import SipError

__all__ = [
    "DEFAULT_LIMITS", "Memo", "MessageLimits", "Params", "ParseError", "REASON_PHRASES", "default_reason",
    "get_param", "has_param", "is_token", "match_token", "quote", "render_params", "scan_params", "split_commas",
    "trusted_constructor", "unescape", "unquote",
]

# RFC 3261 §21 reason phrases (and the extensions we send); the default for a status code.
REASON_PHRASES: Mapping[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority",
    420: "Bad Extension", 421: "Extension Required", 422: "Session Interval Too Small",
    423: "Interval Too Brief", 428: "Use Identity Header", 429: "Provide Referrer Identity",
    433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
    438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}
_CLASS_REASONS = {1: "Trying", 2: "OK", 3: "Redirect", 4: "Client Error", 5: "Server Error", 6: "Global Failure"}


def default_reason(status: int) -> str:
    """The reason phrase we send for ``status`` when none is given (RFC 3261 §21)."""
    return REASON_PHRASES.get(status) or _CLASS_REASONS.get(status // 100, "Unknown")


class ParseError(SipError):
    """Bytes or a value that do not follow the SIP grammar. The only error the parser raises.

    ``status``/``reason`` is what a UAS answers (400 unless something more precise applies: 505
    for another SIP version, 513 for an oversized message, 414 for an oversized request line).
    Attributes that help answer it (all optional, filled in when known):

    - ``method``: the request method, when the start line got that far (``None`` for responses);
    - ``is_response``: the bytes were a response; nobody answers those, they are dropped;
    - ``headers``: the header fields that did parse, ``(name, raw value)`` in order, enough for
      :func:`sipcore.message.make_error_response` to copy Via/From/To/Call-ID/CSeq into a 400;
    - ``fatal``: on a stream, framing is lost; answer if possible, then close the connection.
    """

    status = 400
    reason = "Bad Request"

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None,
                 fatal: bool = False) -> None:
        super().__init__(message, status=status,
                         reason=reason if reason is not None or status is None else default_reason(status))
        self.method: str | None = None
        self.is_response = False
        self.headers: tuple[tuple[str, str], ...] | None = None
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """Bounds on what a peer's bytes may make us hold (STYLE habit 7), checked by the parser.

    - ``max_message_size``: start line + headers + body, in bytes. Over it: 513 Message Too Large
      (RFC 3261 §21.5.14); on a stream, fatal (the connection is closed).
    - ``max_headers``: header fields after unfolding. Over it: 400.
    - ``max_line_length``: characters in one header field after unfolding, and in the start line.
      Over it: 400 (a request line: 414 Request-URI Too Long, §21.4.12).
    """

    max_message_size: int = 65536
    max_headers: int = 128
    max_line_length: int = 8192

    def __post_init__(self) -> None:
        for name in ("max_message_size", "max_headers", "max_line_length"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"MessageLimits.{name} must be a positive int, not {value!r}")


DEFAULT_LIMITS = MessageLimits()

# --- character classes (RFC 3261 §25.1) ------------------------------------------------------------
ALPHANUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
DIGITS = frozenset("0123456789")
HEXDIGITS = frozenset("0123456789abcdefABCDEF")
MARK = frozenset("-_.!~*'()")
UNRESERVED = ALPHANUM | MARK
RESERVED = frozenset(";/?:@&=+$,")
TOKEN_CHARS = ALPHANUM | frozenset("-.!%*_+`'~")
WORD_CHARS = TOKEN_CHARS | frozenset('()<>:\\"/[]?{}')
# gen-value = token / host / quoted-string; host adds ":" "[" "]" (IPv6, RFC 5118)
GEN_VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")

Params = tuple[tuple[str, str | None], ...]
"""Parameters in order: ``(name, value)``, value ``None`` for a bare ``;name``. Names lowercased."""

_T = TypeVar("_T")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SPECIAL_RE = re.compile(r'[,"<]')


class Memo(dict[str, object]):
    """A bounded memo of parse results for short header values, keyed by the raw text.

    Peers repeat values all the time (a dialog's From/To in every message, Request-URIs, Contact,
    Route), and the records are immutable, so a parse can be shared. Only values up to
    ``max_text`` characters are kept; when ``max_entries`` is reached the memo is emptied (a peer
    sending ever-new values only costs us re-parsing). Failures are not remembered."""

    __slots__ = ("max_entries", "max_text")

    def __init__(self, max_entries: int = 2048, max_text: int = 256) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.max_text = max_text

    def remember(self, text: str, result: object) -> None:
        if len(text) <= self.max_text:
            if len(self) >= self.max_entries:
                self.clear()
            self[text] = result


def is_token(text: str) -> bool:
    return bool(text) and TOKEN_CHARS.issuperset(text)


match_token = re.compile("[{}]+".format(re.escape("".join(sorted(TOKEN_CHARS))))).fullmatch
"""``match_token(text)`` is not None when :func:`is_token` is true (one C call, no Python frame)."""


def is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts '²' and other scripts' digits)."""
    return bool(text) and DIGITS.issuperset(text)


def check_escapes(text: str, what: str) -> None:
    """Every ``%`` must start ``escaped`` = "%" HEXDIG HEXDIG (§25.1)."""
    if "%" in text and _ESCAPE_RE.search(text):
        raise ParseError(f"bad %-escape in {what}: {cut(text)}")


def unescape(text: str) -> str:
    """Decode %HEX HEX escapes once (RFC 3986 §2.4: never recursively). UTF-8, lossless."""
    return _url_unquote(text, errors="surrogateescape") if "%" in text else text


def cut(text: str, limit: int = 60) -> str:
    """Peer text for an error message: repr-quoted (control characters escaped) and cut short."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def quoted_end(text: str, start: int) -> int:
    """``text[start]`` is a DQUOTE: return the index just past the closing one (quoted-pairs skipped)."""
    pos = start + 1
    while True:
        close = text.find('"', pos)
        if close < 0:
            raise ParseError(f"unterminated quoted string: {cut(text[start:])}")
        backslash = text.find("\\", pos, close)
        if backslash < 0:
            return close + 1
        pos = backslash + 2  # skip the quoted-pair, which may be \"


def unquote(quoted: str) -> str:
    """The text of a quoted-string (with its quotes), quoted-pairs resolved."""
    inner = quoted[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    pos = 0
    while True:
        backslash = inner.find("\\", pos)
        if backslash < 0:
            out.append(inner[pos:])
            return "".join(out)
        out.append(inner[pos:backslash])
        out.append(inner[backslash + 1:backslash + 2])
        pos = backslash + 2


_NEEDS_PAIR_RE = re.compile(r'([\\"\x00-\x08\x0b\x0c\x0e-\x1f\x7f])')


def quote(text: str) -> str:
    """A quoted-string holding ``text``: backslash, DQUOTE and controls become quoted-pairs."""
    return '"' + _NEEDS_PAIR_RE.sub(r"\\\1", text) + '"'


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """``text.split(sep)``, except that separators inside quoted strings do not count."""
    if '"' not in text:
        return text.split(sep)
    parts = []
    begin = pos = 0
    while True:
        s = text.find(sep, pos)
        q = text.find('"', pos)
        if q >= 0 and (s < 0 or q < s):
            pos = quoted_end(text, q)
            continue
        if s < 0:
            parts.append(text[begin:])
            return parts
        parts.append(text[begin:s])
        begin = pos = s + 1


def split_commas(value: str) -> list[str]:
    """One header line of a comma-list header (§7.3.1) into its values, stripped.

    Commas inside quoted strings and ``<...>`` do not separate. An empty element (``a,,b``) is
    not in the grammar (``*(COMMA value)``) and raises ParseError.
    """
    if "," not in value:
        parts = [value]
    elif '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        begin = pos = 0
        while True:
            m = _SPECIAL_RE.search(value, pos)
            if m is None:
                parts.append(value[begin:])
                break
            at = m.start()
            ch = value[at]
            if ch == ",":
                parts.append(value[begin:at])
                begin = pos = at + 1
            elif ch == '"':
                pos = quoted_end(value, at)
            else:
                close = value.find(">", at)
                if close < 0:
                    raise ParseError(f"unclosed '<' in {cut(value)}")
                pos = close + 1
    out = [p.strip(" \t") for p in parts]
    if "" in out:
        raise ParseError(f"empty element in comma-separated list {cut(value)}")
    return out


def parse_params(text: str) -> Params:
    """Split ``text``, what follows the first SEMI of ``*( SEMI generic-param )``, into
    ``(name, value)`` pairs: names lowercased, whitespace around ``;`` and ``=`` removed, values
    keeping their case and quotes. Not validated: the record built from them does that
    (:func:`check_params`), so a record built in code is held to the same rules."""
    out = []
    for piece in split_outside_quotes(text, ";"):
        name, eq, value = piece.partition("=")
        out.append((name.strip(" \t").lower(), value.strip(" \t") if eq else None))
    return tuple(out)


_SCAN_PARAM_CHARS = TOKEN_CHARS | frozenset(";=")


def scan_params(text: str) -> Params | None:
    """:func:`parse_params` + :func:`check_params` for the usual ``name=token;name`` lists: the
    same result, or None when ``text`` needs them (quotes, LWS, host values, anything wrong).

    With only token characters, ``;`` and ``=``, every name is a token and every value a token
    (gen-value) once no piece is empty and no value holds a second ``=``."""
    if not _SCAN_PARAM_CHARS.issuperset(text):
        return None
    if ";" not in text:
        name, eq, value = text.partition("=")
        if not name or (eq and (not value or "=" in value)):
            return None
        return ((name.lower(), value if eq else None),)
    out = []
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        if not name or (eq and (not value or "=" in value)):
            return None
        out.append((name.lower(), value if eq else None))
    return tuple(out)


def trusted_constructor(cls: type[_T], *names: str) -> Callable[..., _T]:
    """A builder of the frozen slotted dataclass ``cls`` from values already proven valid: it
    takes the values of the slots ``names`` in that order and skips ``__post_init__``. For the
    parsers' scanners only; other code uses the validating constructor.

    How: the values are stored into an instance of a plain twin class with the very same slots
    (ordinary attribute stores, no frozen ``__setattr__``), whose ``__class__`` is then set to
    ``cls``, which Python allows between classes of the same layout (checked here, once). Like
    :mod:`dataclasses` does for ``__init__``, the builder is generated source. It costs a fifth
    of the validating constructor, and two thirds of storing through the slot descriptors."""
    slots = getattr(cls, "__slots__", ())
    if tuple(names) != tuple(slots) or not all(name.isidentifier() for name in names):
        raise ValueError(f"{cls.__name__} has the slots {slots!r}, not {names!r}")
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": tuple(names)})
    stores = "".join(f"    obj.{name} = {name}\n" for name in names)
    source = (f"def build({', '.join(names)}):\n    obj = _new(_twin)\n{stores}"
              "    obj.__class__ = _cls\n    return obj\n")
    namespace: dict[str, object] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    exec(source, namespace)  # noqa: S102 - our own slot names, checked above
    build: Callable[..., _T] = namespace["build"]  # type: ignore[assignment]
    build.__qualname__ = f"{cls.__name__}._trusted"
    build(*names)  # TypeError now, not at the first message, if the layouts ever differ
    return build


def check_params(params: Params, what: str) -> Params:
    """Validate parameters (generic-param = token [ EQUAL gen-value ], gen-value = token / host /
    quoted-string); return them with names lowercased. ParseError names the culprit."""
    relower = type(params) is not tuple
    for item in params:
        if type(item) is not tuple or len(item) != 2:
            raise ParseError(f"{what} parameters must be (name, value) pairs, not {item!r}")
        name, value = item
        if type(name) is not str or not name or not TOKEN_CHARS.issuperset(name):
            raise ParseError(f"bad parameter name in {what}: {cut(str(name))}")
        if value is not None:
            if type(value) is not str or not value:
                raise ParseError(f"parameter {name!r} in {what} needs a value after '='")
            if value[0] == '"':
                if quoted_end(value, 0) != len(value):
                    raise ParseError(f"bad quoted value for parameter {name!r} in {what}: {cut(value)}")
            elif not GEN_VALUE_CHARS.issuperset(value):
                raise ParseError(f"bad value for parameter {name!r} in {what}: {cut(value)}")
        if not relower and not name.islower():
            relower = True
    if relower:
        return tuple((name.lower(), value) for name, value in params)
    return params


def get_param(params: Params, name: str, default: str | None = None) -> str | None:
    """The value of parameter ``name`` (case-insensitive); ``default`` when absent or valueless."""
    name = name.lower()
    for key, value in params:
        if key == name:
            return default if value is None else value
    return default


def has_param(params: Params, name: str) -> bool:
    name = name.lower()
    return any(key == name for key, _ in params)


def render_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)
