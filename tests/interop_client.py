"""An independent SimProt v1 client, written from ``docs/simprot.md`` alone.

Standard library + ``msgpack`` only; nothing is imported from the server's code. Blocking sockets:
every call that waits reads and dispatches whatever the server sends meanwhile (answers by id,
events per topic, PINGs answered with PONGs), so answers may arrive in any order.

Sections referenced below are those of ``docs/simprot.md``.
"""

from __future__ import annotations

import collections
import itertools
import random
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
RX_MAX = 16 * 1024 * 1024  # MAX_SERVER_FRAME: what we accept from the server (§2.1)
MAX_ID = 2**32 - 1  # request ids and PING tokens: 1/0 … 2³²−1 (§3.2)
DEFAULT_PREAUTH_MAX_FRAME = 65536  # PREAUTH_MAX_FRAME, used until the hello answer says otherwise

REQUEST, RESULT, ERROR, EVENT, PING, PONG = 1, 2, 3, 4, 5, 6
_LAYOUT_LEN = {RESULT: 3, ERROR: 5, EVENT: 5, PING: 2, PONG: 2}  # server → client kinds (§3.1)

# §10
ERROR_NAMES: dict[int, str] = {
    1: "PROTOCOL_ERROR",
    2: "FRAME_TOO_LARGE",
    3: "UNSUPPORTED_VERSION",
    4: "NOT_MASTER",
    5: "HANDSHAKE_TIMEOUT",
    6: "HEARTBEAT_TIMEOUT",
    7: "SLOW_CONSUMER",
    8: "SERVER_SHUTTING_DOWN",
    9: "TOO_MANY_CONNECTIONS",
    10: "SESSION_REVOKED",
    100: "NOT_AUTHENTICATED",
    101: "LOGIN_FAILED",
    102: "RATE_LIMITED",
    103: "PERMISSION_DENIED",
    104: "UNKNOWN_OPERATION",
    105: "INVALID_ARGUMENT",
    106: "NOT_FOUND",
    107: "CONFLICT",
    108: "INVALID_STATE",
    109: "DUPLICATE_ID",
    500: "INTERNAL_ERROR",
}
ERROR_CODES: dict[str, int] = {name: code for code, name in ERROR_NAMES.items()}
_RETRY_ELSEWHERE = {"TOO_MANY_CONNECTIONS", "SERVER_SHUTTING_DOWN", "HANDSHAKE_TIMEOUT", "HEARTBEAT_TIMEOUT"}


# --------------------------------------------------------------------------------------------- errors


class SimProtError(Exception):
    """An ERROR message from the server: ``code`` (int), ``name`` (§10), ``message``, ``details``."""

    def __init__(self, request_id: int, code: int, message: str, details: dict[str, Any] | None) -> None:
        self.request_id = request_id
        self.code = code
        self.name = ERROR_NAMES.get(code, "UNKNOWN_CONNECTION_ERROR" if code < 100 else "UNKNOWN_ERROR")
        self.message = message
        self.details = details if isinstance(details, dict) else {}
        super().__init__(f"{self.name} ({code}): {message} {self.details}".rstrip())

    @property
    def connection_level(self) -> bool:
        return self.request_id == 0


class ConnectionEnded(SimProtError):
    """An ERROR with id 0: the connection is over, whatever the code (§10)."""


class ConnectionClosed(Exception):
    """The transport ended (EOF, reset, our own heartbeat timeout) without an id-0 ERROR."""


class ServerViolation(ConnectionClosed):
    """The server broke the protocol (bad frame, bad message); the client closes (§3.1)."""


class RequestTimeout(TimeoutError):
    """No answer / event / PONG within the caller's deadline (the connection stays usable)."""


# --------------------------------------------------------------------------------------------- framing


def encode_body(msg: Any) -> bytes:
    """One msgpack value; strings as ``str``, byte strings as ``bin`` (§2.2)."""
    return msgpack.packb(msg, use_bin_type=True)


def encode_frame(msg: Any) -> bytes:
    body = encode_body(msg)
    return struct.pack(">I", len(body)) + body


def decode_body(body: bytes) -> list[Any]:
    """Decode exactly one msgpack value and check the message shape of §3.1."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # ExtraData, truncated data, invalid UTF-8, …
        raise ServerViolation(f"undecodable frame body: {exc!r}") from exc
    if not isinstance(value, list) or not value:
        raise ServerViolation(f"frame body is not a non-empty array: {value!r}")
    kind = value[0]
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ServerViolation(f"message kind is not an integer: {value!r}")
    expected = _LAYOUT_LEN.get(kind)
    if expected is None:
        raise ServerViolation(f"message kind {kind} may not be sent by a server: {value!r}")
    if len(value) != expected:
        raise ServerViolation(f"kind {kind} needs {expected} elements: {value!r}")
    return value


class FrameDecoder:
    """Buffers a byte stream and yields decoded messages; any split of the stream works (§2.1)."""

    def __init__(self, max_frame: int = RX_MAX) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[list[Any]]:
        self._buf += data
        out: list[list[Any]] = []
        while len(self._buf) >= 4:
            (n,) = struct.unpack_from(">I", self._buf, 0)
            if n == 0 or n > self.max_frame:
                raise ServerViolation(f"server frame length {n} outside 1..{self.max_frame}")
            if len(self._buf) < 4 + n:
                break
            body = bytes(self._buf[4 : 4 + n])
            del self._buf[: 4 + n]
            out.append(decode_body(body))
        return out


# --------------------------------------------------------------------------------------------- client state


@dataclass
class Event:
    topic: str
    seq: int
    name: str
    data: Any


@dataclass
class Subscription:
    """Client-side tracking of one topic: ``(epoch, last)`` as §8.4 requires."""

    topic: str
    epoch: str | None = None
    last: int = 0
    mode: str | None = None  # mode of the latest subscribe answer
    state: Any = None  # the latest snapshot
    events: list[Event] = field(default_factory=list)  # every event applied, in order
    duplicates: int = 0  # events ignored because seq <= last
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (last, seq) where seq > last + 1
    answers: list[dict[str, Any]] = field(default_factory=list)  # every subscribe answer applied

    def apply_answer(self, answer: dict[str, Any]) -> None:
        self.answers.append(answer)
        self.epoch = answer["epoch"]
        self.mode = answer["mode"]
        if answer["mode"] == "snapshot":
            self.state = answer.get("snapshot")
            self.last = answer["seq"]
        elif answer["mode"] == "live":
            self.last = answer["seq"]
        # "replay": keep last; the replayed events raise it

    def apply_event(self, event: Event) -> bool:
        if event.seq <= self.last:
            self.duplicates += 1
            return False
        if event.seq > self.last + 1:
            self.gaps.append((self.last, event.seq))
        self.last = event.seq
        self.events.append(event)
        return True


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6]:port"``; the default port is 7400."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 7400
    if address.count(":") == 1:
        host, port = address.rsplit(":", 1)
        return host, int(port)
    return address, 7400


class SimProtClient:
    """A blocking SimProt v1 client for one server address.

    ``auto_ping``: send our own PING after sending nothing for ``heartbeat_interval`` (logged in only).
    ``auto_pong``: answer every PING with a PONG carrying its token.
    ``check_timeout``: close when nothing was received for ``heartbeat_timeout`` (logged in only).
    """

    def __init__(
        self,
        address: str,
        *,
        client_name: str = "interop-client/1.0",
        timeout: float = 5.0,
        auto_ping: bool = True,
        auto_pong: bool = True,
        check_timeout: bool = True,
    ) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.client_name = client_name
        self.timeout = timeout
        self.auto_ping = auto_ping
        self.auto_pong = auto_pong
        self.check_timeout = check_timeout
        # survive reconnects
        self.token: str | None = None
        self.user: str | None = None
        self.password: str | None = None
        self.subs: dict[str, Subscription] = {}
        self.dropped_subscriptions: dict[str, SimProtError] = {}
        self.connections = 0
        self._next_id = 1
        self._ping_tokens = itertools.count(1)
        self._reset_connection_state()

    # ----------------------------------------------------------------------------------- connection

    def _reset_connection_state(self) -> None:
        self.sock: socket.socket | None = None
        self.decoder = FrameDecoder()
        self.hello_answer: dict[str, Any] | None = None
        self.login_answer: dict[str, Any] | None = None
        self.logged_in = False
        self.login_in_flight = False
        self.pending: dict[int, tuple[str, Any]] = {}
        self.answers: dict[int, collections.deque[list[Any]]] = {}
        self.event_queue: collections.deque[Event] = collections.deque()
        self.pings_received: list[int] = []
        self.pongs_received: list[int] = []
        self.pings_sent: list[int] = []
        self.received: list[list[Any]] = []  # every message of this connection, in order
        self.fatal: ConnectionEnded | None = None
        self.eof = False
        self.last_tx = self.last_rx = time.monotonic()

    @property
    def epoch(self) -> str | None:
        return self.hello_answer["epoch"] if self.hello_answer else None

    @property
    def send_limit(self) -> int:
        """The frame limit in force for what we send (§2.1)."""
        if self.hello_answer is None:
            return DEFAULT_PREAUTH_MAX_FRAME
        return self.hello_answer["max_frame" if self.logged_in else "preauth_max_frame"]

    def open(self) -> None:
        """TCP connect only (no hello). Requests still unanswered on the old connection are lost (§13.9)."""
        self.close()
        self.lost_requests = dict(getattr(self, "pending", {}))
        self._reset_connection_state()
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.timeout)
        self.sock = sock
        self.connections += 1
        self.last_tx = self.last_rx = time.monotonic()

    def connect(self, versions: list[int] | None = None) -> dict[str, Any]:
        """TCP connect + hello; returns the hello answer."""
        self.open()
        return self.hello(versions)

    def hello(self, versions: list[int] | None = None, client: str | None = None) -> dict[str, Any]:
        args = {"versions": list(versions or [PROTOCOL_VERSION]), "client": client or self.client_name}
        answer = self.request("hello", args)
        if answer.get("version") != PROTOCOL_VERSION:
            self.close()
            raise ServerViolation(f"server negotiated an unknown version: {answer!r}")
        self.hello_answer = answer
        return answer

    def login(self, user: str | None = None, password: str | None = None, token: str | None = None) -> dict[str, Any]:
        """Password login (``user``/``password``) or token login (``token``); stores the new token."""
        if token is not None:
            args: dict[str, Any] = {"token": token}
        else:
            args = {"user": user, "password": password}
            self.user, self.password = user, password
        answer = self.request("login", args)
        return answer

    def login_resume(self) -> dict[str, Any]:
        """Log in with the latest token; on LOGIN_FAILED fall back to the password if known (§13.5)."""
        if self.token is not None:
            try:
                return self.login(token=self.token)
            except SimProtError as exc:
                if exc.code != ERROR_CODES["LOGIN_FAILED"] or self.password is None:
                    raise
        if self.user is None or self.password is None:
            raise RuntimeError("no token and no password to log in with")
        return self.login(self.user, self.password)

    def reconnect(
        self, versions: list[int] | None = None, attempts: int = 1
    ) -> dict[str, SimProtError | dict[str, Any]]:
        """New connection + hello + login (token first) + resubscribe every topic with ``resume``.

        With ``attempts`` > 1, "not here, not now" failures (§13.3) are retried after a jittered,
        doubling delay (0.2 s → 10 s, × 0.5 … 1.0, §13.4). Returns, per topic, the subscribe answer or
        the error that refused it (the subscription is then dropped, §13.7).
        """
        delay = 0.2
        for attempt in range(attempts):
            try:
                self.connect(versions)
                self.login_resume()
                break
            except (ConnectionEnded, ConnectionClosed, OSError) as exc:
                retry = not isinstance(exc, ConnectionEnded) or exc.name in _RETRY_ELSEWHERE
                if not retry or attempt == attempts - 1:
                    raise
                self.close()
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 10.0)
        results: dict[str, SimProtError | dict[str, Any]] = {}
        for topic in list(self.subs):
            try:
                results[topic] = self.subscribe(topic, resume=True)
            except ConnectionEnded:
                raise
            except SimProtError as exc:
                self.subs.pop(topic, None)
                self.dropped_subscriptions[topic] = exc
                results[topic] = exc
        return results

    def logout(self, timeout: float | None = None) -> dict[str, Any]:
        answer = self.request("logout", {}, timeout=timeout)
        self.wait_closed(timeout)
        self.close()
        return answer

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
        self.logged_in = False

    def __enter__(self) -> SimProtClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- sending

    def _send_bytes(self, data: bytes) -> None:
        if self.sock is None:
            raise ConnectionClosed("not connected")
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.eof = True
            raise ConnectionClosed(f"send failed: {exc!r}") from exc
        self.last_tx = time.monotonic()

    def send_message(self, msg: list[Any], *, check_limit: bool = True) -> None:
        body = encode_body(msg)
        if check_limit and len(body) > self.send_limit:
            raise ValueError(f"frame of {len(body)} bytes exceeds the limit in force ({self.send_limit})")
        self._send_bytes(struct.pack(">I", len(body)) + body)

    def send_raw(self, data: bytes, chunk: int | None = None, pause: float = 0.0) -> None:
        """Write raw bytes (optionally in chunks, to split frames across TCP segments)."""
        if chunk is None:
            self._send_bytes(data)
            return
        for i in range(0, len(data), chunk):
            self._send_bytes(data[i : i + chunk])
            if pause:
                time.sleep(pause)

    def new_id(self) -> int:
        rid = self._next_id
        self._next_id = 1 if rid >= MAX_ID else rid + 1
        return rid

    def send_request(self, op: str, args: dict[str, Any] | None = None, *, request_id: int | None = None) -> int:
        """Send a request without waiting; returns its id. Several may be outstanding (§3.3)."""
        if self.login_in_flight and op != "logout":
            raise RuntimeError("must wait for the login answer before sending other requests (§3.3)")
        rid = self.new_id() if request_id is None else request_id
        if rid in self.pending:
            raise RuntimeError(f"request id {rid} is still unanswered")
        args = {} if args is None else args
        self.pending[rid] = (op, args)
        if op == "login":
            self.login_in_flight = True
        if op == "subscribe" and isinstance(args.get("topic"), str):
            self.subs.setdefault(args["topic"], Subscription(args["topic"]))
        self.send_message([REQUEST, rid, op, args])
        return rid

    def send_many(self, requests: list[tuple[str, dict[str, Any]]]) -> list[int]:
        """Pipeline several requests in one write."""
        ids, data = [], b""
        for op, args in requests:
            rid = self.new_id()
            self.pending[rid] = (op, args)
            ids.append(rid)
            data += encode_frame([REQUEST, rid, op, args])
        self._send_bytes(data)
        return ids

    def ping(self, token: int | None = None, timeout: float | None = None) -> float:
        """Send ``[5, token]`` and wait for the matching PONG; returns the round-trip time."""
        token = next(self._ping_tokens) % (MAX_ID + 1) if token is None else token
        start = time.monotonic()
        seen = len(self.pongs_received)
        self.pings_sent.append(token)
        self.send_message([PING, token])
        deadline = start + (self.timeout if timeout is None else timeout)
        while token not in self.pongs_received[seen:]:
            self._pump(deadline)
        return time.monotonic() - start

    # ----------------------------------------------------------------------------------- receiving

    def _pump(self, deadline: float) -> None:
        """Read once (or until the deadline), dispatch every complete frame, run heartbeats."""
        if self.fatal is not None:
            raise self.fatal
        if self.eof or self.sock is None:
            raise ConnectionClosed("connection closed")
        now = time.monotonic()
        if now >= deadline:
            raise RequestTimeout("deadline passed")
        wait = deadline - now
        hb = self.hello_answer if self.logged_in else None
        if hb is not None:
            if self.auto_ping:
                wait = min(wait, max(0.0, self.last_tx + hb["heartbeat_interval"] - now))
            if self.check_timeout:
                wait = min(wait, max(0.0, self.last_rx + hb["heartbeat_timeout"] - now))
        readable, _, _ = select.select([self.sock], [], [], wait)
        if readable:
            try:
                data = self.sock.recv(262144)
            except OSError:
                data = b""  # reset counts as closed
            if not data:
                self.eof = True
                raise ConnectionClosed("server closed the connection")
            self.last_rx = time.monotonic()
            try:
                messages = self.decoder.feed(data)
            except ServerViolation:
                self.close()
                raise
            for msg in messages:
                self._dispatch(msg)
                if self.fatal is not None:
                    raise self.fatal  # nothing may follow an id-0 ERROR; never reuse the connection
        self._heartbeat()

    def _heartbeat(self) -> None:
        if not self.logged_in or self.hello_answer is None or self.sock is None:
            return
        now = time.monotonic()
        if self.check_timeout and now - self.last_rx >= self.hello_answer["heartbeat_timeout"]:
            self.close()
            self.eof = True
            raise ConnectionClosed("heartbeat timeout: nothing received from the server")
        if self.auto_ping and now - self.last_tx >= self.hello_answer["heartbeat_interval"]:
            token = next(self._ping_tokens) % (MAX_ID + 1)
            self.pings_sent.append(token)
            self.send_message([PING, token])

    def _dispatch(self, msg: list[Any]) -> None:
        self.received.append(msg)
        kind = msg[0]
        if kind in (RESULT, ERROR):
            rid = msg[1]
            if kind == ERROR and rid == 0:
                self.fatal = ConnectionEnded(0, msg[2], msg[3], msg[4])
                return
            op, args = self.pending.pop(rid, (None, None))
            if op == "login":
                self.login_in_flight = False
                if kind == RESULT:
                    self.logged_in = True  # from now on max_frame, heartbeats (§5.2, §9)
                    self.login_answer = msg[2]
                    self.token = msg[2]["token"]
            elif op == "subscribe" and kind == RESULT:
                # applied before the events that follow it in the stream (§8.4)
                answer = msg[2]
                self.subs.setdefault(answer["topic"], Subscription(answer["topic"])).apply_answer(answer)
            self.answers.setdefault(rid, collections.deque()).append(msg)
        elif kind == EVENT:
            event = Event(msg[1], msg[2], msg[3], msg[4])
            sub = self.subs.get(event.topic)
            if sub is not None and sub.apply_event(event):
                self.event_queue.append(event)
        elif kind == PING:
            self.pings_received.append(msg[1])
            if self.auto_pong:
                self.send_message([PONG, msg[1]], check_limit=False)
        elif kind == PONG:
            self.pongs_received.append(msg[1])

    def wait_answer(self, rid: int, timeout: float | None = None) -> Any:
        """Wait for the answer to request ``rid``: return the result or raise its SimProtError."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            queue = self.answers.get(rid)
            if queue:
                msg = queue.popleft()
                if not queue:
                    del self.answers[rid]
                if msg[0] == RESULT:
                    return msg[2]
                raise SimProtError(rid, msg[2], msg[3], msg[4])
            self._pump(deadline)

    def request(self, op: str, args: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self.wait_answer(self.send_request(op, args), timeout)

    def subscribe(self, topic: str, resume: bool | dict[str, Any] = False, timeout: float | None = None) -> Any:
        """Subscribe; ``resume=True`` sends the tracked ``(epoch, last)``, a dict sends it as is."""
        args: dict[str, Any] = {"topic": topic}
        sub = self.subs.get(topic)
        if resume is True:
            if sub is not None and sub.epoch is not None:
                args["resume"] = {"epoch": sub.epoch, "seq": sub.last}
        elif isinstance(resume, dict):
            args["resume"] = resume
        try:
            return self.request("subscribe", args, timeout)
        except SimProtError as exc:
            if not exc.connection_level and topic in self.subs and self.subs[topic].epoch is None:
                del self.subs[topic]
            raise

    def next_event(self, topic: str | None = None, timeout: float | None = None) -> Event:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, event in enumerate(self.event_queue):
                if topic is None or event.topic == topic:
                    del self.event_queue[i]
                    return event
            self._pump(deadline)

    def poll(self, duration: float) -> None:
        """Keep the connection serviced (answers, events, heartbeats) for ``duration`` seconds."""
        deadline = time.monotonic() + duration
        try:
            while True:
                self._pump(deadline)
        except RequestTimeout:
            pass

    def wait_closed(self, timeout: float | None = None) -> ConnectionEnded | None:
        """Read until the server closes (EOF); returns the id-0 ERROR seen before it, if any."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        seen = self.fatal
        while True:
            self.fatal = None  # keep reading: an id-0 ERROR must be followed by EOF (§10)
            try:
                self._pump(deadline)
            except ConnectionEnded as exc:
                seen = exc
            except ConnectionClosed:
                self.fatal = seen
                return seen
            except RequestTimeout:
                self.fatal = seen
                raise

    def wait_fatal(self, timeout: float | None = None) -> ConnectionEnded:
        """Wait for an id-0 ERROR; raises ConnectionClosed if the connection ends without one."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                self._pump(deadline)
            except ConnectionEnded as exc:
                return exc
