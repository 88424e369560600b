"""SimProt error codes and the package's error hierarchy.

Every error that can reach the wire carries its :class:`ErrorCode`.  Codes below 100 are
connection-level: the server sends them in an ERROR frame with correlation id 0 and closes the
connection (a client never sends ERROR frames; it just closes).  Codes from 100 on answer one
request; the connection stays open.
"""

from __future__ import annotations

import enum


class ErrorCode(enum.IntEnum):
    # connection-level: sent with id 0, then the connection is closed
    PROTOCOL_ERROR = 1          # malformed frame, bad msgpack, wrong message shape, illegal message
    FRAME_TOO_LARGE = 2         # length prefix above the limit (or zero)
    UNSUPPORTED_VERSION = 3     # no common protocol version in hello
    NOT_MASTER = 4              # this node does not serve; details.servers says where to go
    HANDSHAKE_TIMEOUT = 5       # hello + login not completed in time
    HEARTBEAT_TIMEOUT = 6       # nothing received for heartbeat_timeout seconds
    SLOW_CONSUMER = 7           # the peer stopped reading; its send queue overflowed
    SERVER_SHUTTING_DOWN = 8    # graceful shutdown; reconnect (to another node)
    TOO_MANY_CONNECTIONS = 9    # max_connections reached
    SESSION_REVOKED = 10        # the account was disabled while logged in
    # request-level: answer one request, the connection stays open
    NOT_AUTHENTICATED = 100     # the operation needs a logged-in session
    LOGIN_FAILED = 101          # unknown user, wrong password or disabled account (indistinguishable)
    RATE_LIMITED = 102          # too many failed logins; details.retry_after in seconds
    PERMISSION_DENIED = 103     # the account lacks the permission in the needed scope
    UNKNOWN_OPERATION = 104     # op name not known to this server
    INVALID_ARGUMENT = 105      # details.field names the offending field
    NOT_FOUND = 106
    CONFLICT = 107              # e.g. duplicate user name
    INVALID_STATE = 108         # e.g. a second hello, or login while logged in
    DUPLICATE_ID = 109          # a request id still in flight was reused
    INTERNAL_ERROR = 500        # a bug or a backend failure; logged with the connection id

    @property
    def closes(self) -> bool:
        return self < 100


class SimProtError(Exception):
    """Base of all SimProt errors; ``code`` is what goes on the wire."""

    code: ErrorCode = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: dict | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.details = details or {}


class LocalProtocolError(SimProtError):
    """We were asked to do something the protocol forbids (a bug on our side)."""

    code = ErrorCode.PROTOCOL_ERROR


class RemoteProtocolError(SimProtError):
    """The peer sent something the protocol forbids; the connection must be closed."""

    code = ErrorCode.PROTOCOL_ERROR


class FrameTooLarge(RemoteProtocolError):
    code = ErrorCode.FRAME_TOO_LARGE


class RequestError(SimProtError):
    """An error answer to one request (raised by handlers, re-raised by the client)."""

    def __init__(self, code: ErrorCode, message: str, details: dict | None = None) -> None:
        super().__init__(message, code=code, details=details)


class ConnectionClosed(SimProtError):
    """The connection ended; ``code`` is the reason the peer gave, if any."""

    code = ErrorCode.PROTOCOL_ERROR
