"""SIP over UDP on loopback: how many datagrams per second one uvloop core turns around.

A server process (uvloop, one core) answers every request datagram with a fixed 200 OK; a client
(this process, the other core) keeps a window of distinct INVITEs in flight (each with its own
branch and Call-ID, as on a real line, so the parsers' memos do not hide the work). Four
servers, measured alternately:

- ``bare``: a DatagramProtocol that sends the answer back without looking at the request
  (the ceiling: the cost of the socket calls and the loop);
- ``parse``: the same, plus ``parse_message`` + ``validate()`` of each datagram (the core work);
- ``transport``: :class:`sipcore.transport.SipTransport` (parse, validate, Via stamping check,
  Peer, callback) with ``on_message`` calling ``send(answer, peer)``;
- ``respond``: the same, but the INVITEs' Via asks for ``rport`` (so the transport stamps
  ``received`` and ``rport``: a copy of the message) and ``on_message`` builds the answer
  (``make_response``) and sends it with ``send_response(bytes, peer)`` (routed by its Via,
  §18.2.2, to the rport), as a UAS would.

It also times ``parse_message`` + ``validate`` alone on the same datagrams (``parse_only_us``).
Prints one JSON object on stdout; the run is bounded (``--seconds`` per phase, default 2; about
30 s in all) and stops its child process on exit.

    .venv/bin/python bench/sip_transport_bench.py [--seconds 2] [--rounds 2] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
from typing import Any

import uvloop

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sipcore.message import make_response  # noqa: E402
from sipcore.net import Peer  # noqa: E402
from sipcore.parser import parse_message  # noqa: E402
from sipcore.transport import SipTransport  # noqa: E402

SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
ANSWER = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-0\r\n"
          b"From: <sip:bench@127.0.0.1>;tag=1\r\nTo: <sip:uas@127.0.0.1>;tag=2\r\nCall-ID: 0@bench\r\n"
          b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


def invite(n: int, port: int, rport: bool = False) -> bytes:
    head = (f"INVITE sip:uas@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n:08x}{';rport' if rport else ''}\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:{port}>;tag={n}SIPpTag00{n}\r\n"
            f"To: service <sip:uas@127.0.0.1:5060>\r\n"
            f"Call-ID: {n}-bench@127.0.0.1\r\n"
            f"CSeq: 1 INVITE\r\n"
            f"Contact: sip:sipp@127.0.0.1:{port}\r\n"
            f"Max-Forwards: 70\r\n"
            f"Subject: Performance Test\r\n"
            f"Content-Type: application/sdp\r\n"
            f"Content-Length: {len(SDP)}\r\n\r\n")
    return head.encode() + SDP


# ---- the server process ------------------------------------------------------------------------

class _Bare(asyncio.DatagramProtocol):
    def __init__(self, parse: bool) -> None:
        self.parse = parse
        self.count = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.count += 1
        if self.parse:
            parse_message(data).validate()
        self.transport.sendto(ANSWER, addr)


def _serve(mode: str, pipe: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        counter: Any
        if mode in ("transport", "respond"):
            box: list[SipTransport] = []

            def on_message(msg: Any, peer: Peer) -> None:
                if mode == "transport":
                    box[0].send(ANSWER, peer)
                else:  # what a UAS does: build the answer, route it by its Via (as bytes, like an Outgoing)
                    box[0].send_response(make_response(msg, 200, to_tag="bench").to_bytes(), peer)

            transport = SipTransport(on_message)
            box.append(transport)
            _, port = await transport.listen_udp("127.0.0.1", 0)
            counter = lambda: transport.udp_in  # noqa: E731
        else:
            _, proto = await loop.create_datagram_endpoint(lambda: _Bare(mode == "parse"),
                                                           local_addr=("127.0.0.1", 0))
            port = proto.transport.get_extra_info("sockname")[1]
            counter = lambda: proto.count  # noqa: E731
        pipe.send(port)
        done = loop.create_future()

        def on_command() -> None:
            command = pipe.recv()
            if command == "mark":
                pipe.send((time.process_time(), counter()))
            else:
                done.set_result(None)

        loop.add_reader(pipe.fileno(), on_command)
        await done

    uvloop.run(main())


# ---- the client ----------------------------------------------------------------------------------

class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0
        self.wake: asyncio.Event = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1
        self.wake.set()


async def _drive(port: int, datagrams: list[bytes], window: int, seconds: float, pipe: Any) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(_Client, local_addr=("127.0.0.1", 0))
    target = ("127.0.0.1", port)
    sent = 0
    total = len(datagrams)

    async def run_for(duration: float) -> int:
        nonlocal sent
        start_received = client.received
        deadline = loop.time() + duration
        while loop.time() < deadline:
            outstanding = sent - client.received
            for _ in range(window - outstanding):
                transport.sendto(datagrams[sent % total], target)
                sent += 1
            client.wake.clear()
            try:
                await asyncio.wait_for(client.wake.wait(), 0.05)
            except TimeoutError:  # lost datagrams: forget them, refill the window
                sent = client.received
        return client.received - start_received

    await run_for(min(0.5, seconds))  # warm-up
    pipe.send("mark")
    cpu0, n0 = pipe.recv()
    t0 = time.perf_counter()
    answered = await run_for(seconds)
    wall = time.perf_counter() - t0
    pipe.send("mark")
    cpu1, n1 = pipe.recv()
    transport.close()
    return {"datagrams_per_s": round(answered / wall),
            "server_cpu_us_per_msg": round((cpu1 - cpu0) / max(1, n1 - n0) * 1e6, 2),
            "server_cpu_share": round((cpu1 - cpu0) / wall, 2)}


def _phase(mode: str, datagrams: list[bytes], window: int, seconds: float) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(mode, child), daemon=True)
    proc.start()
    try:
        if not parent.poll(20):
            raise RuntimeError(f"{mode} server did not start")
        port = parent.recv()
        result = uvloop.run(asyncio.wait_for(_drive(port, datagrams, window, seconds, parent), seconds + 20))
        parent.send("stop")
        return result
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _parse_only(datagrams: list[bytes], seconds: float) -> float:
    n = 0
    total = len(datagrams)
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(1000):
            parse_message(datagrams[n % total]).validate()
            n += 1
    return round((time.perf_counter() - start) / n * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measurement time per phase")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the three servers")
    parser.add_argument("--window", type=int, default=64, help="datagrams in flight")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 0.2), 10.0)
    rounds = min(max(args.rounds, 1), 5)
    datagrams = [invite(n, 5061) for n in range(20_000)]
    with_rport = [invite(n, 5061, rport=True) for n in range(20_000)]
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "parse": [], "transport": [], "respond": []}
    for r in range(rounds):
        for mode in runs:
            print(f"round {r + 1}/{rounds}: {mode}", file=sys.stderr)
            runs[mode].append(_phase(mode, with_rport if mode == "respond" else datagrams, args.window, seconds))
    best = {mode: max(results, key=lambda x: x["datagrams_per_s"]) for mode, results in runs.items()}
    parse_us = _parse_only(datagrams, min(seconds, 2.0))
    out = {
        "bench": "sip_transport_udp_echo",
        "loop": "uvloop " + uvloop.__version__,
        "python": platform.python_version(),
        "datagram_bytes": len(datagrams[0]),
        "window": args.window,
        "seconds_per_phase": seconds,
        "best": best,
        "runs": runs,
        "parse_only_us": parse_us,
        "transport_overhead_us": round(best["transport"]["server_cpu_us_per_msg"]
                                       - best["parse"]["server_cpu_us_per_msg"], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
