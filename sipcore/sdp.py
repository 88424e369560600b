"""SDP session descriptions (RFC 4566): parse, inspect, serialize.

How it works. :func:`parse_sdp` turns a body (bytes or str) into a :class:`SessionDescription`, a
tree of frozen records that validate themselves when built, so a description made in code obeys the
same rules as one read off the wire. ``to_bytes()`` writes it back. Lines we do not interpret keep
their text: unknown attributes, ``i=``/``u=``/``e=``/``p=``/``k=``/``r=``/``z=`` values. A
well-formed body (CRLF line ends, single spaces between fields) therefore serializes to the very
bytes it was parsed from, so a B2BUA can parse, look, and pass the body on untouched. Rewrites
(:func:`sipcore.offer_answer.with_direction`, ``dataclasses.replace``) change only what they name.

Strictness follows the RFC: ``v=0`` first, then the lines in the grammar's order (§5), ``o=``,
``s=`` and ``t=`` present, a ``c=`` at session level or in every media description (§5.7), unknown
type letters refused (§5: a parser "MUST completely ignore any session description that contains a
type letter that it does not understand"). We interpret and check ``rtpmap``/``fmtp`` (§6),
``ptime``, ``rtcp`` (RFC 3605) and the direction attributes; a malformed one is an error.
Tolerated deviations, each common in the field: bare LF line ends (§5 allows it), a missing final
line end, runs of spaces between fields, trailing blank lines, an empty ``s=``, a ``c=`` missing
from a rejected (port 0) stream. Output always uses CRLF and single spaces. What the RTP
attributes mean (codecs, payload types, negotiation) lives in :mod:`sipcore.offer_answer`.

Errors. Only :class:`SdpError` leaves the parser, whatever the input; its message names the line
number and what is wrong (peer text is quoted with ``repr`` and cut short, safe to log). Status 400
for a malformed body; :class:`SdpNotAcceptable` (488) is for well-formed descriptions we cannot
accept, raised by :mod:`sipcore.offer_answer`.

Bounds (:class:`SdpLimits`, defaults): 16 KiB per body, 1024 lines, 16 media descriptions, 256
attributes in all, 64 formats per ``m=`` line, 20 digits per number.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sipcore.errors import SipError

__all__ = [
    "Attribute", "Bandwidth", "Connection", "DEFAULT_LIMITS", "Direction", "Media", "Origin", "SdpError",
    "SdpLimits", "SdpNotAcceptable", "SessionDescription", "Timing", "parse_sdp",
]


class SdpError(SipError):
    """A malformed session description (400). The message names the line and the fault."""

    status = 400
    reason = "Bad Request"


class SdpNotAcceptable(SdpError):
    """A well-formed description we cannot accept: no common codec, no usable stream (488)."""

    status = 488
    reason = "Not Acceptable Here"


@dataclass(frozen=True, slots=True)
class SdpLimits:
    """Bounds on what a peer's body may make us hold (STYLE habit 7)."""

    max_bytes: int = 16384
    max_lines: int = 1024
    max_media: int = 16
    max_attributes: int = 256
    max_formats: int = 64


DEFAULT_LIMITS = SdpLimits()
_MAX_DIGITS = 20  # numbers in o=, t=, b= (64-bit NTP values fit); also keeps int() cheap

# RFC 4566 §9: token-char = %x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_NON_WS = re.compile(r"[!-~\x80-\U0010ffff]+")  # visible chars (o= username, c= addresses)
_TYPED_TIME = re.compile(r"-?[0-9]{1,20}[dhms]?")  # §5.10 / §5.11 typed times, z= offsets signed
_RTPMAP = re.compile(r"([0-9]{1,3}) ([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)/([0-9]{1,9})(?:/([0-9]{1,3}))?")
_FMTP = re.compile(r"([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+) (\S.*)")
_PTIME = re.compile(r"([0-9]{1,5})(?:\.[0-9]{1,3})?")
_RTCP = re.compile(r"([0-9]{1,5})(?: (\S+) (\S+) (\S+))?")
_BAD_TEXT = re.compile(r"[\x00\r\n]")  # §5: text is any byte but NUL, CR, LF


def _short(text: str) -> str:
    """Peer text for an error message: quoted, escaped, at most ~40 characters."""
    return repr(text[:40] + "..." if len(text) > 40 else text)


def _check_text(what: str, text: str) -> None:
    if _BAD_TEXT.search(text):
        raise SdpError(f"{what} contains NUL, CR or LF")


def _check_token(what: str, text: str) -> None:
    if not _TOKEN.fullmatch(text):
        raise SdpError(f"{what} is not a token: {_short(text)}")


def _number(what: str, text: str, *, limit: int | None = None) -> int:
    """An ASCII decimal of at most 20 digits (str.isdigit alone also takes non-ASCII digits)."""
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        raise SdpError(f"{what} is not a number: {_short(text)}")
    value = int(text)
    if limit is not None and value > limit:
        raise SdpError(f"{what} {value} is above {limit}")
    return value


def _fields(value: str, what: str, count: int | None = None, minimum: int = 1) -> list[str]:
    parts = [p for p in value.split(" ") if p]
    if (count is not None and len(parts) != count) or len(parts) < minimum:
        raise SdpError(f"{what} needs {count or f'at least {minimum}'} fields, got {len(parts)}")
    return parts


def _repeat(value: str) -> str:
    """An r= value (§5.10), spaces normalized: interval, duration, 1+ offsets, typed times."""
    parts = _fields(value, "r=", minimum=3)
    if not all(_TYPED_TIME.fullmatch(p) and p[0] != "-" for p in parts):
        raise SdpError(f"bad repeat time {_short(value)}")
    return " ".join(parts)


def _zone(value: str) -> str:
    """A z= value (§5.11), spaces normalized: pairs of adjustment time and signed offset."""
    parts = _fields(value, "z=", minimum=2)
    if len(parts) % 2 or not all(_TYPED_TIME.fullmatch(p) for p in parts):
        raise SdpError(f"bad time zone adjustment {_short(value)}")
    return " ".join(parts)


class Direction(enum.Enum):
    """The direction attributes (RFC 4566 §6, RFC 3264 §5.1), from the describing side's view."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, sends: bool, receives: bool) -> Direction:
        if sends:
            return cls.SENDRECV if receives else cls.SENDONLY
        return cls.RECVONLY if receives else cls.INACTIVE

    def reverse(self) -> Direction:
        """The same stream seen from the other end: sendonly <-> recvonly (RFC 3264 §6.1)."""
        return Direction.from_flags(self.receives, self.sends)

    def restrict(self, other: Direction) -> Direction:
        """Only what both allow."""
        return Direction.from_flags(self.sends and other.sends, self.receives and other.receives)

    def hold(self) -> Direction:
        """RFC 3264 §8.4: sendrecv becomes sendonly, recvonly becomes inactive."""
        return Direction.from_flags(self.sends, False)

    def unhold(self) -> Direction:
        """The reverse of :meth:`hold`: sendonly becomes sendrecv, inactive becomes recvonly."""
        return Direction.from_flags(self.sends, True)


_DIRECTIONS = {d.value: d for d in Direction}


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>`` (§5.7); ``address`` may carry ``/ttl/count`` (multicast)."""

    net_type: str
    addr_type: str
    address: str

    def __post_init__(self) -> None:
        _check_token("network type", self.net_type)
        _check_token("address type", self.addr_type)
        if not _NON_WS.fullmatch(self.address):
            raise SdpError(f"bad connection address {_short(self.address)}")
        host = self.host
        if self.addr_type in ("IP4", "IP6") and (":" in host or not host.strip("0123456789.")):
            try:  # literals must be real addresses; anything else is taken as an FQDN (§5.7)
                ip = ipaddress.ip_address(host)
            except ValueError:
                raise SdpError(f"bad {self.addr_type} address {_short(host)}") from None
            if ip.version != (4 if self.addr_type == "IP4" else 6):
                raise SdpError(f"{_short(host)} is not an {self.addr_type} address")

    def value(self) -> str:
        return f"{self.net_type} {self.addr_type} {self.address}"

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl/count`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_multicast(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_multicast
        except ValueError:
            return False

    @property
    def is_null(self) -> bool:
        """``0.0.0.0`` (or ``::``): RFC 2543 hold, still sent by old peers (RFC 3264 §8.4)."""
        return self.host in ("0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (§5.2)."""

    username: str
    session_id: str
    session_version: int
    net_type: str = "IN"
    addr_type: str = "IP4"
    address: str = "0.0.0.0"

    def __post_init__(self) -> None:
        if not _NON_WS.fullmatch(self.username):
            raise SdpError(f"bad origin username {_short(self.username)}")
        _number("session id", self.session_id)
        if not 0 <= self.session_version < 10 ** _MAX_DIGITS:
            raise SdpError("session version out of range")
        Connection(self.net_type, self.addr_type, self.address)  # same rules as c=

    def value(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.net_type} {self.addr_type} {self.address}")


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (§5.8), in kbit/s for CT/AS."""

    bw_type: str
    value_kbps: int

    def __post_init__(self) -> None:
        _check_token("bandwidth type", self.bw_type)
        if not 0 <= self.value_kbps < 10 ** _MAX_DIGITS:
            raise SdpError("bandwidth out of range")

    def value(self) -> str:
        return f"{self.bw_type}:{self.value_kbps}"


@dataclass(frozen=True, slots=True)
class Timing:
    """``t=<start> <stop>`` (§5.9) and its ``r=`` lines (§5.10, kept as text)."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (0 <= self.start < 10 ** _MAX_DIGITS and 0 <= self.stop < 10 ** _MAX_DIGITS):
            raise SdpError("time out of range")
        if any(_repeat(r) != r for r in self.repeats):
            raise SdpError("r= values must be single-spaced")


@dataclass(frozen=True, slots=True)
class Attribute:
    """``a=<name>`` or ``a=<name>:<value>`` (§5.13); the value text is kept as it came.

    The attributes we interpret are checked here, so that a bad one is reported with its line:
    rtpmap, fmtp (§6), ptime, rtcp (RFC 3605 §2.1) and the direction flags. Their meaning is read
    in :mod:`sipcore.offer_answer`.
    """

    name: str
    value: str | None = None

    def __post_init__(self) -> None:
        _check_token("attribute name", self.name)
        if self.value is None:
            if self.name in _VALUED:
                raise SdpError(f"a={self.name} needs a value")
            return
        _check_text(f"a={self.name}", self.value)
        if self.name in _DIRECTIONS:
            raise SdpError(f"a={self.name} takes no value")
        check = _VALUED.get(self.name)
        if check is None:
            return
        m = check.fullmatch(self.value)
        if m is None:
            raise SdpError(f"malformed a={self.name}: {_short(self.value)}")
        if self.name == "rtpmap" and (int(m[1]) > 127 or int(m[3]) == 0 or int(m[4] or 1) == 0):
            raise SdpError(f"a=rtpmap out of range: {_short(self.value)}")
        if self.name == "rtcp":
            _number("rtcp port", m[1], limit=65535)
            if m[2] is not None:
                Connection(m[2], m[3], m[4])
        if self.name == "ptime" and round(float(self.value)) == 0:
            raise SdpError("a=ptime must be positive")

    def line(self) -> str:
        return f"a={self.name}" if self.value is None else f"a={self.name}:{self.value}"


_VALUED: dict[str, re.Pattern[str]] = {"rtpmap": _RTPMAP, "fmtp": _FMTP, "ptime": _PTIME, "rtcp": _RTCP}


def _direction_of(attributes: tuple[Attribute, ...]) -> Direction | None:
    found = [_DIRECTIONS[a.name] for a in attributes if a.name in _DIRECTIONS]
    if len(found) > 1:
        raise SdpError("more than one direction attribute")
    return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Media:
    """A media description: ``m=<media> <port>[/<count>] <proto> <fmt> ...`` and its lines (§5.14)."""

    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    title: str | None = None
    connections: tuple[Connection, ...] = ()
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        _check_token("media type", self.media)
        if not 0 <= self.port <= 65535 or (self.port_count is not None and not 1 <= self.port_count <= 65535):
            raise SdpError("port out of range")
        if not re.fullmatch(r"[!#$%&'*+\-./0-9A-Z^_`a-z{|}~]+", self.proto):
            raise SdpError(f"bad transport protocol {_short(self.proto)}")
        if not self.formats:
            raise SdpError("m= line lists no formats")
        for f in self.formats:
            if self.is_rtp:  # RFC 4566 §5.14: RTP formats are payload type numbers
                _number("payload type", f, limit=127)
            else:
                _check_token("format", f)
        for text in (self.title, self.key):
            if text is not None:
                _check_text("media line", text)
        _direction_of(self.attributes)
        maps = [(a.value or "").split(" ", 1)[0] for a in self.attributes if a.name == "rtpmap"]
        if len(set(maps)) != len(maps):
            raise SdpError("two rtpmap attributes for one payload type")

    @property
    def is_rtp(self) -> bool:
        return "RTP/" in self.proto

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats) if self.is_rtp else ()

    @property
    def direction(self) -> Direction | None:
        """The media-level direction attribute, if any (see SessionDescription.media_direction)."""
        return _direction_of(self.attributes)

    def attribute_values(self, name: str) -> tuple[str | None, ...]:
        """The values of every ``a=<name>`` in order (None for a flag without a value)."""
        return tuple(a.value for a in self.attributes if a.name == name)

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}"]
        if self.title is not None:
            out.append(f"i={self.title}")
        out += [f"c={c.value()}" for c in self.connections]
        out += [f"b={b.value()}" for b in self.bandwidths]
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [a.line() for a in self.attributes]
        return out


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole description (§5). ``v=`` is always 0 and so is not a field."""

    origin: Origin
    name: str = "-"
    information: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    zone: str | None = None
    key: str | None = None
    attributes: tuple[Attribute, ...] = ()
    media: tuple[Media, ...] = ()

    def __post_init__(self) -> None:
        for text in (self.name, self.information, self.uri, self.zone, self.key, *self.emails, *self.phones):
            if text is not None:
                _check_text("session line", text)
        if not self.timings:
            raise SdpError("a description needs at least one t= line")
        if self.zone is not None and _zone(self.zone) != self.zone:
            raise SdpError("z= value must be single-spaced")
        _direction_of(self.attributes)

    # -- inspection ------------------------------------------------------------------------------

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, if any."""
        return _direction_of(self.attributes)

    def media_direction(self, index: int) -> Direction:
        """Media level, else session level, else sendrecv (RFC 3264 §5.1)."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def media_connection(self, index: int) -> Connection | None:
        """The first media-level c=, else the session's (§5.7)."""
        m = self.media[index]
        return m.connections[0] if m.connections else self.connection

    # -- serialization ---------------------------------------------------------------------------

    def to_text(self) -> str:
        out = ["v=0", f"o={self.origin.value()}", f"s={self.name}"]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.uri is not None:
            out.append(f"u={self.uri}")
        out += [f"e={e}" for e in self.emails]
        out += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            out.append(f"c={self.connection.value()}")
        out += [f"b={b.value()}" for b in self.bandwidths]
        for t in self.timings:
            out.append(f"t={t.start} {t.stop}")
            out += [f"r={r}" for r in t.repeats]
        if self.zone is not None:
            out.append(f"z={self.zone}")
        if self.key is not None:
            out.append(f"k={self.key}")
        out += [a.line() for a in self.attributes]
        for m in self.media:
            out += m.lines()
        return "\r\n".join(out) + "\r\n"

    def to_bytes(self) -> bytes:
        # surrogateescape undoes parse_sdp's decoding: bytes that were not UTF-8 come back as they were
        return self.to_text().encode("utf-8", "surrogateescape")


# -- the parser ------------------------------------------------------------------------------------
# §5: the order of the lines. Letters of equal rank may follow each other only when repeatable;
# t= and r= share a rank so that time descriptions (t= r=*) can follow each other.
_SESSION_RANK = {"v": 0, "o": 1, "s": 2, "i": 3, "u": 4, "e": 5, "p": 6, "c": 7, "b": 8, "t": 9, "r": 9,
                 "z": 10, "k": 11, "a": 12}
_MEDIA_RANK = {"i": 1, "c": 2, "b": 3, "k": 4, "a": 5}
_REPEATABLE = {False: frozenset("epbtra"), True: frozenset("cba")}  # c= repeats only in media (§5.7)
_REQUIRED = (("o", 1), ("s", 2), ("t", 9))
_T = TypeVar("_T")


class _Section:
    """The session part or one media description: its lines as (line number, value) per letter."""

    __slots__ = ("line_no", "head", "lines", "repeats")

    def __init__(self, line_no: int, head: str) -> None:
        self.line_no, self.head = line_no, head
        self.lines: dict[str, list[tuple[int, str]]] = {}
        self.repeats: list[list[tuple[int, str]]] = []  # r= lines of each t= line

    def make(self, letter: str, build: Callable[[str], _T]) -> list[_T]:
        return [_at(n, build, value) for n, value in self.lines.get(letter, ())]

    def text(self, letter: str) -> str | None:
        found = self.lines.get(letter)
        return found[0][1] if found else None


def _at(line_no: int, build: Callable[[str], _T], value: str) -> _T:
    try:
        return build(value)
    except SdpError as exc:
        raise SdpError(f"line {line_no}: {exc}") from None


def _decode(data: bytes | bytearray | memoryview | str, limits: SdpLimits) -> list[str]:
    if len(data) > limits.max_bytes:  # for a str: characters, never more than its bytes
        raise SdpError(f"body larger than {limits.max_bytes} bytes")
    # Text fields are UTF-8 by default (§5); other bytes survive via surrogateescape.
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    while lines and lines[-1] in ("", "\r"):  # the final line end, and blank lines after it
        lines.pop()
    if len(lines) > limits.max_lines:
        raise SdpError(f"more than {limits.max_lines} lines")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_sdp(data: bytes | bytearray | memoryview | str, *, limits: SdpLimits = DEFAULT_LIMITS) -> SessionDescription:
    """Parse a session description; only :class:`SdpError` (400) escapes, whatever ``data`` holds."""
    lines = _decode(data, limits)
    if not lines or lines[0] != "v=0":
        raise SdpError("line 1: a description must start with v=0")
    sections = [_Section(1, "")]
    rank, prev, n_attributes = 0, "v", 0
    for n, line in enumerate(lines[1:], start=2):
        letter, in_media = line[:1], len(sections) > 1
        if line[1:2] != "=" or not "a" <= letter <= "z":
            raise SdpError(f"line {n}: expected '<letter>=<value>', got {_short(line)}")
        if _BAD_TEXT.search(line):
            raise SdpError(f"line {n}: NUL or CR inside a line")
        new = 0 if letter == "m" else (_MEDIA_RANK if in_media else _SESSION_RANK).get(letter)
        if new is None:
            known = in_media and letter in _SESSION_RANK
            raise SdpError(f"line {n}: " + (f"{letter}= is not allowed in a media description" if known
                                            else f"unknown type letter {letter!r}"))
        for required, required_rank in () if in_media else _REQUIRED:
            if (required_rank < new or letter == "m") and required not in sections[0].lines:
                raise SdpError(f"line {n}: missing {required}= before {letter}=")
        if letter == "m":
            if len(sections) > limits.max_media:
                raise SdpError(f"line {n}: more than {limits.max_media} media descriptions")
            sections.append(_Section(n, line[2:]))
            rank, prev = 0, "m"
            continue
        if new < rank or (new == rank and letter not in _REPEATABLE[in_media]):
            raise SdpError(f"line {n}: {letter}= out of order or repeated (after {prev}=)")
        if letter == "r":
            if prev not in ("t", "r"):
                raise SdpError(f"line {n}: r= must follow t=")
            sections[0].repeats[-1].append((n, line[2:]))
        else:
            sections[-1].lines.setdefault(letter, []).append((n, line[2:]))
            if letter == "t":
                sections[0].repeats.append([])
        n_attributes += letter == "a"
        if n_attributes > limits.max_attributes:
            raise SdpError(f"line {n}: more than {limits.max_attributes} attributes")
        rank, prev = new, letter
    for required, _ in _REQUIRED:
        if required not in sections[0].lines:
            raise SdpError(f"line {len(lines)}: missing {required}= line")
    return _build(sections, limits)


def _origin(value: str) -> Origin:
    p = _fields(value, "o=", 6)
    return Origin(p[0], p[1], _number("session version", p[2]), p[3], p[4], p[5])


def _connection(value: str) -> Connection:
    return Connection(*_fields(value, "c=", 3))


def _bandwidth(value: str) -> Bandwidth:
    bw_type, colon, amount = value.partition(":")
    if not colon:
        raise SdpError("b= needs <type>:<bandwidth>")
    return Bandwidth(bw_type, _number("bandwidth", amount))


def _times(value: str) -> tuple[int, int]:
    start, stop = _fields(value, "t=", 2)
    return _number("start time", start), _number("stop time", stop)


def _attributes(section: _Section) -> tuple[Attribute, ...]:
    """The a= lines; a second direction or a second rtpmap for one payload type is an error."""
    out, seen = [], set()
    for n, value in section.lines.get("a", ()):
        name, colon, rest = value.partition(":")
        try:
            attribute = Attribute(name, rest if colon else None)
        except SdpError as exc:
            raise SdpError(f"line {n}: {exc}") from None
        key = "direction" if name in _DIRECTIONS else f"rtpmap {rest.split(' ', 1)[0]}" if name == "rtpmap" else ""
        if key in seen:
            raise SdpError(f"line {n}: a second {key} attribute")
        if key:
            seen.add(key)
        out.append(attribute)
    return tuple(out)


def _build_media(m: _Section, limits: SdpLimits) -> Media:
    connections = tuple(m.make("c", _connection))
    bandwidths = tuple(m.make("b", _bandwidth))
    attributes = _attributes(m)

    def media(head: str) -> Media:
        parts = _fields(head, "m=", minimum=4)
        if len(parts) - 3 > limits.max_formats:
            raise SdpError(f"more than {limits.max_formats} formats")
        port, _, count = parts[1].partition("/")
        return Media(parts[0], _number("port", port, limit=65535), parts[2], tuple(parts[3:]),
                     _number("port count", count, limit=65535) if count else None, title=m.text("i"),
                     connections=connections, bandwidths=bandwidths, key=m.text("k"), attributes=attributes)

    return _at(m.line_no, media, m.head)


def _build(sections: list[_Section], limits: SdpLimits) -> SessionDescription:
    s = sections[0]
    timings = []
    for (n, value), repeats in zip(s.lines["t"], s.repeats, strict=True):
        start, stop = _at(n, _times, value)
        timings.append(Timing(start, stop, tuple(_at(rn, _repeat, rv) for rn, rv in repeats)))
    connection = next(iter(s.make("c", _connection)), None)
    media = []
    for m in sections[1:]:
        media.append(_build_media(m, limits))
        if connection is None and not media[-1].connections and media[-1].port != 0:
            raise SdpError(f"line {m.line_no}: no c= in this media description nor at session level")
    return SessionDescription(
        origin=s.make("o", _origin)[0], name=s.text("s") or "", information=s.text("i"), uri=s.text("u"),
        emails=tuple(v for _, v in s.lines.get("e", ())), phones=tuple(v for _, v in s.lines.get("p", ())),
        connection=connection, bandwidths=tuple(s.make("b", _bandwidth)), timings=tuple(timings),
        zone=next(iter(s.make("z", _zone)), None), key=s.text("k"), attributes=_attributes(s), media=tuple(media))
