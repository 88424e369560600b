"""The server side of a SimProt session as a state table.

A connection moves through four states::

    AWAIT_HELLO --hello--> AWAIT_LOGIN --login--> LOGGING_IN --ok--> READY
                                ^                     |
                                +------failed---------+

and ends in CLOSED.  Each decoded message (or local happening such as a finished password check) is
an :class:`Input`; :data:`TABLE` maps ``(state, input)`` to the :class:`Action` the adapter must
perform and the next state.  A pair missing from the table cannot happen by construction and raises
:class:`~simprot.errors.LocalProtocolError`; tests walk every pair.  The machine does no I/O and
keeps no clock: the asyncio adapter in :mod:`simprot.server` performs the actions.
"""

from __future__ import annotations

import enum

from .errors import LocalProtocolError


class State(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum.__hash__ is Python code
    AWAIT_HELLO = "await_hello"
    AWAIT_LOGIN = "await_login"
    LOGGING_IN = "logging_in"
    READY = "ready"
    CLOSED = "closed"


class Input(enum.Enum):
    __hash__ = object.__hash__
    HELLO = "hello"                # request op "hello"
    LOGIN = "login"                # request op "login"
    LOGIN_OK = "login_ok"          # the credential check succeeded (local)
    LOGIN_FAILED = "login_failed"  # the credential check failed (local)
    LOGOUT = "logout"              # request op "logout"
    REQUEST = "request"            # any other request
    PING = "ping"
    PONG = "pong"
    ILLEGAL = "illegal"            # a message a client may never send (result, error, event)
    TIMEOUT = "timeout"            # handshake or heartbeat deadline passed (local, from the sweeper)
    CLOSE = "close"                # transport lost or server shutting down (local)


class Action(enum.Enum):
    ACCEPT_HELLO = "accept_hello"        # negotiate the version, answer hello
    CHECK_LOGIN = "check_login"          # start the (slow) credential check
    FINISH_LOGIN = "finish_login"        # answer login with the account; the full max_frame applies from now
    DENY_LOGIN = "deny_login"            # answer login with LOGIN_FAILED / RATE_LIMITED
    DISPATCH = "dispatch"                # run the operation
    LOGOUT = "logout"                    # answer, then close
    NEED_AUTH = "need_auth"              # answer NOT_AUTHENTICATED, stay
    WRONG_STATE = "wrong_state"          # answer INVALID_STATE, stay
    PONG = "pong"                        # answer a ping
    NOTE_PONG = "note_pong"              # nothing to send; liveness already noted
    PROTOCOL_ERROR = "protocol_error"    # send PROTOCOL_ERROR (id 0), close
    CLOSE = "close"                      # close; for a timeout the adapter first sends the reason (id-0 error)
    IGNORE = "ignore"                    # closed already; drop


S, I, A = State, Input, Action  # noqa: E741 - short names keep the table readable

TABLE: dict[tuple[State, Input], tuple[Action, State]] = {
    # before hello only hello is SimProt; anything else is a stranger speaking another protocol
    (S.AWAIT_HELLO, I.HELLO): (A.ACCEPT_HELLO, S.AWAIT_LOGIN),
    (S.AWAIT_HELLO, I.LOGIN): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.LOGIN_OK): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.LOGIN_FAILED): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.LOGOUT): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.REQUEST): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.PING): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.PONG): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.ILLEGAL): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_HELLO, I.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.AWAIT_HELLO, I.CLOSE): (A.CLOSE, S.CLOSED),
    # after hello: only login, heartbeats and logout
    (S.AWAIT_LOGIN, I.HELLO): (A.WRONG_STATE, S.AWAIT_LOGIN),
    (S.AWAIT_LOGIN, I.LOGIN): (A.CHECK_LOGIN, S.LOGGING_IN),
    (S.AWAIT_LOGIN, I.LOGIN_OK): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_LOGIN, I.LOGIN_FAILED): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_LOGIN, I.LOGOUT): (A.LOGOUT, S.CLOSED),
    (S.AWAIT_LOGIN, I.REQUEST): (A.NEED_AUTH, S.AWAIT_LOGIN),
    (S.AWAIT_LOGIN, I.PING): (A.PONG, S.AWAIT_LOGIN),
    (S.AWAIT_LOGIN, I.PONG): (A.NOTE_PONG, S.AWAIT_LOGIN),
    (S.AWAIT_LOGIN, I.ILLEGAL): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.AWAIT_LOGIN, I.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.AWAIT_LOGIN, I.CLOSE): (A.CLOSE, S.CLOSED),
    # a credential check is running; one login at a time
    (S.LOGGING_IN, I.HELLO): (A.WRONG_STATE, S.LOGGING_IN),
    (S.LOGGING_IN, I.LOGIN): (A.WRONG_STATE, S.LOGGING_IN),
    (S.LOGGING_IN, I.LOGIN_OK): (A.FINISH_LOGIN, S.READY),
    (S.LOGGING_IN, I.LOGIN_FAILED): (A.DENY_LOGIN, S.AWAIT_LOGIN),
    (S.LOGGING_IN, I.LOGOUT): (A.LOGOUT, S.CLOSED),
    (S.LOGGING_IN, I.REQUEST): (A.NEED_AUTH, S.LOGGING_IN),
    (S.LOGGING_IN, I.PING): (A.PONG, S.LOGGING_IN),
    (S.LOGGING_IN, I.PONG): (A.NOTE_PONG, S.LOGGING_IN),
    (S.LOGGING_IN, I.ILLEGAL): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.LOGGING_IN, I.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.LOGGING_IN, I.CLOSE): (A.CLOSE, S.CLOSED),
    # authenticated
    (S.READY, I.HELLO): (A.WRONG_STATE, S.READY),
    (S.READY, I.LOGIN): (A.WRONG_STATE, S.READY),
    (S.READY, I.LOGIN_OK): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.READY, I.LOGIN_FAILED): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.READY, I.LOGOUT): (A.LOGOUT, S.CLOSED),
    (S.READY, I.REQUEST): (A.DISPATCH, S.READY),
    (S.READY, I.PING): (A.PONG, S.READY),
    (S.READY, I.PONG): (A.NOTE_PONG, S.READY),
    (S.READY, I.ILLEGAL): (A.PROTOCOL_ERROR, S.CLOSED),
    (S.READY, I.TIMEOUT): (A.CLOSE, S.CLOSED),
    (S.READY, I.CLOSE): (A.CLOSE, S.CLOSED),
}
# once closed, everything that still trickles in is dropped
TABLE.update({(S.CLOSED, i): (A.IGNORE, S.CLOSED) for i in Input})


class ServerSession:
    """Holds one connection's state; ``handle`` returns the action to perform."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = State.AWAIT_HELLO

    def handle(self, event: Input) -> Action:
        try:
            action, self.state = TABLE[(self.state, event)]
        except KeyError:
            raise LocalProtocolError(f"no transition for {event!r} in {self.state!r}") from None
        return action

    @property
    def authenticated(self) -> bool:
        return self.state is State.READY


def render_table() -> str:
    """The table as Markdown, for docs/simprot.md."""
    states = [s for s in State if s is not State.CLOSED]
    lines = ["| input | " + " | ".join(s.name for s in states) + " |",
             "|---|" + "---|" * len(states)]
    for i in Input:
        cells = []
        for s in states:
            action, nxt = TABLE[(s, i)]
            cells.append(action.name if nxt is s else f"{action.name} → {nxt.name}")
        lines.append(f"| {i.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
