"""The asyncio side of a SimProt server: moves bytes, arms the sweeper, runs operations.

Protocol mechanics live here and in the sans-IO modules (framing, session table, topics,
liveness); what the operations *do* is the application's, plugged in through :class:`Backend`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import secrets
import ssl as _ssl
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import ErrorCode, RemoteProtocolError, RequestError, SimProtError
from .framing import HEADER, FrameDecoder, _packb, check_depth, encode_frame
from .liveness import LivenessPolicy, Verdict
from .messages import Kind
from .session import Action, Input, ServerSession, State
from .topics import ResumeMode, Topic

log = logging.getLogger("simprot.server")

PROTOCOL_VERSIONS = (1,)
PREAUTH_MAX_FRAME = 65_536  # before login a frame may not exceed this, whatever max_frame says
MAX_SERVER_FRAME = 16 * 1024 * 1024  # the server never sends a larger frame body; clients must accept this

_K_REQUEST, _K_PING, _K_PONG = int(Kind.REQUEST), int(Kind.PING), int(Kind.PONG)
_SPECIAL_OPS = {"hello": Input.HELLO, "login": Input.LOGIN, "logout": Input.LOGOUT}
# enum members as module globals: on Python 3.11 reading `State.READY` costs ~60 ns, a global ~5 ns
_READY, _CLOSED, _REQUEST, _DISPATCH = State.READY, State.CLOSED, Input.REQUEST, Action.DISPATCH
_K_RESULT = int(Kind.RESULT)
_pack_len = HEADER.pack
_PING = encode_frame([Kind.PING, 0])
_SWEEP_SLICES = 10     # a liveness pass over all connections is spread over this many timer calls
_SWEEP_MIN_SLICE = 64  # ... each checking at least this many (small servers: one call does all)
_TOO_LARGE = RequestError(ErrorCode.INTERNAL_ERROR, f"the answer is larger than {MAX_SERVER_FRAME} bytes")


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame: int = 1_048_576
    max_send_buffer: int = 4_194_304
    max_connections: int = 20_000
    max_inflight: int = 1024
    event_buffer: int = 10_000
    heartbeat_interval: float = 15.0
    heartbeat_timeout: float = 45.0
    handshake_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Operation:
    """One request type: ``handler(conn, args)`` returns the result (or an awaitable of it)."""

    name: str
    handler: Callable[[Connection, dict], Any]
    permission: str | None = None  # None: any logged-in session
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        # decided once here, not per request: the hot path only reads a slot
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.handler))


class Backend(Protocol):
    """What the application provides to the protocol server."""

    def serving(self) -> tuple[bool, list[str]]:
        """(True, []) on the master; (False, ["host:port", ...]) where clients should go instead."""

    def server_info(self) -> dict: ...

    async def login(self, conn: Connection, args: dict) -> tuple[Any, dict]:
        """Check credentials; return (principal, result) or raise RequestError."""

    def permitted(self, principal: Any, permission: str) -> bool: ...

    def audience(self, principal: Any) -> str:
        """The name under which this principal receives directed events (see publish)."""

    def topic_permission(self, topic: str) -> str | None:
        """Permission needed to subscribe; raise RequestError(NOT_FOUND) for an unknown topic."""

    def snapshot(self, topic: str, principal: Any) -> Any: ...

    @property
    def ops(self) -> Mapping[str, Operation]:
        """The operations by name (read on every request: keep it a plain dict)."""

    def closed(self, conn: Connection, reason: str) -> None: ...


class Connection(asyncio.Protocol):
    """One client connection."""

    def __init__(self, server: SimProtServer) -> None:
        self.server = server
        self.id = f"c{next(server._ids)}"
        self.session = ServerSession()
        self.principal: Any = None
        self.audience = ""  # the name directed events are addressed to (the backend's choice)
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self.topics: set[str] = set()
        self.inflight: dict[int, asyncio.Task] = {}
        self._decoder = FrameDecoder(min(PREAUTH_MAX_FRAME, server.limits.max_frame))
        self._out: list[bytes] | None = None  # batch of frames while handling one read
        self._granted: dict[str, bool] = {}
        self._cork: list[bytes] | None = None  # addressed events waiting for the end of the loop iteration
        self._replay: list[bytes] | None = None  # missed events to send right after a subscribe answer
        self._paused = False
        now = server.loop.time()
        self.opened = self.last_rx = self.last_tx = now
        self.close_reason = ""

    # ---- asyncio callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        srv = self.server
        if len(srv.connections) >= srv.limits.max_connections:
            self._fatal(ErrorCode.TOO_MANY_CONNECTIONS, "too many connections")
            return
        srv.connections[self.id] = self
        log.info("conn.open", extra={"conn": self.id, "peer": self.peer})

    def data_received(self, data: bytes) -> None:
        self.last_rx = self.server.loop.time()
        messages, error = self._decoder.decode(data)
        out: list[bytes] = []
        self._out = out
        self.server._batching = self
        try:
            on_message = self._on_message
            session = self.session
            ops = self.server.backend.ops
            inflight = self.inflight
            granted = self._granted
            for msg in messages:
                # Fast path for the common case, a well-formed request for a synchronous operation
                # on a logged-in session: the same checks as _on_message/_dispatch, fused into this
                # loop because each Python call costs as much as the whole answer. Anything unusual
                # (bad shape, special op, unknown op, async op, permission not yet cached, nested
                # args) falls through to the general path below; a handler error is answered here.
                if (type(msg) is list and len(msg) == 4 and type(msg[0]) is int and msg[0] == 1
                        and session.state is _READY):
                    _, rid, op, args = msg
                    if (type(rid) is int and 0 < rid <= 0xFFFFFFFF and type(op) is str and type(args) is dict
                            and rid not in inflight):
                        operation = ops.get(op)
                        if (operation is not None and not operation.is_async
                                and (operation.permission is None or granted.get(operation.permission))):
                            for k, v in args.items():
                                if type(k) is not str or type(v) is dict or type(v) is list:
                                    break
                            else:
                                try:
                                    body = _packb([_K_RESULT, rid, operation.handler(self, args)])
                                except Exception as exc:  # noqa: BLE001 - reported like _dispatch does
                                    self._op_failed(rid, op, exc)
                                    continue
                                if len(body) <= MAX_SERVER_FRAME:
                                    out.append(_pack_len(len(body)) + body)
                                else:
                                    self._op_failed(rid, op, _TOO_LARGE)
                                continue
                on_message(msg)
                if session.state is _CLOSED:
                    error = None
                    break
            if error is not None:
                raise error
        except RemoteProtocolError as exc:
            self._out = None
            self.server._batching = None
            if out:
                self._write(b"".join(out))
            self._fatal(exc.code, str(exc), exc.details)
            return
        except Exception:  # a bug of ours: this connection ends, the server and the others go on
            log.exception("conn.internal_error", extra={"conn": self.id, "peer": self.peer})
            self._out = None
            self.server._batching = None
            if out:
                self._write(b"".join(out))
            self._fatal(ErrorCode.INTERNAL_ERROR, f"internal error; see server log for {self.id}")
            return
        self._out = None
        self.server._batching = None
        if out:
            self._write(b"".join(out) if len(out) > 1 else out[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session.state is not State.CLOSED:
            self.session.handle(Input.CLOSE)
        self._teardown(self.close_reason or ("lost: " + str(exc) if exc else "peer closed"))

    def pause_writing(self) -> None:  # flow control is by max_send_buffer, checked on every write
        pass

    def resume_writing(self) -> None:
        pass

    # ---- sending ----------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._cork:  # events gathered earlier in this loop iteration go first
            data = b"".join(self._cork) + data
            self._cork = None
        t.write(data)
        self.last_tx = self.server.loop.time()
        if t.get_write_buffer_size() > self.server.limits.max_send_buffer:
            self._slow_consumer(t)

    def _slow_consumer(self, t: asyncio.Transport) -> None:
        self.close_reason = "slow consumer"
        log.warning("conn.slow_consumer", extra={"conn": self.id, "peer": self.peer,
                                                 "buffered": t.get_write_buffer_size()})
        self.session.handle(Input.CLOSE)
        t.abort()  # its queue is full: it could not read a goodbye anyway

    def send(self, message: list) -> None:
        frame = encode_frame(message)
        if self._out is not None:
            self._out.append(frame)
        else:
            self._write(frame)

    def send_frame(self, frame: bytes) -> None:
        if self._out is not None:
            self._out.append(frame)
        else:
            self._write(frame)

    def send_error(self, rid: int, code: ErrorCode, message: str, details: dict | None = None) -> None:
        self.send([Kind.ERROR, rid, int(code), message, details or {}])

    def _fatal(self, code: ErrorCode, message: str, details: dict | None = None,
               event: Input = Input.CLOSE) -> None:
        """Send a connection-level error and close after it is flushed."""
        if self.session.state is not State.CLOSED:
            self.session.handle(event)
        self.close_reason = f"{code.name}: {message}"
        log.info("conn.error", extra={"conn": self.id, "peer": self.peer, "code": code.name,
                                      "reason": message})
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(encode_frame([Kind.ERROR, 0, int(code), message, details or {}]))
            t.close()

    # ---- receiving --------------------------------------------------------------------------
    def _on_message(self, msg: Any) -> None:
        if type(msg) is not list or not msg or type(msg[0]) is not int:
            raise RemoteProtocolError("a message must be an array starting with its kind")
        kind = msg[0]
        if kind == _K_REQUEST:
            if len(msg) != 4:
                raise RemoteProtocolError("a request is [1, id, op, args]")
            _, rid, op, args = msg
            if type(rid) is not int or not 0 < rid < 2**32:
                raise RemoteProtocolError("request id must be an integer in 1..4294967295")
            if type(op) is not str or type(args) is not dict or not 0 < len(op) <= 64:
                raise RemoteProtocolError("a request is [1, id, op:string of 1..64, args:map]")
            for k, v in args.items():
                if type(k) is not str or type(v) is dict or type(v) is list:
                    check_depth(args)  # refuses non-string keys and deep nesting, at every level
                    break
            event = _SPECIAL_OPS.get(op, _REQUEST)
            if event is _REQUEST and self.session.state is _READY:  # hot path: (READY, REQUEST) -> DISPATCH
                self._dispatch(rid, op, args)
                return
        elif kind == _K_PING or kind == _K_PONG:
            if len(msg) != 2 or type(msg[1]) is not int or not 0 <= msg[1] < 2**32:
                raise RemoteProtocolError("ping and pong are [5|6, token]")
            event = Input.PING if kind == _K_PING else Input.PONG
            rid, op, args = msg[1], "", {}
        else:
            event = Input.ILLEGAL
            rid, op, args = 0, "", {}
        action = self.session.handle(event)
        if action is _DISPATCH:
            self._dispatch(rid, op, args)
        elif action is Action.PONG:
            self.send([Kind.PONG, rid])
        elif action is Action.NOTE_PONG or action is Action.IGNORE:
            pass
        elif action is Action.ACCEPT_HELLO:
            self._hello(rid, args)
        elif action is Action.CHECK_LOGIN:
            self._start(rid, self._login(rid, args))
        elif action is Action.NEED_AUTH:
            self.send_error(rid, ErrorCode.NOT_AUTHENTICATED, f"{op}: log in first")
        elif action is Action.WRONG_STATE:
            self.send_error(rid, ErrorCode.INVALID_STATE, f"{op} not allowed now")
        elif action is Action.LOGOUT:
            self.send([Kind.RESULT, rid, {}])
            self.close_reason = "logout"
            if self._out:
                self._write(b"".join(self._out))
                self._out.clear()
            if self.transport is not None:
                self.transport.close()
        elif action is Action.PROTOCOL_ERROR:
            what = f"message kind {kind!r}" if event is Input.ILLEGAL else (op or "ping")
            raise RemoteProtocolError(f"{what} not allowed in this state")
        else:  # pragma: no cover - the table has no other actions for client input
            raise RemoteProtocolError(f"unexpected action {action}")

    def _hello(self, rid: int, args: dict) -> None:
        srv = self.server
        serving, servers = srv.backend.serving()
        if not serving:
            self._fatal(ErrorCode.NOT_MASTER, "this node does not serve now", {"servers": servers})
            return
        versions = args.get("versions")
        if type(versions) is not list or not versions or not all(type(v) is int for v in versions):
            self._fatal(ErrorCode.PROTOCOL_ERROR, "hello: versions must be a non-empty list of integers",
                        {"field": "versions"})
            return
        common = set(versions) & set(PROTOCOL_VERSIONS)
        if not common:
            self._fatal(ErrorCode.UNSUPPORTED_VERSION, f"no common version; server speaks {PROTOCOL_VERSIONS}",
                        {"versions": list(PROTOCOL_VERSIONS)})
            return
        client = args.get("client")
        if type(client) is str:
            log.info("conn.hello", extra={"conn": self.id, "client": client[:64]})
        lim = srv.limits
        self.send([Kind.RESULT, rid, {
            "version": max(common), "epoch": srv.epoch, "conn": self.id,
            "heartbeat_interval": float(lim.heartbeat_interval), "heartbeat_timeout": float(lim.heartbeat_timeout),
            "max_frame": lim.max_frame, "preauth_max_frame": self._decoder.max_frame,
            "max_inflight": lim.max_inflight, **srv.backend.server_info(),
        }])

    async def _login(self, rid: int, args: dict) -> None:
        try:
            principal, result = await self.server.backend.login(self, args)
        except RequestError as exc:
            if self.session.handle(Input.LOGIN_FAILED) is Action.DENY_LOGIN:
                self.send_error(rid, exc.code, exc.message, exc.details)
            return
        except Exception:  # the backend failed (database down?): answer, do not leave the login hanging
            log.exception("login.error", extra={"conn": self.id, "peer": self.peer})
            if self.session.handle(Input.LOGIN_FAILED) is Action.DENY_LOGIN:
                self.send_error(rid, ErrorCode.INTERNAL_ERROR, f"login failed on the server; see log for {self.id}")
            return
        if self.session.handle(Input.LOGIN_OK) is Action.FINISH_LOGIN:
            self.principal = principal
            self.audience = self.server.backend.audience(principal)
            self._decoder.max_frame = self.server.limits.max_frame
            self.send([Kind.RESULT, rid, result])

    # ---- operations -------------------------------------------------------------------------
    def _dispatch(self, rid: int, op: str, args: dict) -> None:
        srv = self.server
        if rid in self.inflight:
            self.send_error(rid, ErrorCode.DUPLICATE_ID, f"request id {rid} is still in flight")
            return
        if op == "subscribe" or op == "unsubscribe":
            try:
                answer = self._subscribe(args) if op == "subscribe" else self._unsubscribe(args)
                self.send_frame(self._result_frame(rid, answer))
            except RequestError as exc:
                self.send_error(rid, exc.code, exc.message, exc.details)
            self._flush_replay()
            return
        operation = srv.backend.ops.get(op)
        if operation is None:
            self.send_error(rid, ErrorCode.UNKNOWN_OPERATION, f"unknown operation {op[:64]!r}")
            return
        if operation.permission is not None and not self.permitted(operation.permission):
            self.send_error(rid, ErrorCode.PERMISSION_DENIED, f"{op}: needs permission {operation.permission}")
            return
        if operation.is_async:
            self._start(rid, self._run(rid, operation, args))
            return
        try:
            frame = self._result_frame(rid, operation.handler(self, args))
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer
            self._op_failed(rid, op, exc)
            return
        self.send_frame(frame)

    def _op_failed(self, rid: int, op: str, exc: Exception) -> None:
        """Answer a failed synchronous operation: its RequestError, or INTERNAL_ERROR for a bug."""
        if isinstance(exc, RequestError):
            self.send_error(rid, exc.code, exc.message, exc.details)
            return
        log.error("op.failed", exc_info=exc, extra={"conn": self.id, "op": op})
        self.send_error(rid, ErrorCode.INTERNAL_ERROR, f"{op} failed; see server log for conn {self.id}")

    @staticmethod
    def _result_frame(rid: int, result: Any) -> bytes:
        frame = encode_frame([Kind.RESULT, rid, result])
        if len(frame) > MAX_SERVER_FRAME + 4:
            raise _TOO_LARGE
        return frame

    def permitted(self, permission: str) -> bool:
        """Whether the logged-in principal holds ``permission`` (fixed for the session: cached)."""
        ok = self._granted.get(permission)
        if ok is None:
            ok = self._granted[permission] = bool(self.server.backend.permitted(self.principal, permission))
        return ok

    def _start(self, rid: int, coro: Coroutine[Any, Any, None]) -> None:
        if rid in self.inflight:
            coro.close()
            self.send_error(rid, ErrorCode.DUPLICATE_ID, f"request id {rid} is still in flight")
            return
        task: asyncio.Task[None] = self.server.loop.create_task(coro)
        self.inflight[rid] = task
        task.add_done_callback(functools.partial(self._finished, rid))
        if len(self.inflight) >= self.server.limits.max_inflight and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()  # backpressure: stop reading until requests complete

    def _finished(self, rid: int, _task: object = None) -> None:
        self.inflight.pop(rid, None)
        if self._paused and len(self.inflight) < max(1, self.server.limits.max_inflight // 2) and self.transport:
            self._paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    async def _run(self, rid: int, operation: Operation, args: dict) -> None:
        try:
            frame = self._result_frame(rid, await operation.handler(self, args))
        except RequestError as exc:
            self.send_error(rid, exc.code, exc.message, exc.details)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("op.failed", extra={"conn": self.id, "op": operation.name})
            self.send_error(rid, ErrorCode.INTERNAL_ERROR,
                            f"{operation.name} failed; see server log for conn {self.id}")
            return
        if self.session.state is State.READY:
            self.send_frame(frame)

    # ---- subscriptions ----------------------------------------------------------------------
    def _subscribe(self, args: dict) -> dict:
        srv = self.server
        name = args.get("topic")
        if type(name) is not str:
            raise RequestError(ErrorCode.INVALID_ARGUMENT, "topic: a string", {"field": "topic"})
        permission = srv.backend.topic_permission(name)
        if permission is not None and not self.permitted(permission):
            raise RequestError(ErrorCode.PERMISSION_DENIED, f"topic {name}: needs permission {permission}")
        topic = srv.topic(name)
        resume = args.get("resume")
        after: int | None = None
        epoch: str | None = None
        if resume is not None:
            if (type(resume) is not dict or type(resume.get("seq")) is not int or resume["seq"] < 0
                    or type(resume.get("epoch")) is not str):
                raise RequestError(ErrorCode.INVALID_ARGUMENT, "resume: {epoch: string, seq: integer >= 0}",
                                   {"field": "resume"})
            after, epoch = resume["seq"], resume["epoch"]
        mode, frames = topic.resume(srv.epoch, after, epoch)
        answer: dict[str, Any] = {"topic": name, "epoch": srv.epoch, "seq": topic.seq, "mode": mode.value}
        if mode is ResumeMode.SNAPSHOT:
            answer["snapshot"] = srv.backend.snapshot(name, self.principal)
        # registering and reading the buffer happen in one callback: nothing can slip in between
        self._replay = [f for f, aud in frames if aud is None or self.audience in aud]
        self.topics.add(name)
        srv.subscribers.setdefault(name, {})[self] = self.transport  # type: ignore[assignment]  # set by now
        srv._by_audience.setdefault(name, {}).setdefault(self.audience, set()).add(self)
        log.info("sub.open", extra={"conn": self.id, "topic": name, "mode": mode.value, "after": after})
        return answer

    def _flush_replay(self) -> None:
        frames = self._replay
        if frames:
            for frame in frames:
                self.send_frame(frame)
        self._replay = None

    def _unsubscribe(self, args: dict) -> dict:
        name = args.get("topic")
        if type(name) is not str or name not in self.topics:
            raise RequestError(ErrorCode.NOT_FOUND, "topic: not subscribed", {"field": "topic"})
        self.topics.discard(name)
        self.server._unsubscribe(name, self)
        return {}

    # ---- teardown ---------------------------------------------------------------------------
    def _teardown(self, reason: str) -> None:
        srv = self.server
        if srv.connections.pop(self.id, None) is None:
            return
        for name in self.topics:
            srv._unsubscribe(name, self)
        for task in self.inflight.values():
            task.cancel()
        log.info("conn.close", extra={"conn": self.id, "peer": self.peer, "reason": reason})
        srv.backend.closed(self, reason)

    def close(self, code: ErrorCode, message: str, *, timeout: bool = False) -> None:
        self._fatal(code, message, event=Input.TIMEOUT if timeout else Input.CLOSE)


class SimProtServer:
    """Listens, tracks connections and topics, sweeps liveness."""

    def __init__(self, backend: Backend, limits: Limits, *, epoch: str | None = None) -> None:
        self.backend = backend
        self.limits = limits
        self.epoch = epoch or secrets.token_hex(8)
        self.loop = asyncio.get_running_loop()
        self.connections: dict[str, Connection] = {}
        # topic -> {connection: its transport}; a dict keeps subscription order (a set's hash order
        # is measurably slower to write to at 10,000 sockets) and publish needs no Connection attribute
        self.subscribers: dict[str, dict[Connection, asyncio.Transport]] = {}
        self._by_audience: dict[str, dict[str, set[Connection]]] = {}  # topic -> audience name -> subscribers
        self._corked: list[Connection] = []  # connections holding addressed events until the loop iteration ends
        self._last_publish: dict[str, float] = {}  # topic -> loop time of its last event (for heartbeats)
        self._batching: Connection | None = None  # the connection whose input is being handled (its _out)
        self.topics: dict[str, Topic] = {}
        self.liveness = LivenessPolicy(limits.heartbeat_interval, limits.heartbeat_timeout,
                                       limits.handshake_timeout)
        self._ids = itertools.count(1)
        # deadlines are checked this often, so each fires at most this late
        self._sweep_every = min(1.0, limits.heartbeat_interval / 2, limits.handshake_timeout / 2)
        self._servers: list[asyncio.AbstractServer] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_queue: list[Connection] = []  # the rest of the current liveness pass

    async def listen(self, host: str, port: int, ssl: _ssl.SSLContext | None = None) -> tuple[str, int]:
        srv = await self.loop.create_server(lambda: Connection(self), host, port, ssl=ssl,
                                            backlog=4096, reuse_address=True)
        self._servers.append(srv)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self._sweep_every / _SWEEP_SLICES, self._sweep)
        sock = srv.sockets[0].getsockname()
        return sock[0], sock[1]

    def topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            topic = self.topics[name] = Topic(name, self.limits.event_buffer)
        return topic

    def _unsubscribe(self, topic: str, conn: Connection) -> None:
        self.subscribers.get(topic, {}).pop(conn, None)
        named = self._by_audience.get(topic, {}).get(conn.audience)
        if named is not None:
            named.discard(conn)
            if not named:
                del self._by_audience[topic][conn.audience]

    def publish(self, topic: str, event: str, data: Any, audience: frozenset[str] | None = None) -> int:
        """Number an event, buffer it for resume, and write it to every subscriber.

        With an ``audience`` only subscribers whose ``Connection.audience`` is in it receive the
        event (now and on replay); the others see a gap in the sequence numbers.
        """
        t = self.topic(topic)
        subs = self.subscribers.get(topic)
        if not subs:
            t.publish(event, data, audience, encode=False)
            return t.seq
        frame: bytes = t.publish(event, data, audience)  # type: ignore[assignment]  # encoded: there are subscribers
        if subs:
            # the fan-out loop touches the transports, not the (cold) Connection objects; for a broadcast
            # the sweeper reads _last_publish instead of a last_tx per connection
            now = self.loop.time()
            if audience is None:
                self._last_publish[topic] = now
            batching = self._batching
            limit = self.limits.max_send_buffer
            if audience is None:
                targets = tuple(subs.items())
            else:
                # addressed: look the few addressees up instead of scanning every subscriber
                index = self._by_audience.get(topic, {})
                targets = tuple((c, subs[c]) for name in audience for c in index.get(name, ()) if c in subs)
            for conn, tr in targets:
                if audience is not None:
                    conn.last_tx = now
                if conn is batching:
                    conn._out.append(frame)  # type: ignore[union-attr]  # stays in order with its answers
                elif conn._cork is not None:
                    conn._cork.append(frame)
                elif audience is not None:
                    # addressed events come in bursts (an offer and the agent's state changes): gather
                    # them and write once at the end of this loop iteration instead of a send() each
                    conn._cork = [frame]
                    self._corked.append(conn)
                    if len(self._corked) == 1:
                        self.loop.call_soon(self._uncork)
                elif not tr.is_closing():
                    tr.write(frame)
                    if tr.get_write_buffer_size() > limit:
                        conn._slow_consumer(tr)
        return t.seq

    def _uncork(self) -> None:
        corked, self._corked = self._corked, []
        for conn in corked:
            if conn._cork:
                conn._write(b"")  # writes what the cork holds

    def _sweep(self) -> None:
        """Check one slice of the connections; a full pass takes ``_sweep_every`` seconds.

        Slicing keeps each pause of the loop short (at 10,000 connections a single pass took about
        10 ms, delaying any event published meanwhile); a deadline still fires at most one pass late.
        """
        if not self._sweep_queue:
            self._sweep_queue = list(self.connections.values())
            self._sweep_queue.reverse()  # pop() from the end walks them in connection order
        queue = self._sweep_queue
        now = self.loop.time()
        check = self.liveness.check
        for _ in range(min(len(queue), max(_SWEEP_MIN_SLICE, len(self.connections) // _SWEEP_SLICES + 1))):
            conn = queue.pop()
            if conn.transport is None or conn.transport.is_closing():
                continue
            verdict = check(now, conn.opened, conn.last_rx, conn.last_tx, conn.session.authenticated)
            if verdict is Verdict.OK:
                continue
            if verdict is Verdict.SEND_PING:
                sent = max([self._last_publish.get(name, 0.0) for name in conn.topics], default=0.0)
                if now - sent < self.limits.heartbeat_interval:  # a broadcast went out: that was traffic
                    conn.last_tx = sent
                    continue
                conn._write(_PING)
            elif verdict is Verdict.HANDSHAKE_TIMEOUT:
                conn.close(ErrorCode.HANDSHAKE_TIMEOUT, "hello and login not completed in time", timeout=True)
            else:
                conn.close(ErrorCode.HEARTBEAT_TIMEOUT, "nothing received within the heartbeat timeout",
                           timeout=True)
        self._sweeper = self.loop.call_later(self._sweep_every / _SWEEP_SLICES, self._sweep)

    async def close(self, grace: float = 2.0) -> None:
        """Stop listening, tell every client we are going, wait briefly for the data to flush."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for srv in self._servers:
            srv.close()
        for conn in tuple(self.connections.values()):
            conn.close(ErrorCode.SERVER_SHUTTING_DOWN, "server shutting down")
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in tuple(self.connections.values()):
            if conn.transport is not None:
                conn.transport.abort()
        for srv in self._servers:
            await srv.wait_closed()


__all__ = ["Backend", "Connection", "Limits", "Operation", "SimProtError", "SimProtServer"]
