"""Fan-out subscribers for bench/simprot_bench.py, run in child processes (multiprocessing "spawn").

Each worker process holds many raw asyncio connections.  A connection says hello, logs in with a
resume token and subscribes to topic "messages" (ctiserver), or does the same against the bare
fan-out server, which answers all three with ``{}``.  Then it parses frames; for an event it notes
``time.monotonic()`` right after msgpack decoded the frame and computes the latency against the
publish time the publisher put in the event's text (``"<round> <monotonic t0>"``).  CLOCK_MONOTONIC
is system-wide on Linux, so times taken in different processes compare.

The worker is driven by its parent over a ``multiprocessing`` pipe: commands ``connect``, ``arm``,
``report``, ``close``, ``exit``; it answers each, and sends ``("round", r, count, first, last)`` the
moment ALL its subscribers have decoded the event of round ``r``.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import struct
import time
from typing import Any

import msgpack

_HDR = struct.Struct(">I")
_unpack_from = _HDR.unpack_from
_pack_len = _HDR.pack
_packb = msgpack.packb
_unpackb = msgpack.unpackb
_monotonic = time.monotonic


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _frame(value: Any) -> bytes:
    body = _packb(value)
    return _pack_len(len(body)) + body


class Sub(asyncio.Protocol):
    """One subscriber connection."""

    __slots__ = ("w", "t", "buf", "rid", "waiter", "mask", "dups", "closed")

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.t: asyncio.Transport | None = None
        self.buf = bytearray()
        self.rid = 0
        self.waiter: asyncio.Future | None = None
        self.mask = 0   # bit r set: the event of round r arrived
        self.dups = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        while end - pos >= 4:
            (n,) = _unpack_from(buf, pos)
            start = pos + 4
            if end - start < n:
                break
            pos = start + n
            msg = _unpackb(buf[start:pos])
            kind = msg[0]
            if kind == 4:
                now = _monotonic()  # decoded
                text = msg[4].get("text", "") if type(msg[4]) is dict else ""
                r, _, t0 = text.partition(" ")
                if r.isdigit() and t0:
                    self.w.on_event(self, int(r), now - float(t0))
            elif kind == 2 or kind == 3:
                w = self.waiter
                if w is not None and not w.done() and msg[1] == self.rid:
                    if kind == 2:
                        w.set_result(msg[2])
                    else:
                        w.set_exception(RuntimeError(f"error {msg[2]}: {msg[3]}"))
            elif kind == 5:
                self.t.write(_frame([6, msg[1]]))  # type: ignore[union-attr]
        if pos:
            del buf[:pos]

    async def call(self, op: str, args: dict, timeout: float = 60.0) -> Any:
        self.rid += 1
        self.waiter = asyncio.get_running_loop().create_future()
        self.t.write(_frame([1, self.rid, op, args]))  # type: ignore[union-attr]
        return await asyncio.wait_for(self.waiter, timeout)


class Worker:
    def __init__(self, conn: Any, index: int) -> None:
        self.conn = conn
        self.index = index
        self.subs: list[Sub] = []
        self.expected = 0
        self.rounds: dict[int, list] = {}  # r -> [count, first latency, last latency]
        self.commands: asyncio.Queue = asyncio.Queue()

    def send(self, msg: tuple) -> None:
        self.conn.send(msg)

    def on_event(self, sub: Sub, r: int, latency: float) -> None:
        bit = 1 << r
        if sub.mask & bit:
            sub.dups += 1
            return
        sub.mask |= bit
        st = self.rounds.get(r)
        if st is None:
            st = self.rounds[r] = [0, latency, latency]
        st[0] += 1
        if latency < st[1]:
            st[1] = latency
        if latency > st[2]:
            st[2] = latency
        if st[0] == self.expected:
            self.send(("round", self.index, r, st[0], st[1], st[2]))

    async def connect(self, host: str, port: int, n: int, token: str, concurrency: int) -> tuple:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(concurrency)
        failed = 0
        first_error = ""
        t0 = time.monotonic()

        async def one(i: int) -> None:
            nonlocal failed, first_error
            async with sem:
                try:
                    _, p = await asyncio.wait_for(loop.create_connection(lambda: Sub(self), host, port), 30)
                    await p.call("hello", {"versions": [1], "client": f"bench-sub-{self.index}-{i}"})
                    await p.call("login", {"token": token})
                    await p.call("subscribe", {"topic": "messages"})
                    self.subs.append(p)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failed += 1
                    if not first_error:
                        first_error = repr(exc)[:300]

        await asyncio.gather(*(one(i) for i in range(n)))
        return ("connected", self.index, len(self.subs), failed, time.monotonic() - t0, first_error)

    def arm(self) -> tuple:
        self.expected = len(self.subs)
        self.rounds = {}
        for s in self.subs:
            s.mask = 0
            s.dups = 0
        return ("armed", self.index, self.expected)

    def report(self, rounds: list[int]) -> tuple:
        want = 0
        for r in rounds:
            want |= 1 << r
        misses = 0
        for s in self.subs:
            misses += len(rounds) - (s.mask & want).bit_count()
        dups = sum(s.dups for s in self.subs)
        stats = {r: tuple(v) for r, v in self.rounds.items()}
        return ("report", self.index, stats, misses, dups, len(self.subs))

    async def close_all(self) -> tuple:
        subs, self.subs = self.subs, []
        for s in subs:
            if s.t is not None:
                s.t.close()
        if subs:
            await asyncio.wait([s.closed for s in subs], timeout=20)
        return ("closed", self.index, len(subs), sum(1 for s in subs if not s.closed.done()))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                while self.conn.poll():
                    self.commands.put_nowait(self.conn.recv())
            except (EOFError, OSError):  # the parent is gone
                loop.remove_reader(self.conn.fileno())
                self.commands.put_nowait(("exit",))

        loop.add_reader(self.conn.fileno(), readable)
        self.send(("ready", self.index, raise_nofile()))
        while True:
            cmd = await self.commands.get()
            what = cmd[0]
            if what == "connect":
                self.send(await self.connect(*cmd[1:]))
            elif what == "arm":
                self.send(self.arm())
            elif what == "report":
                self.send(self.report(cmd[1]))
            elif what == "close":
                self.send(await self.close_all())
            elif what == "exit":
                await self.close_all()
                try:
                    loop.remove_reader(self.conn.fileno())
                    self.send(("bye", self.index))
                except (OSError, ValueError):
                    pass
                return


def worker_main(conn: Any, index: int) -> None:
    """Entry point of a subscriber process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    raise_nofile()
    import uvloop

    uvloop.run(Worker(conn, index).run())
