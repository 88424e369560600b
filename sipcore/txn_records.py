"""The records of the transaction layer (:mod:`sipcore.transaction`): transactions, the events
the TU receives, the ACK and CANCEL the layer builds, and the branch/tag helpers.

Transactions are plain ``__slots__`` objects owned by the layer: the TU reads them and may hang its
own object on ``context``. Events are small frozen dataclasses built only by the layer.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sipcore.headers import Method
from sipcore.message import Request, Response
from sipcore.net import Peer
from sipcore.txn_tables import Effect, Machine, TransactionError, TxnInput, TxnState

__all__ = [
    "COOKIE", "CancelRequested", "ClientTransaction", "Event", "IncomingRequest", "IncomingResponse",
    "Overloaded", "ServerTransaction", "StrayResponse", "Transaction", "TransactionLimitError",
    "TransactionTerminated", "TransactionTimeout", "TransportFailed", "build_ack", "build_cancel",
    "new_branch", "new_tag",
]

COOKIE = "z9hG4bK"
"""The magic cookie that starts every RFC 3261 branch (§8.1.1.7)."""

_INVITE, _ACK, _CANCEL = Method.INVITE, Method.ACK, Method.CANCEL
_TERMINATED = TxnState.TERMINATED


class _RandomHex:
    """Hex digits from the OS's CSPRNG, read 4 KiB at a time: a branch or tag per message must not
    cost a system call each (it was ~5 % of a B2BUA's time at 500 calls/s)."""

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0

    def take(self, digits: int) -> str:
        pos = self._pos
        if pos + digits > len(self._buf):
            self._buf, pos = secrets.token_hex(2048), 0
        self._pos = pos + digits
        return self._buf[pos:pos + digits]


_hex = _RandomHex().take


def new_branch() -> str:
    """A fresh branch parameter: the magic cookie and 64 random bits (§8.1.1.7)."""
    return COOKIE + _hex(16)


def new_tag() -> str:
    """A fresh From/To tag: 48 random bits (§19.3 wants at least 32)."""
    return _hex(12)


class TransactionLimitError(TransactionError):
    """``max_transactions`` are live; the TU should answer or fail with 503."""

    status = 503
    reason = "Service Unavailable"


# --- transactions ----------------------------------------------------------------------------------

class Transaction:
    """What both sides share. The TU may hang its own object on ``context``; everything else is
    the layer's (read ``state``, ``request``, ``peer``; never set them)."""

    __slots__ = ("machine", "state", "method", "request", "peer", "branch", "context", "cancels",
                 "_key", "_table", "_retx", "_main", "_interval", "_data")

    machine: Machine
    state: TxnState
    method: str
    request: Request
    peer: Peer
    branch: str | None
    context: object
    cancels: Transaction | None
    _key: object
    _table: dict[tuple[TxnState, TxnInput], tuple[Effect, TxnState]]
    _retx: int      # token of the armed retransmission timer (A, E, G, 100 Trying); 0 = none
    _main: int      # token of the armed B, D, F, H, I, J, K, L, M or CANCEL timer; 0 = none
    _interval: float
    _data: bytes | None  # client: the request; server: the last response sent

    def _setup(self, machine: Machine, state: TxnState, table: dict[tuple[TxnState, TxnInput], tuple[Effect, TxnState]],
               request: Request, peer: Peer, branch: str | None, key: object) -> None:
        self.machine = machine
        self.state = state
        self.method = request.method
        self.request = request
        self.peer = peer
        self.branch = branch
        self.context = None
        self.cancels = None
        self._key = key
        self._table = table
        self._retx = 0
        self._main = 0
        self._interval = 0.0
        self._data = None

    @property
    def is_invite(self) -> bool:
        return self.method == _INVITE

    @property
    def terminated(self) -> bool:
        return self.state is _TERMINATED

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.branch} {self.state.name} {self.peer}>"


class ClientTransaction(Transaction):
    """A request we sent. ``cancel_transaction`` is the CANCEL sent for it (§9.1), once sent;
    on a CANCEL transaction, ``cancels`` is the INVITE transaction it cancels. ``dialogs`` belongs
    to the dialog layer: the dialogs a dialog-creating INVITE made, by remote tag (so a 2xx
    retransmitted after its dialog ended is recognised as one)."""

    __slots__ = ("cancel_transaction", "dialogs", "_ack", "_cancel_state")

    cancel_transaction: ClientTransaction | None
    dialogs: dict[str, object] | None
    _ack: bytes | None
    _cancel_state: int


class ServerTransaction(Transaction):
    """A request we received. ``response`` is the last one the TU sent on it; on a CANCEL
    transaction, ``cancels`` is the INVITE server transaction it cancels (None if unknown)."""

    __slots__ = ("response",)

    response: Response | None


# --- events ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A new request for the TU. ``transaction`` is where to :meth:`~TransactionLayer.respond`;
    None for an ACK (no transaction: the ACK of a 2xx, for the dialog layer; never answered)."""

    request: Request
    peer: Peer
    transaction: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """A CANCEL (§9.2). Answer ``transaction`` (200, or 481 when ``invite`` is None); if ``invite``
    has no final response yet, answer it 487."""

    transaction: ServerTransaction
    invite: ServerTransaction | None


@dataclass(frozen=True, slots=True)
class IncomingResponse:
    """A response for one of our client transactions (each provisional and final once; in
    Accepted, every retransmitted 2xx to an INVITE, so the TU ACKs it again)."""

    response: Response
    transaction: ClientTransaction


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response matching no client transaction (§17.1.3). A 2xx to an INVITE whose
    transaction has ended may still need an ACK from the dialog layer (§13.2.2.4)."""

    response: Response
    peer: Peer


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F (treat it as a 408, §8.1.3.1), Timer H (no ACK came for our final), or no
    final response 64*T1 after a CANCEL (§9.1)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport could not deliver for this transaction (§17.1.4: treat it as a 503)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction is over and forgotten by the layer (exactly one per transaction)."""

    transaction: Transaction


@dataclass(frozen=True, slots=True)
class Overloaded:
    """``max_transactions`` are live: no transaction was made for this request. Answer it 503
    statelessly (``layer.send(make_response(request, 503, ...), peer)``)."""

    request: Request
    peer: Peer


Event = (IncomingRequest | CancelRequested | IncomingResponse | StrayResponse | TransactionTimeout
         | TransportFailed | TransactionTerminated | Overloaded)


# --- building ACK and CANCEL -----------------------------------------------------------------------

def _copy_routes(request: Request) -> list[tuple[str, str, str]]:
    return [("route", "Route", v) for v in request._lines("route")]


def build_ack(request: Request, response: Response) -> Request:
    """The ACK for a 3xx-6xx final response (§17.1.1.3): Request-URI, Call-ID, From, CSeq number
    and Route of the INVITE, its top Via only, the To of the response."""
    fields = [("via", "Via", str(request.via)), ("max-forwards", "Max-Forwards", "70"),
              *_copy_routes(request),
              ("from", "From", request._lines("from")[0]), ("to", "To", response._lines("to")[0]),
              ("call-id", "Call-ID", request.call_id), ("cseq", "CSeq", f"{request.cseq.number} ACK")]
    return Request._from_wire(_ACK, request.uri_text, "SIP/2.0", fields, b"")


def build_cancel(request: Request) -> Request:
    """The CANCEL for ``request`` (§9.1): same Request-URI, Call-ID, To, From, CSeq number and
    Route, only the top Via (same branch), CSeq method CANCEL."""
    fields = [("via", "Via", str(request.via)), ("max-forwards", "Max-Forwards", "70"),
              *_copy_routes(request),
              ("from", "From", request._lines("from")[0]), ("to", "To", request._lines("to")[0]),
              ("call-id", "Call-ID", request.call_id), ("cseq", "CSeq", f"{request.cseq.number} CANCEL")]
    return Request._from_wire(_CANCEL, request.uri_text, "SIP/2.0", fields, b"")
