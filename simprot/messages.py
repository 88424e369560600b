"""SimProt message types.

Every frame body is a msgpack array whose first element is the message kind:

=======  ======================================  =================
kind     array                                   sent by
=======  ======================================  =================
1        ``[1, id, op, args]``                   client (request)
2        ``[2, id, result]``                     server (answer)
3        ``[3, id, code, message, details]``     server (error; id 0 = connection-level, then close)
4        ``[4, topic, seq, name, data]``         server (event of a subscription)
5        ``[5, token]``                          either (heartbeat ping)
6        ``[6, token]``                          either (heartbeat pong, echoes the token)
=======  ======================================  =================

The classes below are validated where they are built, so a message that exists is a legal one.
They are the typed model of the protocol for tools, tests and clients that want it; the server's
and the reference client's hot paths check the same rules inline on the decoded lists instead of
building an object per message (see ``Connection.data_received``), and the tests hold both to the
same table of malformed messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode, RemoteProtocolError

MAX_ID = 2**32 - 1
MAX_NAME = 64  # op, topic and event names


class Kind(enum.IntEnum):
    REQUEST = 1
    RESULT = 2
    ERROR = 3
    EVENT = 4
    PING = 5
    PONG = 6


def _check_name(what: str, value: Any) -> None:
    if type(value) is not str or not 0 < len(value) <= MAX_NAME:
        raise RemoteProtocolError(f"{what} must be a string of 1..{MAX_NAME} characters")


def _check_id(what: str, value: Any, low: int = 1) -> None:
    if type(value) is not int or not low <= value <= MAX_ID:
        raise RemoteProtocolError(f"{what} must be an integer in {low}..{MAX_ID}")


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("request id", self.id)
        _check_name("op", self.op)
        if type(self.args) is not dict:
            raise RemoteProtocolError("request args must be a map")

    def to_wire(self) -> list:
        return [Kind.REQUEST, self.id, self.op, self.args]


@dataclass(frozen=True, slots=True)
class Result:
    id: int
    result: Any = None

    def __post_init__(self) -> None:
        _check_id("result id", self.id)

    def to_wire(self) -> list:
        return [Kind.RESULT, self.id, self.result]


@dataclass(frozen=True, slots=True)
class Error:
    id: int
    code: ErrorCode
    message: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_id("error id", self.id, low=0)
        if type(self.message) is not str or type(self.details) is not dict:
            raise RemoteProtocolError("error message must be a string and details a map")
        try:
            object.__setattr__(self, "code", ErrorCode(self.code))
        except ValueError:
            raise RemoteProtocolError(f"unknown error code {self.code!r}") from None

    def to_wire(self) -> list:
        return [Kind.ERROR, self.id, int(self.code), self.message, self.details]


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    seq: int
    name: str
    data: Any = None

    def __post_init__(self) -> None:
        _check_name("topic", self.topic)
        _check_id("event seq", self.seq)
        _check_name("event name", self.name)

    def to_wire(self) -> list:
        return [Kind.EVENT, self.topic, self.seq, self.name, self.data]


@dataclass(frozen=True, slots=True)
class Ping:
    token: int

    def __post_init__(self) -> None:
        _check_id("ping token", self.token, low=0)

    def to_wire(self) -> list:
        return [Kind.PING, self.token]


@dataclass(frozen=True, slots=True)
class Pong:
    token: int

    def __post_init__(self) -> None:
        _check_id("pong token", self.token, low=0)

    def to_wire(self) -> list:
        return [Kind.PONG, self.token]


Message = Request | Result | Error | Event | Ping | Pong

_SHAPES: dict[int, tuple[type, int]] = {
    Kind.REQUEST: (Request, 4),
    Kind.RESULT: (Result, 3),
    Kind.ERROR: (Error, 5),
    Kind.EVENT: (Event, 5),
    Kind.PING: (Ping, 2),
    Kind.PONG: (Pong, 2),
}


def from_wire(value: Any) -> Message:
    """Build a message from a decoded frame body; anything malformed is a RemoteProtocolError."""
    if type(value) is not list or not value:
        raise RemoteProtocolError("a message must be a non-empty array")
    shape = _SHAPES.get(value[0]) if type(value[0]) is int else None
    if shape is None:
        raise RemoteProtocolError(f"unknown message kind {value[0]!r}")
    cls, length = shape
    if len(value) != length:
        raise RemoteProtocolError(f"message kind {value[0]} has {length} elements, got {len(value)}")
    return cls(*value[1:])
