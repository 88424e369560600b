"""The SIP message parser alone, in one process: what one message costs, in µs.

Six messages of a typical call through a B2BUA (``invite`` with SDP, ``ringing`` a 180 with a
new To tag, ``ok`` its 200 with SDP, ``ack``, ``bye``, ``bye_ok`` the 200 to the BYE, without
body), each measured as:

- ``parse``: ``parse_message(datagram)`` (distinct datagrams: new Call-ID, tags and branch);
- ``validate_repeated``: ``parse_message`` + ``validate()`` of the SAME datagram over and over
  (every header value seen before: the parse memos answer);
- ``validate_new``: ``parse_message`` + ``validate()`` of datagrams that each carry a new
  Call-ID, new tags and a new branch (the normal case on a real line);
- ``serialize``: the first ``to_bytes()`` of a parsed message (not yet cached);
- ``make_response`` (requests but ACK): ``make_response(request, 200, to_tag=...)`` of a
  validated request, plus its ``to_bytes()`` in ``make_response_bytes``.

Every figure is µs of CPU per message (``time.thread_time``, so that other processes busy on a
shared machine count less): the median over ``--rounds`` rounds of ``--count`` messages (the best
round is in ``min``, the figure to compare on a busy machine). ``calibration_us`` is
``sum(range(100))`` here, so runs on different machines can be compared. Prints one JSON object
on stdout, progress on stderr; about 15 s with the defaults, and it stops by itself (``--budget``
seconds in all, default 120).

    .venv/bin/python bench/sip_parse_bench.py [--count 4000] [--rounds 7] [--quick] [--profile NAME]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sipcore.message import Request, Response, make_response  # noqa: E402
from sipcore.parser import parse_message  # noqa: E402

SDP_OFFER = (b"v=0\r\no=- 3956146221 3956146221 IN IP4 198.51.100.20\r\ns=-\r\n"
             b"c=IN IP4 198.51.100.20\r\nt=0 0\r\nm=audio 40376 RTP/AVP 0 8 101\r\n"
             b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
             b"a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
SDP_ANSWER = (b"v=0\r\no=- 1733 1733 IN IP4 203.0.113.9\r\ns=-\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n"
              b"m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
              b"a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def _message(lines: list[str], body: bytes = b"") -> bytes:
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body


def invite(n: int) -> bytes:
    return _message([
        "INVITE sip:+4930123456@203.0.113.9:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK{n:08x}a7c3;rport",
        "Max-Forwards: 70",
        f'From: "Alice Example" <sip:+4930987654@198.51.100.20>;tag={n:x}-as7f3b2c1e',
        "To: <sip:+4930123456@203.0.113.9>",
        f"Call-ID: {n:x}3f1c0e6b5d4a9e8f7c6b5a4@198.51.100.20",
        "CSeq: 102 INVITE",
        "Contact: <sip:+4930987654@198.51.100.20:5060>",
        "User-Agent: Asterisk PBX 18.10.0",
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY",
        "Supported: replaces, timer",
        "Content-Type: application/sdp",
    ], SDP_OFFER)


def _response_head(n: int, status: str, method: str = "INVITE", cseq: int = 102) -> list[str]:
    return [
        f"SIP/2.0 {status}",
        f"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK{n:08x}a7c3;rport=5060;received=198.51.100.20",
        f'From: "Alice Example" <sip:+4930987654@198.51.100.20>;tag={n:x}-as7f3b2c1e',
        f"To: <sip:+4930123456@203.0.113.9>;tag={n:x}9f8e7d6c",
        f"Call-ID: {n:x}3f1c0e6b5d4a9e8f7c6b5a4@198.51.100.20",
        f"CSeq: {cseq} {method}",
    ]


def ringing(n: int) -> bytes:
    return _message([*_response_head(n, "180 Ringing"), "Contact: <sip:uas@203.0.113.9:5060>"])


def ok(n: int) -> bytes:
    return _message([*_response_head(n, "200 OK"), "Contact: <sip:uas@203.0.113.9:5060>",
                     "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE", "Supported: timer",
                     "Content-Type: application/sdp"], SDP_ANSWER)


def _in_dialog(n: int, method: str, cseq: int) -> bytes:
    return _message([
        f"{method} sip:uas@203.0.113.9:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bK{n:08x}{method.lower()};rport",
        "Max-Forwards: 70",
        f'From: "Alice Example" <sip:+4930987654@198.51.100.20>;tag={n:x}-as7f3b2c1e',
        f"To: <sip:+4930123456@203.0.113.9>;tag={n:x}9f8e7d6c",
        f"Call-ID: {n:x}3f1c0e6b5d4a9e8f7c6b5a4@198.51.100.20",
        f"CSeq: {cseq} {method}",
        "User-Agent: Asterisk PBX 18.10.0",
    ])


def bye_ok(n: int) -> bytes:
    return _message(_response_head(n, "200 OK", "BYE", 103))


def ack(n: int) -> bytes:
    return _in_dialog(n, "ACK", 102)


def bye(n: int) -> bytes:
    return _in_dialog(n, "BYE", 103)


MESSAGES: dict[str, Callable[[int], bytes]] = {
    "invite": invite, "ringing": ringing, "ok": ok, "ack": ack, "bye": bye, "bye_ok": bye_ok,
}


def _timed(count: int, run: Callable[..., object], *args: object) -> float:
    """µs of CPU per message for ``run(*args)`` on ``count`` messages (the thread's CPU time:
    other processes busy on the machine do not count, though they may still slow us down)."""
    gc.collect()
    start = time.thread_time()
    run(*args)
    return (time.thread_time() - start) / count * 1e6


def _parse_all(datagrams: list[bytes]) -> None:
    for d in datagrams:
        parse_message(d)


def _validate_all(datagrams: list[bytes]) -> None:
    for d in datagrams:
        parse_message(d).validate()


def _validate_same(datagram: bytes, count: int) -> None:
    for _ in range(count):
        parse_message(datagram).validate()


def _serialize_all(msgs: list[Request] | list[Response] | list[Request | Response]) -> None:
    for m in msgs:
        m.to_bytes()


def _answer_all(requests: list[Request], answers: list[Response]) -> None:
    for r in requests:
        answers.append(make_response(r, 200, to_tag="b2b-4711"))


def _summary(samples: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(samples), 2), "min": round(min(samples), 2)}


def measure(make: Callable[[int], bytes], count: int, rounds: int,
            fresh: Iterator[int]) -> dict[str, object]:
    """All the figures of one message kind; every round gets never-seen-before values."""
    samples: dict[str, list[float]] = {k: [] for k in (
        "parse", "validate_repeated", "validate_new", "serialize", "make_response", "make_response_bytes")}
    same = make(0)
    first = parse_message(same)
    first.validate()
    answerable = isinstance(first, Request) and first.method != "ACK"
    for _ in range(rounds):
        datagrams = [make(next(fresh)) for _ in range(count)]
        samples["parse"].append(_timed(count, _parse_all, datagrams))
        datagrams = [make(next(fresh)) for _ in range(count)]
        samples["validate_new"].append(_timed(count, _validate_all, datagrams))
        samples["validate_repeated"].append(_timed(count, _validate_same, same, count))
        msgs = [parse_message(make(next(fresh))) for _ in range(count)]
        for m in msgs:
            m.validate()
        samples["serialize"].append(_timed(count, _serialize_all, msgs))
        if answerable:
            answers: list[Response] = []
            samples["make_response"].append(_timed(count, _answer_all, msgs, answers))
            samples["make_response_bytes"].append(_timed(count, _serialize_all, answers))
    out: dict[str, object] = {"size_bytes": len(make(1))}
    out.update((name, _summary(values)) for name, values in samples.items() if values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4000, help="messages per round (default 4000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per figure (default 7)")
    parser.add_argument("--quick", action="store_true", help="1000 messages, 3 rounds")
    parser.add_argument("--budget", type=float, default=120.0, help="give up after this many seconds")
    parser.add_argument("--only", default="", help="comma-separated message kinds (default: all)")
    parser.add_argument("--profile", default="", help="cProfile validate_new of this kind; print stats on stderr")
    args = parser.parse_args()
    count, rounds = (1000, 3) if args.quick else (args.count, args.rounds)
    kinds = args.only.split(",") if args.only else list(MESSAGES)
    unknown = [k for k in [*kinds, *([args.profile] if args.profile else [])] if k not in MESSAGES]
    if unknown:
        parser.error(f"unknown message kinds {unknown}; known: {', '.join(MESSAGES)}")
    fresh = itertools.count(1)
    if args.profile:
        import cProfile
        import pstats
        make = MESSAGES[args.profile]
        datagrams = [make(next(fresh)) for _ in range(count * rounds)]
        prof = cProfile.Profile()
        prof.enable()
        for d in datagrams:
            parse_message(d).validate()
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return
    deadline = time.monotonic() + args.budget
    calibration = min(timeit.repeat("sum(range(100))", number=100_000, repeat=5)) / 100_000 * 1e6
    results: dict[str, object] = {}
    for kind in kinds:
        if time.monotonic() > deadline:
            print(f"budget of {args.budget} s spent: skipping {kind}", file=sys.stderr)
            continue
        print(f"{kind} ...", file=sys.stderr, flush=True)
        results[kind] = measure(MESSAGES[kind], count, rounds, fresh)
        print(f"  {json.dumps(results[kind])}", file=sys.stderr, flush=True)
    print(json.dumps({
        "bench": "sip_parse", "unit": "us_per_message",
        "python": platform.python_version(), "machine": platform.machine(),
        "calibration_us": round(calibration, 3), "count": count, "rounds": rounds,
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
