"""The asyncio SimProt client every daemon and ``ctictl`` use.

It connects to the first server of a list that serves (a node answering NOT_MASTER names the
others), says hello, logs in with a password or a resume token, and keeps the session up: when the
connection drops it reconnects with exponential backoff and jitter, logs in again with the token it
was given, and re-subscribes every topic with ``resume`` so the missed events arrive exactly once
and in order (or, after too long a gap, as a fresh snapshot).  Requests in flight when a connection
drops fail with :class:`ConnectionClosed`: the client cannot know whether the server performed them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import ssl as _ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConnectionClosed, ErrorCode, RemoteProtocolError, RequestError
from .framing import HEADER, FrameDecoder, _packb, encode_frame
from .messages import Kind

log = logging.getLogger("simprot.client")

# connection-level refusals that say "not here, not now": try the next server of the list
_TRY_NEXT = frozenset({ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.SERVER_SHUTTING_DOWN,
                       ErrorCode.HANDSHAKE_TIMEOUT, ErrorCode.HEARTBEAT_TIMEOUT})

_K_REQUEST, _K_RESULT, _K_ERROR, _K_EVENT = int(Kind.REQUEST), int(Kind.RESULT), int(Kind.ERROR), int(Kind.EVENT)
_MAX_ID = 2**32 - 1
_pack_len = HEADER.pack


class _Batch:
    """The answers of one request_many: one future for the whole window instead of one per request
    plus asyncio.gather (whose per-future done-callback is Python code run through the event loop)."""

    __slots__ = ("first", "results", "left", "fut")

    def __init__(self, first: int, count: int, fut: asyncio.Future) -> None:
        self.first = first
        self.results: list[Any] = [None] * count
        self.left = count
        self.fut = fut

    def put(self, rid: int, value: Any) -> None:
        self.results[rid - self.first] = value
        self.left -= 1
        if not self.left and not self.fut.done():
            self.fut.set_result(self.results)

    # what the generic paths (connection lost, id-0 error) call on every pending entry
    def done(self) -> bool:
        return self.fut.done()

    def set_exception(self, exc: BaseException) -> None:
        if not self.fut.done():
            self.fut.set_exception(exc)


EventHandler = Callable[[str, int, str, Any], None]       # (topic, seq, name, data)
SnapshotHandler = Callable[[str, Any], None]               # (topic, snapshot)


def parse_address(text: str, default_port: int = 7400) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"server address {text!r}: port must be 1..65535")
    return host.strip("[]"), int(port)


@dataclass
class _Subscription:
    topic: str
    on_event: EventHandler
    on_snapshot: SnapshotHandler | None
    epoch: str | None = None
    seq: int = 0


class _Protocol(asyncio.Protocol):
    def __init__(self, client: SimProtClient) -> None:
        self.client = client
        self.decoder = FrameDecoder(client.max_frame)
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.error: RequestError | None = None  # the id-0 error the server sent before closing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        client = self.client
        client.last_rx = asyncio.get_running_loop().time()
        messages, error = self.decoder.decode(data)
        pending = client._pending
        on_message = client._on_message
        try:
            for msg in messages:
                # fast path: an answer belonging to a request_many window
                if type(msg) is list and len(msg) == 3 and msg[0] == _K_RESULT:
                    rid = msg[1]
                    batch = pending.pop(rid, None)
                    if type(batch) is _Batch:  # _Batch.put, inlined
                        batch.results[rid - batch.first] = msg[2]
                        batch.left -= 1
                        if not batch.left and not batch.fut.done():
                            batch.fut.set_result(batch.results)
                        continue
                    if batch is not None:
                        pending[rid] = batch  # a single request's future: the general path answers it
                on_message(self, msg)
            if error is not None:
                raise error
        except RemoteProtocolError as exc:
            log.warning("client.protocol_error", extra={"reason": str(exc)})
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)
        self.client._lost(self)


class SimProtClient:
    def __init__(
        self,
        servers: Sequence[str | tuple[str, int]],
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        client_name: str = "simprot-py",
        ssl: _ssl.SSLContext | None = None,
        reconnect: bool = True,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        max_frame: int = 16 * 1024 * 1024,
    ) -> None:
        if not servers:
            raise ValueError("servers: at least one address")
        self.servers = [parse_address(s) if isinstance(s, str) else s for s in servers]
        self.user, self.password, self.token = user, password, token
        self.client_name = client_name
        self.ssl = ssl
        self.reconnect = reconnect
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.connect_timeout, self.request_timeout = connect_timeout, request_timeout
        self.max_frame = max_frame
        self.hello: dict = {}
        self.account: dict = {}
        self.connected = asyncio.Event()
        self.last_rx = self.last_tx = 0.0
        self._proto: _Protocol | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future | _Batch] = {}  # request id -> its future, or its window
        self._subs: dict[str, _Subscription] = {}
        self._sub_requests: dict[int, _Subscription] = {}
        self._closing = False
        self._reconnector: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None
        self.reconnects = 0

    # ---- connection management --------------------------------------------------------------
    async def connect(self) -> dict:
        """Connect, hello, log in, resubscribe. Returns the login answer."""
        last: Exception | None = None
        tried: set[tuple[str, int]] = set()
        queue = list(self.servers)
        while queue:
            addr = queue.pop(0)
            if addr in tried:
                continue
            tried.add(addr)
            try:
                return await self._connect_one(addr)
            except RequestError as exc:
                if exc.code is ErrorCode.NOT_MASTER:
                    # go where the standby points (in its order), then the rest of our own list
                    pointed = []
                    for s in exc.details.get("servers", []):
                        try:
                            pointed.append(parse_address(str(s)))
                        except ValueError:
                            continue
                    queue[:0] = pointed
                    last = exc
                    continue
                if exc.code in _TRY_NEXT:
                    last = exc
                    continue
                raise
            except (TimeoutError, OSError, ConnectionClosed) as exc:
                last = exc
        raise ConnectionClosed(f"no server reachable: {last}")

    async def _connect_one(self, addr: tuple[str, int]) -> dict:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(self), addr[0], addr[1], ssl=self.ssl),
            self.connect_timeout)
        self._proto = proto
        try:
            self.hello = await self._call("hello", {"versions": [1], "client": self.client_name},
                                          self.connect_timeout)
            answer = await self._login()
            self.account = answer.get("account", {})
            self.token = answer.get("token", self.token)
            for sub in list(self._subs.values()):
                try:
                    await self._resubscribe(sub)
                except RequestError as exc:
                    if exc.code.closes:  # the connection itself failed: not a refusal of this topic
                        raise
                    # e.g. the account lost the permission: the rest of the session is still useful
                    self._subs.pop(sub.topic, None)
                    log.error("client.resubscribe_refused", extra={"topic": sub.topic, "code": exc.code.name,
                                                                   "reason": exc.message})
        except BaseException:
            if proto.transport is not None:
                proto.transport.abort()
            raise
        self.connected.set()
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = loop.create_task(self._heartbeats())
        log.info("client.connected", extra={"server": f"{addr[0]}:{addr[1]}", "conn": self.hello.get("conn")})
        return answer

    async def _login(self) -> dict:
        if self.token:
            try:
                return await self._call("login", {"token": self.token}, self.connect_timeout)
            except RequestError as exc:
                if exc.code is not ErrorCode.LOGIN_FAILED or self.password is None:
                    raise
                self.token = None
        if self.user is None or self.password is None:
            raise RequestError(ErrorCode.LOGIN_FAILED, "no credentials")
        return await self._call("login", {"user": self.user, "password": self.password}, self.connect_timeout)

    def _lost(self, proto: _Protocol) -> None:
        if proto is not self._proto:
            return
        self._proto = None
        self.connected.clear()
        reason: Exception = proto.error or ConnectionClosed("connection lost")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionClosed(f"connection lost before the answer ({reason})"))
        self._pending.clear()
        revoked = proto.error is not None and proto.error.code is ErrorCode.SESSION_REVOKED
        if revoked:
            log.error("client.session_revoked", extra={"reason": proto.error.message if proto.error else ""})
        if self.reconnect and not self._closing and self.hello and not revoked:
            if self._reconnector is None or self._reconnector.done():
                self._reconnector = asyncio.get_running_loop().create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        delay = self.backoff_initial
        while not self._closing:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                await self.connect()
                self.reconnects += 1
                return
            except RequestError as exc:
                if exc.code in (ErrorCode.LOGIN_FAILED, ErrorCode.PERMISSION_DENIED, ErrorCode.SESSION_REVOKED):
                    log.error("client.reconnect_refused", extra={"reason": str(exc)})
                    return
                retry_after = exc.details.get("retry_after")
                if exc.code is ErrorCode.RATE_LIMITED and isinstance(retry_after, (int, float)):
                    await asyncio.sleep(min(float(retry_after), 300.0))
            except (TimeoutError, ConnectionClosed, OSError) as exc:
                log.info("client.reconnect_failed", extra={"reason": str(exc), "retry_in": delay})
            delay = min(self.backoff_max, delay * 2)

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            interval = float(self.hello.get("heartbeat_interval", 15.0))
            timeout = float(self.hello.get("heartbeat_timeout", 45.0))
            await asyncio.sleep(min(1.0, interval / 2))
            proto = self._proto
            if proto is None or proto.transport is None:
                continue
            now = loop.time()
            if now - self.last_rx >= timeout:
                log.warning("client.heartbeat_timeout", extra={"silent_for": round(now - self.last_rx, 1)})
                proto.transport.abort()
            elif now - self.last_tx >= interval:
                self._write(encode_frame([Kind.PING, 0]))

    async def close(self) -> None:
        """Log out politely and stop reconnecting."""
        self._closing = True
        for task in (self._reconnector, self._heartbeat):
            if task is not None:
                task.cancel()
        proto = self._proto
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            try:
                await self._call("logout", {}, 2.0)
            except (TimeoutError, RequestError, ConnectionClosed):
                pass
            if proto.transport is not None:
                proto.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(proto.closed), 2.0)
            except TimeoutError:
                proto.transport.abort()

    # ---- requests ---------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        proto = self._proto
        if proto is None or proto.transport is None or proto.transport.is_closing():
            raise ConnectionClosed("not connected")
        proto.transport.write(data)
        self.last_tx = asyncio.get_running_loop().time()

    def _reserve_ids(self, count: int) -> int:
        """``count`` consecutive request ids, never wrapping inside the block; returns the first."""
        first = next(self._ids)
        if first + count - 1 > _MAX_ID:
            first = 1
        self._ids = itertools.count(first + count)
        return first

    def _next_id(self) -> int:
        rid = next(self._ids)
        if rid >= 2**32:
            self._ids = itertools.count(2)
            rid = 1
        return rid

    async def _call(self, op: str, args: dict, timeout: float | None) -> Any:
        rid = self._next_id()
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._write(encode_frame([Kind.REQUEST, rid, op, args]))
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(rid, None)

    async def request(self, op: str, args: dict | None = None, *, timeout: float | None = None) -> Any:
        """Send one request and wait for its answer; an ERROR answer raises RequestError.

        While a reconnect is under way the request waits (up to its timeout) for the session to be
        logged in again, so it never goes out before login.
        """
        if not self.connected.is_set():
            await asyncio.wait_for(self.connected.wait(), timeout or self.request_timeout)
        return await self._call(op, args or {}, timeout or self.request_timeout)

    async def request_many(self, op: str, args: Iterable[dict], *, timeout: float | None = None) -> list[Any]:
        """Pipeline many requests in one write; answers in request order (errors as RequestError objects)."""
        loop = asyncio.get_running_loop()
        if not self.connected.is_set():
            await asyncio.wait_for(self.connected.wait(), timeout or self.request_timeout)
        args = list(args)
        if not args:
            return []
        first = self._reserve_ids(len(args))
        parts: list[bytes] = []
        add = parts.append
        for rid, a in enumerate(args, first):  # encode_frame, inlined: this loop is the client's hot path
            body = _packb([_K_REQUEST, rid, op, a])
            add(_pack_len(len(body)))
            add(body)
        data = b"".join(parts)
        batch = _Batch(first, len(args), loop.create_future())
        ids = range(first, first + len(args))
        self._pending.update(dict.fromkeys(ids, batch))
        try:
            self._write(data)
            return await asyncio.wait_for(batch.fut, timeout or self.request_timeout)
        finally:
            if batch.left:
                for rid in ids:
                    self._pending.pop(rid, None)

    # ---- subscriptions ----------------------------------------------------------------------
    async def subscribe(self, topic: str, on_event: EventHandler,
                        on_snapshot: SnapshotHandler | None = None) -> dict:
        sub = _Subscription(topic, on_event, on_snapshot)
        answer = await self._resubscribe(sub)
        self._subs[topic] = sub
        return answer

    async def _resubscribe(self, sub: _Subscription) -> dict:
        args: dict[str, Any] = {"topic": sub.topic}
        if sub.epoch is not None:
            args["resume"] = {"epoch": sub.epoch, "seq": sub.seq}
        self._subs[sub.topic] = sub
        rid = self._next_id()
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        # the answer is applied the moment it is read (see _on_message), before the replayed or
        # live events that follow it in the same read
        self._sub_requests[rid] = sub
        try:
            self._write(encode_frame([Kind.REQUEST, rid, "subscribe", args]))
            return await asyncio.wait_for(fut, self.request_timeout)
        finally:
            self._pending.pop(rid, None)
            self._sub_requests.pop(rid, None)

    @staticmethod
    def _apply_subscribe(sub: _Subscription, answer: Any) -> None:
        if type(answer) is not dict:
            raise RemoteProtocolError("subscribe answer must be a map")
        if answer.get("mode") != "replay":
            sub.seq = answer["seq"]
        sub.epoch = answer["epoch"]
        if answer.get("mode") == "snapshot" and sub.on_snapshot is not None:
            sub.on_snapshot(sub.topic, answer.get("snapshot"))

    async def unsubscribe(self, topic: str) -> None:
        self._subs.pop(topic, None)
        await self.request("unsubscribe", {"topic": topic})

    # ---- incoming ---------------------------------------------------------------------------
    def _on_message(self, proto: _Protocol, msg: Any) -> None:
        if type(msg) is not list or not msg:
            raise RemoteProtocolError("a message must be a non-empty array")
        kind = msg[0]
        if kind == _K_RESULT and len(msg) == 3:
            fut = self._pending.get(msg[1])
            if isinstance(fut, _Batch):
                del self._pending[msg[1]]
                fut.put(msg[1], msg[2])
            elif fut is not None and not fut.done():
                sub = self._sub_requests.pop(msg[1], None)
                if sub is not None:
                    self._apply_subscribe(sub, msg[2])
                fut.set_result(msg[2])
        elif kind == _K_EVENT and len(msg) == 5:
            _, topic, seq, name, data = msg
            sub = self._subs.get(topic)
            if sub is not None and seq > sub.seq:
                sub.seq = seq
                sub.on_event(topic, seq, name, data)
        elif kind == _K_ERROR and len(msg) == 5:
            _, rid, code, message, details = msg
            try:
                err = RequestError(ErrorCode(code), str(message), details if isinstance(details, dict) else {})
            except ValueError:
                err = RequestError(ErrorCode.INTERNAL_ERROR, f"unknown error code {code}: {message}")
            if rid == 0:
                proto.error = err
                log.info("client.server_closed", extra={"code": err.code.name, "reason": err.message})
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(err)
            else:
                fut = self._pending.get(rid)
                if isinstance(fut, _Batch):
                    del self._pending[rid]
                    fut.put(rid, err)
                elif fut is not None and not fut.done():
                    fut.set_exception(err)
        elif kind == Kind.PING and len(msg) == 2:
            self._write(encode_frame([Kind.PONG, msg[1]]))
        elif kind == Kind.PONG:
            pass
        else:
            raise RemoteProtocolError(f"unexpected message kind {kind!r}")
