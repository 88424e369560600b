"""Bare uvloop reference pieces for bench/simprot_bench.py: the ceilings SimProt is measured against.

- :class:`BareServerProtocol` in mode "echo": parse length-prefixed msgpack frames, answer every
  request ``[1, id, op, args]`` with ``[2, id, args]``; the answers to one ``data_received`` go out
  in ONE write.  Nothing else: no validation, no session, no dispatch (test (b)).  Because it answers
  hello and login with their own args it also satisfies :class:`simprot.client.SimProtClient`, which
  gives the diagnostic "real client against bare server".
- the same protocol in mode "fanout": answers hello/login/anything with ``{}``, remembers a
  "subscribe" and on "publish" encodes ONE event frame and writes it to every subscriber (test (d)).
- :class:`BareClient`: the bare pipelined client: ``call_many`` writes a window of requests in one
  write and resolves ONE future when the window's last answer arrived (answers arrive in order on a
  connection to an echo server; ids are checked).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import msgpack

_HDR = struct.Struct(">I")
_unpack_from = _HDR.unpack_from
_pack_len = _HDR.pack
_packb = msgpack.packb
_unpackb = msgpack.unpackb


def frame(value: Any) -> bytes:
    body = _packb(value)
    return _pack_len(len(body)) + body


class FanoutState:
    """Shared by every connection of one bare fan-out server."""

    def __init__(self) -> None:
        # insertion-ordered (a dict used as a set): writing in subscription order is measurably faster
        # at 10,000 sockets than a set's hash order
        self.subscribers: dict[asyncio.Transport, None] = {}
        self.seq = 0
        self.publish_times: list[tuple[float, float]] = []  # (wall, CPU) seconds to encode + write to all


class BareServerProtocol(asyncio.Protocol):
    """Mode "echo" (``fanout is None``) or "fanout"."""

    def __init__(self, fanout: FanoutState | None = None) -> None:
        self.fanout = fanout
        self.buf = bytearray()
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.fanout is not None:
            self.fanout.subscribers.pop(self.t, None)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        out = []
        fanout = self.fanout
        while end - pos >= 4:
            (n,) = _unpack_from(buf, pos)
            start = pos + 4
            if end - start < n:
                break
            pos = start + n
            msg = _unpackb(buf[start:pos])
            if fanout is None:
                body = _packb([2, msg[1], msg[3]])
            else:
                body = _packb([2, msg[1], self._fanout_op(msg[2], msg[3])])
            out.append(_pack_len(len(body)) + body)
        if pos:
            del buf[:pos]
        if out:
            self.t.write(b"".join(out) if len(out) > 1 else out[0])  # type: ignore[union-attr]

    def _fanout_op(self, op: str, args: dict) -> dict:
        st = self.fanout
        assert st is not None
        if op == "subscribe":
            st.subscribers[self.t] = None  # type: ignore[index]
            return {"topic": args.get("topic"), "seq": st.seq, "mode": "live"}
        if op == "publish":
            t0, c0 = time.perf_counter(), time.thread_time()
            st.seq += 1
            ev = frame([4, "messages", st.seq, "message",
                        {"from": "bench", "to": "all", "text": args.get("text", ""), "at": round(time.time(), 3)}])
            for t in tuple(st.subscribers):
                t.write(ev)
            st.publish_times.append((time.perf_counter() - t0, time.thread_time() - c0))
            return {"seq": st.seq}
        if op == "count":
            return {"subscribers": len(st.subscribers)}
        return {}


async def bare_listen(loop: asyncio.AbstractEventLoop, mode: str) -> tuple[asyncio.AbstractServer, tuple[str, int],
                                                                          FanoutState | None]:
    st = FanoutState() if mode == "fanout" else None
    srv = await loop.create_server(lambda: BareServerProtocol(st), "127.0.0.1", 0, backlog=4096)
    host, port = srv.sockets[0].getsockname()[:2]
    return srv, (host, port), st


class _Window:
    __slots__ = ("next_id", "last_id", "results", "fut")

    def __init__(self, first: int, count: int, fut: asyncio.Future) -> None:
        self.next_id = first
        self.last_id = first + count - 1
        self.results: list[Any] = []
        self.fut = fut


class BareClient(asyncio.Protocol):
    """Minimal pipelined client for a server that answers in order (bare echo server, echo on ctiserver)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.t: asyncio.Transport | None = None
        self.windows: list[_Window] = []  # in flight, oldest first
        self.head = 0
        self.next_id = 1
        self.closed = asyncio.get_running_loop().create_future()
        self.errors = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> BareClient:
        _, proto = await asyncio.get_running_loop().create_connection(cls, host, port)
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        for w in self.windows[self.head:]:
            if not w.fut.done():
                w.fut.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        windows = self.windows
        while end - pos >= 4:
            (n,) = _unpack_from(buf, pos)
            start = pos + 4
            if end - start < n:
                break
            pos = start + n
            msg = _unpackb(buf[start:pos])
            kind = msg[0]
            if kind == 5:  # ping
                self.t.write(frame([6, msg[1]]))  # type: ignore[union-attr]
                continue
            if kind not in (2, 3):
                continue
            w = windows[self.head]
            if msg[1] != w.next_id:
                self.errors += 1
            w.results.append(msg[2] if kind == 2 else RuntimeError(f"error {msg[2]}: {msg[3]}"))
            if w.next_id == w.last_id:
                self.head += 1
                w.fut.set_result(w.results)
                if self.head > 64:
                    del windows[:self.head]
                    self.head = 0
            else:
                w.next_id += 1
        if pos:
            del buf[:pos]

    def call_many(self, op: str, args_list: list[dict]) -> asyncio.Future:
        rid = self.next_id
        count = len(args_list)
        self.next_id = rid + count
        data = b"".join([frame([1, rid + i, op, a]) for i, a in enumerate(args_list)])
        fut = asyncio.get_running_loop().create_future()
        self.windows.append(_Window(rid, count, fut))
        self.t.write(data)  # type: ignore[union-attr]
        return fut

    async def call(self, op: str, args: dict) -> Any:
        (result,) = await self.call_many(op, [args])
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        if self.t is not None:
            self.t.close()
