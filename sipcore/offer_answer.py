"""SDP offer/answer (RFC 3264) for our audio: G.711 (PCMU, PCMA) and telephone-event (RFC 4733).

How it works. Everything here is a pure function of session descriptions (:mod:`sipcore.sdp`):

- :func:`build_offer` describes our stream (:class:`LocalMedia`): address, port, codecs in order
  of preference, telephone-event, direction, ptime.
- :func:`build_answer` answers a peer's offer (RFC 3264 §6). Of the offered streams we accept the
  first audio RTP/AVP one that has a codec in common with us; every other stream is rejected with
  port 0 and keeps its m= line, so the answer has exactly the offer's m= lines (§6). The accepted
  stream answers with ONE codec: the first of the offer's list that we support (the offerer's
  preference, §6.1; ``prefer_local_order`` picks by ours instead), with the offerer's payload
  type number, plus telephone-event if offered. One codec means neither side can switch codecs
  mid-call without a new offer. The direction is answered by the §6.1 table (sendonly <->
  recvonly, inactive <-> inactive, sendrecv -> our direction). No common codec: SdpNotAcceptable
  (488).
- :func:`process_answer` checks an answer against the offer we sent: same number of m= lines and
  media types, a direction the §6.1 table allows, at least one codec we offered. Formats the answer
  adds that we did not offer are ignored, not refused: §6.1 allows an answer to list them.
- Both give a :class:`Negotiated`: where to send RTP, which codec and payload types, which
  direction we take, which ptime to send with.

Hold (RFC 3264 §8.4): :func:`hold` marks our streams sendonly (or inactive), never c=0.0.0.0; a
peer's c=0.0.0.0 is still understood as hold: such a peer receives nothing, so we send nothing.

Versions (§8): whenever a description we send differs from the previous one we sent in that
dialog, the o= version goes up by one and the rest of o= stays. :func:`stamp` does that from the
previous description; B2BUA code that forwards or rewrites (:func:`with_direction`) a body between
legs stamps it against what it last sent on the outgoing leg.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sipcore.sdp import Attribute, Connection, Direction, Media, Origin, SdpError, SdpNotAcceptable, SessionDescription

__all__ = [
    "Answer", "Codec", "LocalMedia", "Negotiated", "PCMA", "PCMU", "Rtcp", "RtpMap", "STATIC_PAYLOAD_TYPES",
    "TELEPHONE_EVENT", "build_answer", "build_offer", "fmtp", "format_events", "hold", "make_origin",
    "parse_events", "process_answer", "ptime", "rtcp", "rtpmap", "stamp", "unhold", "with_direction",
]

_DEFAULT_PTIME = 20  # ms: RFC 3551 §4.5, the usual frame for G.711 when the peer names none


# -- RTP payload attributes (RFC 4566 §6, RFC 3551, RFC 3605) ---------------------------------------

@dataclass(frozen=True, slots=True)
class RtpMap:
    """``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def __post_init__(self) -> None:
        Attribute("rtpmap", self.value())  # the same checks as on the wire

    def value(self) -> str:
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


# RFC 3551 §6 table 4: the static audio payload types, understood without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {m.payload_type: m for m in (
    RtpMap(0, "PCMU", 8000), RtpMap(3, "GSM", 8000), RtpMap(4, "G723", 8000), RtpMap(5, "DVI4", 8000),
    RtpMap(6, "DVI4", 16000), RtpMap(7, "LPC", 8000), RtpMap(8, "PCMA", 8000), RtpMap(9, "G722", 8000),
    RtpMap(10, "L16", 44100, 2), RtpMap(11, "L16", 44100), RtpMap(12, "QCELP", 8000), RtpMap(13, "CN", 8000),
    RtpMap(14, "MPA", 90000), RtpMap(15, "G728", 8000), RtpMap(16, "DVI4", 11025), RtpMap(17, "DVI4", 22050),
    RtpMap(18, "G729", 8000),
)}


@dataclass(frozen=True, slots=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605 §2.1)."""

    port: int
    connection: Connection | None = None


def rtpmap(media: Media, payload_type: int) -> RtpMap | None:
    """The media's mapping for ``payload_type``, else the static one (RFC 3551), else None."""
    prefix = f"{payload_type} "
    for value in media.attribute_values("rtpmap"):
        if value is not None and value.startswith(prefix):
            enc, _, rest = value[len(prefix):].partition("/")
            rate, _, channels = rest.partition("/")
            return RtpMap(payload_type, enc, int(rate), int(channels) if channels else None)
    return STATIC_PAYLOAD_TYPES.get(payload_type)


def fmtp(media: Media, fmt: int | str) -> str | None:
    """The format parameters of ``a=fmtp:<fmt> <params>``, or None."""
    prefix = f"{fmt} "
    for value in media.attribute_values("fmtp"):
        if value is not None and value.startswith(prefix):
            return value[len(prefix):]
    return None


def ptime(media: Media) -> int | None:
    """``a=ptime`` in ms, rounded (some peers send ``20.0``)."""
    values = media.attribute_values("ptime")
    return round(float(values[0] or 0)) if values else None


def rtcp(media: Media) -> Rtcp | None:
    values = media.attribute_values("rtcp")
    if not values or values[0] is None:
        return None
    parts = values[0].split(" ")
    return Rtcp(int(parts[0]), Connection(*parts[1:4]) if len(parts) == 4 else None)


# -- telephone-event lists (RFC 4733) ---------------------------------------------------------------

_EVENT_ITEM = re.compile(r"([0-9]{1,3})(?:-([0-9]{1,3}))?")
_DTMF_EVENTS = frozenset(range(16))  # the default when the fmtp is absent (RFC 4733 media type)
_MAX_EVENT_ITEMS = 32


def parse_events(text: str) -> frozenset[int]:
    """``0-15,16`` -> {0..16}. Codes are 0-255; at most 32 items (a bound on peer input)."""
    items = text.replace(" ", "").split(",")
    if len(items) > _MAX_EVENT_ITEMS:
        raise SdpError("too many telephone-event items")
    events: set[int] = set()
    for item in items:
        m = _EVENT_ITEM.fullmatch(item)
        if m is None:
            raise SdpError(f"bad telephone-event list {text[:40]!r}")
        low, high = int(m[1]), int(m[2] or m[1])
        if not low <= high <= 255:
            raise SdpError(f"bad telephone-event range {item!r}")
        events.update(range(low, high + 1))
    return frozenset(events)


def format_events(events: Iterable[int]) -> str:
    """{0..16} -> ``0-16``; ranges where consecutive."""
    out: list[str] = []
    for e in sorted(set(events)):
        if out and e == int(out[-1].rsplit("-", 1)[-1]) + 1:
            out[-1] = f"{out[-1].split('-', 1)[0]}-{e}"
        else:
            out.append(str(e))
    return ",".join(out)


# -- what we support and what negotiation yields ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec we can send and receive, matched by encoding name (no case) and clock rate."""

    encoding: str
    clock_rate: int
    static_pt: int | None = None

    def matches(self, mapping: RtpMap | None) -> bool:
        return (mapping is not None and mapping.encoding.lower() == self.encoding.lower()
                and mapping.clock_rate == self.clock_rate and (mapping.channels or 1) == 1)


PCMU = Codec("PCMU", 8000, 0)
PCMA = Codec("PCMA", 8000, 8)
TELEPHONE_EVENT = Codec("telephone-event", 8000)  # 8000 Hz only: the rate of our audio codecs


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalMedia:
    """Our side of the audio stream: what we offer, or what we answer with."""

    address: str  # an IPv4 or IPv6 literal: where we receive RTP
    port: int
    codecs: tuple[Codec, ...] = (PCMU, PCMA)  # order of preference; static payload types only
    telephone_event_pt: int | None = 101  # dynamic pt we offer; None: no telephone-event
    events: frozenset[int] = frozenset(range(17))  # DTMF 0-15 and flash (16)
    direction: Direction = Direction.SENDRECV
    ptime: int | None = _DEFAULT_PTIME

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise SdpError(f"local address {self.address!r} is not an IP literal") from None
        if not 0 < self.port <= 65535 or not self.codecs or any(c.static_pt is None for c in self.codecs):
            raise SdpError("local media needs a port and at least one static-payload codec")
        if self.telephone_event_pt is not None and not 96 <= self.telephone_event_pt <= 127:
            raise SdpError("telephone-event needs a dynamic payload type (96-127)")
        if not self.events or not all(0 <= e <= 255 for e in self.events):
            raise SdpError("telephone events are codes 0-255")

    @property
    def connection(self) -> Connection:
        return Connection("IN", "IP6" if ":" in self.address else "IP4", self.address)


@dataclass(frozen=True, slots=True, kw_only=True)
class Negotiated:
    """The outcome of one offer/answer exchange for our audio stream, from our point of view."""

    media_index: int  # which m= line
    remote_address: str  # where to send RTP (the peer's c=)
    remote_port: int
    remote_rtcp_address: str  # RFC 3605 a=rtcp, else the RTP address
    remote_rtcp_port: int  # ... else the RTP port + 1 (RFC 3550 §11)
    codec: Codec
    payload_type: int  # the pt we send with (the peer's number for the codec)
    recv_payload_type: int  # the pt we receive with (our number; equal unless an answer renumbered)
    telephone_event_pt: int | None  # send; None: no RFC 4733 events to send
    recv_telephone_event_pt: int | None
    direction: Direction  # what WE do: sendrecv, sendonly (peer holds us)...
    ptime: int  # ms per packet we send: the peer's a=ptime, else 20
    on_hold: bool  # the peer receives nothing: a=sendonly/inactive or c=0.0.0.0 (RFC 3264 §8.4)


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: SessionDescription
    negotiated: Negotiated


def make_origin(address: str, session_id: int, *, version: int = 0, username: str = "-") -> Origin:
    """Our o= line. ``session_id`` should be unique per session (RFC 4566 §5.2 suggests NTP time)."""
    return Origin(username, str(session_id), version, "IN", "IP6" if ":" in address else "IP4", address)


# -- building and checking descriptions -------------------------------------------------------------

def _audio_media(local: LocalMedia, formats: list[tuple[int, RtpMap]], events: frozenset[int] | None,
                 te_pt: int | None, direction: Direction) -> Media:
    attributes = [Attribute("rtpmap", m.value()) for _, m in formats]
    if te_pt is not None and events is not None:
        attributes += [Attribute("rtpmap", f"{te_pt} telephone-event/8000"),
                       Attribute("fmtp", f"{te_pt} {format_events(events)}")]
    if local.ptime is not None:
        attributes.append(Attribute("ptime", str(local.ptime)))
    attributes.append(Attribute(direction.value))
    pts = [str(pt) for pt, _ in formats] + ([str(te_pt)] if te_pt is not None and events is not None else [])
    return Media("audio", local.port, "RTP/AVP", tuple(pts), attributes=tuple(attributes))


def build_offer(local: LocalMedia, origin: Origin) -> SessionDescription:
    """An offer with one audio stream (RFC 3264 §5); stamp it before sending a re-offer."""
    formats = [(c.static_pt, RtpMap(c.static_pt, c.encoding, c.clock_rate))
               for c in local.codecs if c.static_pt is not None]
    media = _audio_media(local, formats, local.events, local.telephone_event_pt, local.direction)
    return SessionDescription(origin=origin, connection=local.connection, media=(media,))


def _telephone_event(media: Media) -> tuple[int, frozenset[int]] | None:
    """The first telephone-event/8000 format and its events (an unreadable fmtp: not usable)."""
    for pt in media.payload_types:
        if TELEPHONE_EVENT.matches(rtpmap(media, pt)):
            params = fmtp(media, pt)
            try:
                return pt, _DTMF_EVENTS if params is None else parse_events(params)
            except SdpError:
                return None
    return None


def _peer_direction(sdp: SessionDescription, index: int) -> Direction:
    """The peer's direction; a c=0.0.0.0 peer receives nothing (RFC 3264 §8.4, RFC 2543 hold)."""
    conn = sdp.media_connection(index)
    direction = sdp.media_direction(index)
    return direction.hold() if conn is not None and conn.is_null else direction


def _rtcp_target(media: Media, conn: Connection) -> tuple[str, int]:
    attr = rtcp(media)
    if attr is None:
        return conn.host, media.port + 1
    return (attr.connection.host if attr.connection else conn.host), attr.port


def build_answer(offer: SessionDescription, local: LocalMedia, origin: Origin, *,
                 prefer_local_order: bool = False) -> Answer:
    """Answer ``offer`` (RFC 3264 §6); raise SdpNotAcceptable (488) if no stream can be accepted."""
    media: list[Media] = []
    negotiated: Negotiated | None = None
    audio_offered = False
    for i, m in enumerate(offer.media):
        conn = offer.media_connection(i)
        usable = (negotiated is None and m.port != 0 and m.media == "audio" and m.proto == "RTP/AVP"
                  and conn is not None and conn.net_type == "IN" and not conn.is_multicast)
        audio_offered |= usable
        chosen = _choose(m, local.codecs, prefer_local_order) if usable else None
        if chosen is None or conn is None:
            media.append(Media(m.media, 0, m.proto, m.formats))  # rejected: port 0, same m= (§6)
            continue
        pt, codec = chosen
        te = _telephone_event(m) if local.telephone_event_pt is not None else None
        te_pt, events = (te[0], te[1] & local.events) if te else (None, None)
        if not events:
            te_pt = events = None
        peer = _peer_direction(offer, i)
        direction = local.direction.restrict(peer.reverse())  # §6.1
        fmt = rtpmap(m, pt)
        assert fmt is not None
        media.append(_audio_media(local, [(pt, fmt)], events, te_pt, direction))
        rtcp_host, rtcp_port = _rtcp_target(m, conn)
        negotiated = Negotiated(
            media_index=i, remote_address=conn.host, remote_port=m.port, remote_rtcp_address=rtcp_host,
            remote_rtcp_port=rtcp_port, codec=codec, payload_type=pt, recv_payload_type=pt,
            telephone_event_pt=te_pt, recv_telephone_event_pt=te_pt, direction=direction,
            ptime=ptime(m) or _DEFAULT_PTIME, on_hold=not peer.receives)
    if negotiated is None:
        raise SdpNotAcceptable("no common codec" if audio_offered else "no audio RTP/AVP stream we can use")
    sdp = SessionDescription(origin=origin, connection=local.connection, timings=offer.timings, media=tuple(media))
    return Answer(sdp, negotiated)


def _choose(media: Media, codecs: tuple[Codec, ...], prefer_local_order: bool) -> tuple[int, Codec] | None:
    common = [(pt, c) for pt in media.payload_types for c in codecs if c.matches(rtpmap(media, pt))]
    if prefer_local_order:
        common.sort(key=lambda pair: codecs.index(pair[1]))
    return common[0] if common else None


_ALLOWED_ANSWERS = {  # RFC 3264 §6.1: offered direction -> directions an answer may take
    Direction.SENDRECV: frozenset(Direction),
    Direction.SENDONLY: frozenset({Direction.RECVONLY, Direction.INACTIVE}),
    Direction.RECVONLY: frozenset({Direction.SENDONLY, Direction.INACTIVE}),
    Direction.INACTIVE: frozenset({Direction.INACTIVE}),
}


def process_answer(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Check the peer's ``answer`` against our ``offer`` (RFC 3264 §6, §7) and read the outcome.

    Raise :class:`SdpNotAcceptable` when it does not match or rejects our audio stream (a UAC then
    ends the dialog; 488 is the status a UAS would have used).
    """
    if len(answer.media) != len(offer.media):
        raise SdpNotAcceptable(f"answer has {len(answer.media)} m= lines, offer had {len(offer.media)}")
    ours = None
    for i, (o, a) in enumerate(zip(offer.media, answer.media, strict=True)):
        if a.media != o.media or a.proto != o.proto:
            raise SdpNotAcceptable(f"m= line {i + 1}: answer is {a.media} {a.proto}, offer was {o.media} {o.proto}")
        offered, answered = offer.media_direction(i), answer.media_direction(i)
        if o.port != 0 and a.port != 0 and answered not in _ALLOWED_ANSWERS[offered]:
            raise SdpNotAcceptable(f"m= line {i + 1}: {answered.value} does not answer {offered.value}")
        if ours is None and o.port != 0 and o.media == "audio" and o.proto == "RTP/AVP":
            ours = i
    if ours is None:
        raise SdpNotAcceptable("our offer has no audio stream")
    o, a = offer.media[ours], answer.media[ours]
    if a.port == 0:
        raise SdpNotAcceptable("the answer rejected the audio stream")
    conn = answer.media_connection(ours)
    if conn is None or conn.is_multicast:
        raise SdpNotAcceptable("no unicast c= for the audio stream")
    formats = [(pt, rtpmap(o, pt)) for pt in o.payload_types]
    codecs = [c for c in (PCMU, PCMA) if any(c.matches(m) for _, m in formats)]
    chosen = _choose(a, tuple(codecs), prefer_local_order=False)
    if chosen is None:
        raise SdpNotAcceptable("no codec of our offer in the answer")
    pt, codec = chosen
    recv_pt = next(p for p, m in formats if codec.matches(m))
    offered_te, answered_te = _telephone_event(o), _telephone_event(a)
    te_pt, recv_te_pt = (answered_te[0], offered_te[0]) if offered_te and answered_te else (None, None)
    peer = _peer_direction(answer, ours)
    rtcp_host, rtcp_port = _rtcp_target(a, conn)
    return Negotiated(
        media_index=ours, remote_address=conn.host, remote_port=a.port, remote_rtcp_address=rtcp_host,
        remote_rtcp_port=rtcp_port, codec=codec, payload_type=pt, recv_payload_type=recv_pt,
        telephone_event_pt=te_pt, recv_telephone_event_pt=recv_te_pt,
        direction=offer.media_direction(ours).restrict(peer.reverse()), ptime=ptime(a) or _DEFAULT_PTIME,
        on_hold=not peer.receives)


# -- rewriting: direction, hold, versions -----------------------------------------------------------

_DIRECTION_NAMES = frozenset(d.value for d in Direction)


def _set_direction(attributes: tuple[Attribute, ...], direction: Direction) -> tuple[Attribute, ...]:
    """Replace the direction attribute in place (the rest stays byte-identical), or append one."""
    new = Attribute(direction.value)
    if not any(a.name in _DIRECTION_NAMES for a in attributes):
        return (*attributes, new)
    return tuple(new if a.name in _DIRECTION_NAMES else a for a in attributes)


def with_direction(sdp: SessionDescription, direction: Direction, *, index: int | None = None) -> SessionDescription:
    """Mark media ``index`` (default: every stream not rejected with port 0) ``direction``.

    The attribute goes on the media level. A session-level direction attribute is dropped once every
    stream carries its own (it could only contradict them). The o= version is NOT bumped: see
    :func:`stamp`.
    """
    if not sdp.media:
        return dataclasses.replace(sdp, attributes=_set_direction(sdp.attributes, direction))
    media = list(sdp.media)
    for i in range(len(media)) if index is None else (index,):
        if media[i].port != 0 or index is not None:
            media[i] = dataclasses.replace(media[i], attributes=_set_direction(media[i].attributes, direction))
    attributes = sdp.attributes
    if all(m.direction is not None for m in media):
        attributes = tuple(a for a in attributes if a.name not in _DIRECTION_NAMES)
    return dataclasses.replace(sdp, attributes=attributes, media=tuple(media))


def _each_stream(sdp: SessionDescription, change: Callable[[Direction], Direction]) -> SessionDescription:
    for i, m in enumerate(sdp.media):
        if m.port != 0:
            sdp = with_direction(sdp, change(sdp.media_direction(i)), index=i)
    return sdp


def hold(sdp: SessionDescription) -> SessionDescription:
    """Our description put on hold (RFC 3264 §8.4): sendrecv -> sendonly, recvonly -> inactive."""
    return _each_stream(sdp, Direction.hold)


def unhold(sdp: SessionDescription) -> SessionDescription:
    """Off hold again: sendonly -> sendrecv, inactive -> recvonly."""
    return _each_stream(sdp, Direction.unhold)


def stamp(previous: SessionDescription | None, new: SessionDescription) -> SessionDescription:
    """``new`` with the o= line RFC 3264 §8 wants after ``previous`` (what we last sent, or None).

    The o= line stays that of ``previous`` (username, session id, address); its version goes up by
    one if anything else differs, and stays if nothing does (a session refresh re-sends the same).
    """
    if previous is None:
        return new
    same = dataclasses.replace(new, origin=previous.origin) == previous
    version = previous.origin.session_version + (0 if same else 1)
    return dataclasses.replace(new, origin=dataclasses.replace(previous.origin, session_version=version))
