"""SDP (RFC 4566) parsing/serialization and offer/answer (RFC 3264): round trips, errors, negotiation."""

from __future__ import annotations

import dataclasses

import pytest

from sipcore.errors import SipError
from sipcore.offer_answer import (
    PCMA,
    PCMU,
    LocalMedia,
    build_answer,
    build_offer,
    fmtp,
    format_events,
    hold,
    make_origin,
    parse_events,
    process_answer,
    ptime,
    rtcp,
    rtpmap,
    stamp,
    unhold,
    with_direction,
)
from sipcore.sdp import (
    Attribute,
    Connection,
    Direction,
    Media,
    Origin,
    SdpError,
    SdpLimits,
    SdpNotAcceptable,
    SessionDescription,
    parse_sdp,
)


def sdp(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


HEAD = ("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0")

RFC4566_EXAMPLE = sdp(  # RFC 4566 §5
    "v=0", "o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5", "s=SDP Seminar",
    "i=A Seminar on the session description protocol", "u=http://www.example.com/seminars/sdp.pdf",
    "e=j.doe@example.com (Jane Doe)", "c=IN IP4 224.2.17.12/127", "t=2873397496 2873404696", "a=recvonly",
    "m=audio 49170 RTP/AVP 0", "m=video 51372 RTP/AVP 99", "a=rtpmap:99 h263-1998/90000")

RFC3264_OFFER = sdp(  # RFC 3264 §10.1
    "v=0", "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com", "s=",
    "c=IN IP4 host.atlanta.example.com", "t=0 0", "m=audio 49170 RTP/AVP 0 8 97", "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000", "a=rtpmap:97 iLBC/8000", "m=video 51372 RTP/AVP 31 32", "a=rtpmap:31 H261/90000",
    "a=rtpmap:32 MPV/90000")

EVERYTHING = sdp(
    "v=0", "o=- 1 2 IN IP6 2001:db8::1", "s=Full", "i=info", "u=http://example.com/x", "e=a@example.com",
    "e=b@example.com", "p=+1 617 555-6011", "c=IN IP6 2001:db8::2", "b=AS:128", "t=3034423619 3042462419",
    "r=604800 3600 0 90000", "r=7d 1h 0 25h", "t=0 0", "z=2882844526 -1h 2898848070 0", "k=prompt",
    "a=tool:test", "a=x-unknown:foo bar", "a=flag", "a=empty:", "m=audio 49170/2 RTP/AVP 0 101", "i=main audio",
    "c=IN IP6 2001:db8::3", "c=IN IP6 2001:db8::5", "b=TIAS:64000", "k=clear:abc",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=rtcp:53020 IN IP6 2001:db8::4", "a=ptime:30",
    "a=maxptime:60", "a=inactive", "m=application 9 TCP/BFCP *", "a=setup:actpass")

PHONE_OFFER = sdp(
    *HEAD[:3], "c=IN IP4 198.51.100.7", "t=0 0", "m=audio 49170 RTP/AVP 8 0 101", "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")


# -- parsing and serialization -------------------------------------------------------------------------

@pytest.mark.parametrize("body", [RFC4566_EXAMPLE, RFC3264_OFFER, EVERYTHING, PHONE_OFFER], ids=[
    "rfc4566", "rfc3264", "everything", "phone"])
def test_round_trip_is_byte_identical(body: bytes) -> None:
    parsed = parse_sdp(body)
    assert parsed.to_bytes() == body
    assert parse_sdp(body.decode()) == parsed  # str in, same description
    assert parse_sdp(parsed.to_bytes()) == parsed


def test_everything_is_read() -> None:
    d = parse_sdp(EVERYTHING)
    assert d.origin == Origin("-", "1", 2, "IN", "IP6", "2001:db8::1")
    assert (d.name, d.information, d.uri) == ("Full", "info", "http://example.com/x")
    assert d.emails == ("a@example.com", "b@example.com") and d.phones == ("+1 617 555-6011",)
    assert d.connection == Connection("IN", "IP6", "2001:db8::2")
    assert [(b.bw_type, b.value_kbps) for b in d.bandwidths] == [("AS", 128)]
    assert [(t.start, t.stop, t.repeats) for t in d.timings] == [
        (3034423619, 3042462419, ("604800 3600 0 90000", "7d 1h 0 25h")), (0, 0, ())]
    assert (d.zone, d.key) == ("2882844526 -1h 2898848070 0", "prompt")
    assert d.attributes == (Attribute("tool", "test"), Attribute("x-unknown", "foo bar"), Attribute("flag"),
                            Attribute("empty", ""))
    audio, app = d.media
    assert (audio.media, audio.port, audio.port_count, audio.proto, audio.formats) == (
        "audio", 49170, 2, "RTP/AVP", ("0", "101"))
    assert audio.title == "main audio" and audio.key == "clear:abc" and len(audio.connections) == 2
    assert audio.payload_types == (0, 101) and audio.direction is Direction.INACTIVE
    static = rtpmap(audio, 0)  # static payload type, no a=rtpmap line
    assert static is not None and (static.encoding, static.clock_rate) == ("PCMU", 8000)
    assert rtpmap(audio, 101).value() == "101 telephone-event/8000"  # type: ignore[union-attr]
    assert rtpmap(audio, 99) is None
    assert fmtp(audio, 101) == "0-16" and fmtp(audio, 0) is None and ptime(audio) == 30
    assert rtcp(audio) is not None and rtcp(audio).port == 53020  # type: ignore[union-attr]
    assert rtcp(audio).connection == Connection("IN", "IP6", "2001:db8::4")  # type: ignore[union-attr]
    assert audio.attribute_values("maxptime") == ("60",)
    assert (app.proto, app.formats, app.payload_types) == ("TCP/BFCP", ("*",), ())
    assert d.media_direction(1) is Direction.SENDRECV and d.media_connection(0) == audio.connections[0]


def test_session_level_direction_and_connection_are_inherited() -> None:
    d = parse_sdp(RFC4566_EXAMPLE)
    assert d.direction is Direction.RECVONLY and d.media_direction(0) is Direction.RECVONLY
    assert d.media_connection(1) == d.connection and d.connection.is_multicast  # type: ignore[union-attr]
    assert d.connection.host == "224.2.17.12"  # type: ignore[union-attr]


@pytest.mark.parametrize("body, normal", [
    (b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n", sdp(*HEAD)),  # bare LF
    (sdp(*HEAD)[:-2], sdp(*HEAD)),  # no final line end
    (sdp(*HEAD) + b"\r\n\r\n", sdp(*HEAD)),  # trailing blank lines
    (sdp("v=0", "o=-  1 1   IN IP4 192.0.2.1", "s=-", "c=IN  IP4 192.0.2.1", "t=0  0",
         "m=audio  4000 RTP/AVP  0 ", "a=sendrecv"),
     sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=sendrecv")),  # runs of spaces
])
def test_tolerated_deviations_are_normalized(body: bytes, normal: bytes) -> None:
    assert parse_sdp(body).to_bytes() == normal


def test_bytes_that_are_not_utf8_survive() -> None:
    raw = sdp(*HEAD[:2], "s=caf_", *HEAD[3:]).replace(b"caf_", b"caf\xe9")  # latin-1: invalid UTF-8
    assert parse_sdp(raw).to_bytes() == raw


@pytest.mark.parametrize("body, line, text", [
    (b"", 1, "v=0"),
    (sdp("v=1", *HEAD[1:]), 1, "v=0"),
    (sdp("o=- 1 1 IN IP4 192.0.2.1", "v=0"), 1, "v=0"),
    (sdp("v=0", "s=-", "t=0 0"), 2, "missing o="),
    (sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "t=0 0"), 3, "missing s="),
    (sdp(*HEAD[:4]), 4, "missing t="),
    (sdp(*HEAD[:4], "m=audio 4000 RTP/AVP 0"), 5, "missing t="),
    (sdp(*HEAD, "x=1"), 6, "unknown type letter"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "s=x"), 7, "not allowed in a media description"),
    (sdp(*HEAD, "A=1"), 6, "expected '<letter>=<value>'"),
    (sdp(*HEAD, "a"), 6, "expected '<letter>=<value>'"),
    (sdp(*HEAD, " a=x"), 6, "expected"),
    (sdp(*HEAD[:3], "i=x", "i=y", *HEAD[3:]), 5, "out of order or repeated"),
    (sdp(*HEAD[:3], "c=IN IP4 192.0.2.1", *HEAD[3:]), 5, "out of order or repeated"),
    (sdp(*HEAD, "a=x", "b=AS:1"), 7, "out of order"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=x", "c=IN IP4 192.0.2.1"), 8, "out of order"),
    (sdp(*HEAD, "a=x", "r=1d 1h 0"), 7, "out of order"),
    (sdp(*HEAD[:4], "r=1d 1h 0", "t=0 0"), 5, "r= must follow t="),
    (sdp("v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "t=0 0", "m=audio 4000 RTP/AVP 0"), 5, "no c="),
    (sdp("v=0", "o=- x 1 IN IP4 192.0.2.1", *HEAD[2:]), 2, "session id"),
    (sdp("v=0", "o=- 1 1 IN IP4", *HEAD[2:]), 2, "needs 6 fields"),
    (sdp("v=0", "o=- 1 \u0661 IN IP4 192.0.2.1", *HEAD[2:]), 2, "not a number"),  # arabic-indic digit
    (sdp(*HEAD[:3], "c=IN IP4 999.1.1.1", "t=0 0"), 4, "bad IP4 address"),
    (sdp(*HEAD[:3], "c=IN IP4 2001:db8::1", "t=0 0"), 4, "not an IP4 address"),
    (sdp(*HEAD[:3], "c=IN IP6 192.0.2.1", "t=0 0"), 4, "not an IP6 address"),
    (sdp(*HEAD[:3], "c=IN IP4", "t=0 0"), 4, "needs 3 fields"),
    (sdp(*HEAD[:4], "b=AS", "t=0 0"), 5, "b= needs"),
    (sdp(*HEAD[:4], "t=0 x"), 5, "stop time"),
    (sdp(*HEAD, "r=1d 1h"), 6, "at least 3"),
    (sdp(*HEAD, "r=1d 1x 0"), 6, "bad repeat"),
    (sdp(*HEAD, "z=1 -1h 2"), 6, "bad time zone"),
    (sdp(*HEAD, "m=audio 70000 RTP/AVP 0"), 6, "above 65535"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP"), 6, "at least 4"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 128"), 6, "payload type"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP PCMU"), 6, "payload type"),
    (sdp(*HEAD, "m=audio 4000/0 RTP/AVP 0"), 6, "port out of range"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU"), 7, "malformed a=rtpmap"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:200 X/8000"), 7, "out of range"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/0"), 7, "out of range"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000", "a=rtpmap:0 PCMA/8000"), 8, "second rtpmap"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=fmtp:101"), 7, "malformed a=fmtp"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=ptime:abc"), 7, "malformed a=ptime"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=ptime:0"), 7, "positive"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtcp:70000"), 7, "above 65535"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtcp:5000 IN IP4 300.0.0.1"), 7, "bad IP4"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=sendonly", "a=recvonly"), 8, "second direction"),
    (sdp(*HEAD, "a=sendonly", "a=inactive"), 7, "second direction"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=sendonly:x"), 7, "takes no value"),
    (sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "a=rtpmap"), 7, "needs a value"),
    (sdp(*HEAD, "a=bad name"), 6, "not a token"),
    (sdp(*HEAD, "a=x:1\x002"), 6, "NUL or CR"),
    (sdp(*HEAD, "a=x:1\r2"), 6, "NUL or CR"),
])
def test_errors_name_the_line(body: bytes, line: int, text: str) -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(body)
    assert str(info.value).startswith(f"line {line}: "), str(info.value)
    assert text in str(info.value)
    assert info.value.status == 400 and isinstance(info.value, SipError)


def test_peer_text_in_errors_is_escaped_and_short() -> None:
    with pytest.raises(SdpError) as info:
        parse_sdp(sdp(*HEAD, "\x1b[31m" + "A" * 500))
    message = str(info.value)
    assert "\x1b" not in message and len(message) < 120


@pytest.mark.parametrize("limits, body, text", [
    (SdpLimits(max_bytes=50), sdp(*HEAD), "larger than 50"),
    (SdpLimits(max_lines=5), sdp(*HEAD, "a=x"), "more than 5 lines"),
    (SdpLimits(max_media=1), sdp(*HEAD, "m=audio 1 RTP/AVP 0", "m=audio 2 RTP/AVP 0"), "more than 1 media"),
    (SdpLimits(max_attributes=2), sdp(*HEAD, "a=x", "a=y", "a=z"), "more than 2 attributes"),
    (SdpLimits(max_formats=2), sdp(*HEAD, "m=audio 1 RTP/AVP 0 8 9"), "more than 2 formats"),
])
def test_bounds(limits: SdpLimits, body: bytes, text: str) -> None:
    with pytest.raises(SdpError, match=text):
        parse_sdp(body, limits=limits)
    parse_sdp(body)  # fine under the defaults


def test_default_body_bound() -> None:
    with pytest.raises(SdpError, match="larger than 16384"):
        parse_sdp(sdp(*HEAD, *["a=x-padding:" + "p" * 100] * 200))


def test_records_validate_when_built_in_code() -> None:
    with pytest.raises(SdpError):
        Attribute("x", "injected\r\nm=video 1 RTP/AVP 0")
    with pytest.raises(SdpError):
        SessionDescription(origin=Origin("-", "1", 1), name="a\nb")
    with pytest.raises(SdpError):
        Media("audio", 1, "RTP/AVP", ())
    with pytest.raises(SdpError):
        Media("audio", 1, "RTP/AVP", ("0",), attributes=(Attribute("sendonly"), Attribute("inactive")))
    with pytest.raises(SdpError):
        SessionDescription(origin=Origin("-", "1", 1), timings=())
    with pytest.raises(SdpError):
        Connection("IN", "IP4", "1.2.3")


def test_rejected_stream_may_lack_a_connection() -> None:
    d = parse_sdp(sdp(*HEAD[:3], "t=0 0", "m=audio 0 RTP/AVP 0", "m=audio 4000 RTP/AVP 0", "c=IN IP4 192.0.2.1"))
    assert d.media[0].port == 0 and d.media_connection(0) is None


# -- RFC 4733 event lists --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, events, normal", [
    ("0-15", set(range(16)), "0-15"), ("0-16", set(range(17)), "0-16"), ("0-15,16", set(range(17)), "0-16"),
    ("0-11, 16", {*range(12), 16}, "0-11,16"), ("16", {16}, "16"), ("1,3,5", {1, 3, 5}, "1,3,5"),
])
def test_event_lists(text: str, events: set[int], normal: str) -> None:
    assert parse_events(text) == events and format_events(events) == normal


@pytest.mark.parametrize("text", ["", "a", "1-", "5-1", "0-256", ",".join(["1"] * 33)])
def test_bad_event_lists(text: str) -> None:
    with pytest.raises(SdpError):
        parse_events(text)


# -- offer / answer ----------------------------------------------------------------------------------

LOCAL = LocalMedia(address="203.0.113.5", port=40000)
ORIGIN = make_origin("203.0.113.5", 777)


def offer(*media_lines: str, session: tuple[str, ...] = ()) -> SessionDescription:
    return parse_sdp(sdp(*HEAD[:3], "c=IN IP4 198.51.100.7", "t=0 0", *session, *media_lines))


def test_build_offer() -> None:
    o = build_offer(LOCAL, ORIGIN)
    assert o.to_bytes() == sdp(
        "v=0", "o=- 777 0 IN IP4 203.0.113.5", "s=-", "c=IN IP4 203.0.113.5", "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv")
    assert parse_sdp(o.to_bytes()) == o


def test_build_offer_ipv6_without_events() -> None:
    local = LocalMedia(address="2001:db8::5", port=4000, codecs=(PCMA,), telephone_event_pt=None, ptime=None,
                       direction=Direction.SENDONLY)
    o = build_offer(local, make_origin("2001:db8::5", 1))
    assert o.to_bytes() == sdp("v=0", "o=- 1 0 IN IP6 2001:db8::5", "s=-", "c=IN IP6 2001:db8::5", "t=0 0",
                               "m=audio 4000 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", "a=sendonly")


def test_answer_to_a_phone() -> None:
    answer = build_answer(parse_sdp(PHONE_OFFER), LOCAL, ORIGIN)
    assert answer.sdp.to_bytes() == sdp(
        "v=0", "o=- 777 0 IN IP4 203.0.113.5", "s=-", "c=IN IP4 203.0.113.5", "t=0 0",
        "m=audio 40000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")
    n = answer.negotiated
    assert (n.remote_address, n.remote_port, n.remote_rtcp_address, n.remote_rtcp_port) == (
        "198.51.100.7", 49170, "198.51.100.7", 49171)
    assert (n.codec, n.payload_type, n.recv_payload_type) == (PCMA, 8, 8)
    assert (n.telephone_event_pt, n.recv_telephone_event_pt, n.direction, n.ptime, n.on_hold) == (
        101, 101, Direction.SENDRECV, 20, False)


@pytest.mark.parametrize("session, media_attr, local, answered, on_hold", [
    ((), "a=sendrecv", Direction.SENDRECV, Direction.SENDRECV, False),
    ((), None, Direction.SENDRECV, Direction.SENDRECV, False),  # no attribute: sendrecv (RFC 3264 §5.1)
    ((), "a=sendonly", Direction.SENDRECV, Direction.RECVONLY, True),
    ((), "a=recvonly", Direction.SENDRECV, Direction.SENDONLY, False),
    ((), "a=inactive", Direction.SENDRECV, Direction.INACTIVE, True),
    (("a=sendonly",), None, Direction.SENDRECV, Direction.RECVONLY, True),  # session level
    (("a=sendonly",), "a=sendrecv", Direction.SENDRECV, Direction.SENDRECV, False),  # media level wins
    ((), "a=sendrecv", Direction.RECVONLY, Direction.RECVONLY, False),
    ((), "a=sendrecv", Direction.SENDONLY, Direction.SENDONLY, False),
    ((), "a=recvonly", Direction.RECVONLY, Direction.INACTIVE, False),
    ((), "a=sendonly", Direction.INACTIVE, Direction.INACTIVE, True),
])
def test_answer_directions(session: tuple[str, ...], media_attr: str | None, local: Direction,
                           answered: Direction, on_hold: bool) -> None:
    o = offer("m=audio 5000 RTP/AVP 0", *([media_attr] if media_attr else []), session=session)
    a = build_answer(o, dataclasses.replace(LOCAL, direction=local), ORIGIN)
    assert a.sdp.media_direction(0) is answered and a.negotiated.direction is answered
    assert a.negotiated.on_hold is on_hold
    assert process_answer(o, a.sdp).direction is answered.reverse()  # and the offerer agrees


def test_old_style_hold_with_null_address() -> None:
    o = parse_sdp(sdp(*HEAD[:3], "c=IN IP4 0.0.0.0", "t=0 0", "m=audio 5000 RTP/AVP 0"))
    a = build_answer(o, LOCAL, ORIGIN)
    assert a.negotiated.on_hold and a.negotiated.direction is Direction.RECVONLY  # we send nothing
    assert a.sdp.media_direction(0) is Direction.RECVONLY


@pytest.mark.parametrize("media_lines, prefer_local, pt, codec", [
    (("m=audio 5000 RTP/AVP 0 8",), False, 0, PCMU),
    (("m=audio 5000 RTP/AVP 8 0",), False, 8, PCMA),  # the offerer's preference
    (("m=audio 5000 RTP/AVP 8 0",), True, 0, PCMU),  # ours
    (("m=audio 5000 RTP/AVP 18 0",), False, 0, PCMU),
    (("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 pcmu/8000"), False, 96, PCMU),  # dynamic pt kept, any case
    (("m=audio 5000 RTP/AVP 97 8", "a=rtpmap:97 PCMU/16000"), False, 8, PCMA),  # wrong rate: not ours
    (("m=audio 5000 RTP/AVP 97 8", "a=rtpmap:97 PCMU/8000/2"), False, 8, PCMA),  # stereo: not ours
])
def test_codec_choice(media_lines: tuple[str, ...], prefer_local: bool, pt: int, codec: object) -> None:
    a = build_answer(offer(*media_lines), LOCAL, ORIGIN, prefer_local_order=prefer_local)
    assert (a.negotiated.payload_type, a.negotiated.codec) == (pt, codec)
    assert a.sdp.media[0].payload_types == (pt,)
    assert rtpmap(a.sdp.media[0], pt) is not None


@pytest.mark.parametrize("media_lines, text", [
    (("m=audio 5000 RTP/AVP 18 9",), "no common codec"),
    (("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 opus/48000/2"), "no common codec"),
    (("m=audio 5000 RTP/SAVP 0",), "no audio RTP/AVP stream"),
    (("m=video 5000 RTP/AVP 31",), "no audio RTP/AVP stream"),
    (("m=audio 0 RTP/AVP 0",), "no audio RTP/AVP stream"),
    ((), "no audio RTP/AVP stream"),
])
def test_nothing_acceptable_is_488(media_lines: tuple[str, ...], text: str) -> None:
    with pytest.raises(SdpNotAcceptable, match=text) as info:
        build_answer(offer(*media_lines), LOCAL, ORIGIN)
    assert (info.value.status, info.value.reason) == (488, "Not Acceptable Here")


def test_multicast_audio_is_refused() -> None:
    o = parse_sdp(sdp(*HEAD[:3], "c=IN IP4 224.2.17.12/127", "t=0 0", "m=audio 5000 RTP/AVP 0"))
    with pytest.raises(SdpNotAcceptable):
        build_answer(o, LOCAL, ORIGIN)


def test_other_streams_are_rejected_with_port_zero() -> None:
    o = parse_sdp(RFC3264_OFFER)
    a = build_answer(o, LOCAL, ORIGIN)
    assert len(a.sdp.media) == 2 and a.negotiated.media_index == 0
    video = a.sdp.media[1]
    assert (video.media, video.port, video.proto, video.formats) == ("video", 0, "RTP/AVP", ("31", "32"))
    assert a.sdp.timings == o.timings  # RFC 3264 §6: t= of the answer equals the offer's
    assert a.negotiated.remote_address == "host.atlanta.example.com"


def test_first_usable_audio_stream_wins() -> None:
    o = offer("m=audio 0 RTP/AVP 0", "m=audio 5000 RTP/SAVP 0", "m=audio 6000 RTP/AVP 18",
              "m=audio 7000 RTP/AVP 8", "m=audio 8000 RTP/AVP 0")
    a = build_answer(o, LOCAL, ORIGIN)
    assert [m.port for m in a.sdp.media] == [0, 0, 0, 40000, 0]
    assert (a.negotiated.media_index, a.negotiated.remote_port, a.negotiated.codec) == (3, 7000, PCMA)


@pytest.mark.parametrize("media_lines, local_events, te_pt, fmtp_value", [
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"), None, 101, "0-15"),
    (("m=audio 5000 RTP/AVP 0 100", "a=rtpmap:100 telephone-event/8000"), None, 100, "0-15"),  # no fmtp
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-11,16"), None, 101,
     "0-11,16"),
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"),
     frozenset(range(16)), 101, "0-15"),
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 32-40"), None, None, None),
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 junk"), None, None, None),
    (("m=audio 5000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/48000"), None, None, None),
    (("m=audio 5000 RTP/AVP 0",), None, None, None),
])
def test_telephone_event(media_lines: tuple[str, ...], local_events: frozenset[int] | None, te_pt: int | None,
                         fmtp_value: str | None) -> None:
    local = LOCAL if local_events is None else dataclasses.replace(LOCAL, events=local_events)
    a = build_answer(offer(*media_lines), local, ORIGIN)
    assert a.negotiated.telephone_event_pt == te_pt
    assert a.sdp.media[0].payload_types == ((0, te_pt) if te_pt is not None else (0,))
    if te_pt is not None:
        assert fmtp(a.sdp.media[0], te_pt) == fmtp_value


def test_no_telephone_event_when_we_do_not_want_it() -> None:
    a = build_answer(parse_sdp(PHONE_OFFER), dataclasses.replace(LOCAL, telephone_event_pt=None), ORIGIN)
    assert a.negotiated.telephone_event_pt is None and a.sdp.media[0].payload_types == (8,)


@pytest.mark.parametrize("attr, expected", [(None, 20), ("a=ptime:30", 30), ("a=ptime:20.0", 20)])
def test_ptime_we_send_with(attr: str | None, expected: int) -> None:
    a = build_answer(offer("m=audio 5000 RTP/AVP 0", *([attr] if attr else [])), LOCAL, ORIGIN)
    assert a.negotiated.ptime == expected and ptime(a.sdp.media[0]) == 20  # we ask for ours


def test_rtcp_attribute_is_used() -> None:
    a = build_answer(offer("m=audio 5000 RTP/AVP 0", "a=rtcp:6001 IN IP4 198.51.100.9"), LOCAL, ORIGIN)
    assert (a.negotiated.remote_rtcp_address, a.negotiated.remote_rtcp_port) == ("198.51.100.9", 6001)
    a = build_answer(offer("m=audio 5000 RTP/AVP 0", "a=rtcp:6001"), LOCAL, ORIGIN)
    assert (a.negotiated.remote_rtcp_address, a.negotiated.remote_rtcp_port) == ("198.51.100.7", 6001)


def test_ipv6_offer_and_answer() -> None:
    o = parse_sdp(sdp("v=0", "o=- 1 1 IN IP6 2001:db8::7", "s=-", "c=IN IP6 2001:db8::7", "t=0 0",
                      "m=audio 5000 RTP/AVP 0"))
    local = dataclasses.replace(LOCAL, address="2001:db8::5")
    a = build_answer(o, local, make_origin("2001:db8::5", 9))
    assert a.negotiated.remote_address == "2001:db8::7"
    assert a.sdp.connection == Connection("IN", "IP6", "2001:db8::5")
    assert process_answer(o, a.sdp).remote_address == "2001:db8::5"


# -- processing the answer to our offer ------------------------------------------------------------

OUR_OFFER = build_offer(LOCAL, ORIGIN)


def answer(*media_lines: str, conn: str = "c=IN IP4 198.51.100.7") -> SessionDescription:
    return parse_sdp(sdp(*HEAD[:3], conn, "t=0 0", *media_lines))


def test_process_answer() -> None:
    n = process_answer(OUR_OFFER, answer("m=audio 6000 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000",
                                         "a=ptime:30", "a=sendrecv"))
    assert (n.remote_address, n.remote_port, n.codec, n.payload_type, n.recv_payload_type) == (
        "198.51.100.7", 6000, PCMA, 8, 8)
    assert (n.telephone_event_pt, n.recv_telephone_event_pt, n.direction, n.ptime) == (
        101, 101, Direction.SENDRECV, 30)


def test_answer_may_renumber_and_add_formats() -> None:
    n = process_answer(OUR_OFFER, answer("m=audio 6000 RTP/AVP 18 96 0", "a=rtpmap:96 telephone-event/8000"))
    assert (n.codec, n.payload_type, n.telephone_event_pt, n.recv_telephone_event_pt) == (PCMU, 0, 96, 101)


def test_answer_renumbering_a_codec() -> None:
    n = process_answer(OUR_OFFER, answer("m=audio 6000 RTP/AVP 97", "a=rtpmap:97 PCMU/8000"))
    assert (n.codec, n.payload_type, n.recv_payload_type, n.telephone_event_pt) == (PCMU, 97, 0, None)


@pytest.mark.parametrize("offered, answered, ours", [
    (Direction.SENDONLY, "a=recvonly", Direction.SENDONLY),
    (Direction.SENDONLY, "a=inactive", Direction.INACTIVE),
    (Direction.RECVONLY, "a=sendonly", Direction.RECVONLY),
    (Direction.SENDRECV, "a=recvonly", Direction.SENDONLY),
    (Direction.SENDRECV, "a=inactive", Direction.INACTIVE),
    (Direction.INACTIVE, "a=inactive", Direction.INACTIVE),
])
def test_answered_directions(offered: Direction, answered: str, ours: Direction) -> None:
    o = with_direction(OUR_OFFER, offered)
    assert process_answer(o, answer("m=audio 6000 RTP/AVP 0", answered)).direction is ours


@pytest.mark.parametrize("offered, answered", [
    (Direction.SENDONLY, "a=sendrecv"), (Direction.SENDONLY, "a=sendonly"), (Direction.RECVONLY, "a=recvonly"),
    (Direction.INACTIVE, "a=sendrecv"), (Direction.RECVONLY, None),
])
def test_answer_directions_the_table_forbids(offered: Direction, answered: str | None) -> None:
    o = with_direction(OUR_OFFER, offered)
    with pytest.raises(SdpNotAcceptable, match="does not answer"):
        process_answer(o, answer("m=audio 6000 RTP/AVP 0", *([answered] if answered else [])))


@pytest.mark.parametrize("the_answer, text", [
    (answer("m=audio 6000 RTP/AVP 0", "m=video 0 RTP/AVP 31"), "2 m= lines"),
    (answer("m=video 6000 RTP/AVP 31"), "answer is video"),
    (answer("m=audio 6000 RTP/SAVP 0"), "answer is audio RTP/SAVP"),
    (answer("m=audio 0 RTP/AVP 0"), "rejected the audio stream"),
    (answer("m=audio 6000 RTP/AVP 18"), "no codec of our offer"),
    (answer("m=audio 6000 RTP/AVP 96", "a=rtpmap:96 PCMU/16000"), "no codec of our offer"),
    (answer("m=audio 6000 RTP/AVP 0", conn="c=IN IP4 224.0.0.9/1"), "no unicast"),
])
def test_answers_that_do_not_match(the_answer: SessionDescription, text: str) -> None:
    with pytest.raises(SdpNotAcceptable, match=text):
        process_answer(OUR_OFFER, the_answer)


def test_answer_with_null_address_is_hold() -> None:
    n = process_answer(OUR_OFFER, answer("m=audio 6000 RTP/AVP 0", conn="c=IN IP4 0.0.0.0"))
    assert n.on_hold and n.direction is Direction.RECVONLY


# -- rewriting: direction, hold, versions -----------------------------------------------------------

def test_with_direction_replaces_in_place() -> None:
    body = parse_sdp(PHONE_OFFER)
    held = with_direction(body, Direction.SENDONLY)
    assert held.to_bytes() == PHONE_OFFER.replace(b"a=sendrecv", b"a=sendonly")
    assert with_direction(held, Direction.SENDRECV).to_bytes() == PHONE_OFFER


def test_with_direction_appends_and_drops_session_level() -> None:
    d = parse_sdp(sdp(*HEAD, "a=recvonly", "m=audio 5000 RTP/AVP 0", "a=ptime:20", "m=video 0 RTP/AVP 31",
                      "m=audio 6000 RTP/AVP 0"))
    out = with_direction(d, Direction.INACTIVE)
    assert out.attributes == d.attributes  # the rejected video still inherits: keep the session level
    assert out.media[0].attributes == (Attribute("ptime", "20"), Attribute("inactive"))
    assert out.media[1] == d.media[1] and out.media[2].direction is Direction.INACTIVE
    only_audio = parse_sdp(sdp(*HEAD, "a=recvonly", "m=audio 5000 RTP/AVP 0"))
    assert with_direction(only_audio, Direction.SENDONLY).attributes == ()


def test_with_direction_on_one_stream() -> None:
    d = parse_sdp(sdp(*HEAD, "m=audio 5000 RTP/AVP 0", "m=audio 6000 RTP/AVP 0"))
    out = with_direction(d, Direction.SENDONLY, index=1)
    assert out.media_direction(0) is Direction.SENDRECV and out.media_direction(1) is Direction.SENDONLY


@pytest.mark.parametrize("before, held", [
    (Direction.SENDRECV, Direction.SENDONLY), (Direction.RECVONLY, Direction.INACTIVE),
    (Direction.SENDONLY, Direction.SENDONLY), (Direction.INACTIVE, Direction.INACTIVE),
])
def test_hold_and_unhold(before: Direction, held: Direction) -> None:
    o = with_direction(OUR_OFFER, before)
    h = hold(o)
    assert h.media_direction(0) is held
    assert h.connection == o.connection  # RFC 3264 §8.4: not c=0.0.0.0
    assert unhold(h).media_direction(0) is Direction.from_flags(before.sends, True)


def test_stamp_bumps_the_version_only_on_change() -> None:
    first = build_offer(LOCAL, ORIGIN)
    assert stamp(None, first) is first
    again = stamp(first, build_offer(LOCAL, ORIGIN))
    assert again == first  # a refresh with the same description keeps the version (RFC 3264 §8)
    held = stamp(again, hold(again))
    assert held.origin.session_version == 1 and held.origin.session_id == "777"
    other_origin = dataclasses.replace(unhold(held), origin=make_origin("203.0.113.5", 999, version=55))
    back = stamp(held, other_origin)  # the B2BUA forwarding another leg's body: keep our o= line
    assert (back.origin.session_id, back.origin.session_version) == ("777", 2)
    assert stamp(back, back) == back


def test_local_media_is_validated() -> None:
    with pytest.raises(SdpError):
        LocalMedia(address="not-an-ip", port=1)
    with pytest.raises(SdpError):
        LocalMedia(address="192.0.2.1", port=0)
    with pytest.raises(SdpError):
        LocalMedia(address="192.0.2.1", port=1, telephone_event_pt=8)
    with pytest.raises(SdpError):
        LocalMedia(address="192.0.2.1", port=1, codecs=())
