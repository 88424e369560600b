"""The RFC 3261 §17 transaction layer, with RFC 6026's fixes, sans-IO: :class:`TransactionLayer`.

How it works. Messages come in with :meth:`TransactionLayer.receive` (already parsed and
validated, with the :class:`~sipcore.net.Peer` they came from and ``now``); the TU starts client
transactions with :meth:`~TransactionLayer.request` and answers server ones with
:meth:`~TransactionLayer.respond`. What the layer wants sent piles up in
:meth:`~TransactionLayer.outgoing` (:class:`~sipcore.net.Outgoing` records for the transport);
what the TU must hear comes back as a list of small frozen events. Time only moves when the
adapter says so: :meth:`~TransactionLayer.next_deadline` is the one instant it must wake us at,
:meth:`~TransactionLayer.on_timer` fires what is due (the aioquic pattern). No clock is ever read.

Each transaction runs one of four tables (:mod:`sipcore.txn_tables`: INVITE/non-INVITE ×
client/server). An input is looked up first, then the effect is performed and the state changes;
an input the table lacks raises :class:`~sipcore.txn_tables.IllegalTransition` with nothing
changed. Only the TU can cause that (a response after the final one, ...); every input a peer can
produce has an entry in every live state.

Matching (§17.1.3, §17.2.3). Responses: by the top Via ``branch`` and the CSeq method, so a CANCEL
and its INVITE (same branch) stay apart. Requests: by branch + sent-by (host, port) + method, ACK
matching its INVITE; CANCEL goes to its own transaction and :class:`CancelRequested` names the INVITE
server transaction it cancels (same branch and sent-by, §9.2), or None (the TU answers 481). A request
whose branch lacks the ``z9hG4bK`` cookie (an RFC 2543 peer) is matched on Call-ID, CSeq number,
From tag and sent-by instead: a simplification of §17.2.3's RFC 2543 rules that leaves out the
Request-URI and the To tag (good enough for retransmissions and the ACK of a non-2xx). A request
reusing a live transaction's branch and sent-by with another method (not ACK/CANCEL) is dropped: a
broken or hostile client.

Choices:

- ACK for a 2xx (§17.2.1, RFC 6026 §8.7) is not part of any transaction: it comes up as
  :class:`IncomingRequest` with ``transaction`` None, whether or not the INVITE server transaction
  is still in Accepted. The dialog layer matches it. A retransmitted INVITE in Accepted is absorbed.
- Retransmitted 2xx to an INVITE: the client transaction in Accepted (Timer M, RFC 6026) passes
  each one up, the TU ACKs again; later ones come up as :class:`StrayResponse`.
- 100 Trying: the INVITE server transaction sends it itself when the TU has not answered within
  ``trying_delay`` (200 ms, §17.2.1); ``trying_delay=0`` sends it at once, None never.
- Responses go back to the peer the request came from (the same connection on TCP, §18.2.2; on
  UDP the source address and port, which is what RFC 3581 ``rport`` asks for and what almost every
  client expects). Adding ``received``/``rport`` to the top Via (§18.2.1) is the transport's job,
  before the message reaches :meth:`~TransactionLayer.receive`.
- Transport errors (§17.1.4, §17.2.4): :meth:`~TransactionLayer.transport_error` with a
  transaction or a peer ends the transactions concerned; the TU gets :class:`TransportFailed`
  (treat it as a 503 on the client side). With a peer it scans every live transaction (rare events,
  no per-message cost for an index).
- An INVITE client transaction in Proceeding has no timer of its own (§17.1.1.2): the TU must bound
  ringing by sending CANCEL; 64*T1 after a CANCEL went out without a final response the INVITE
  transaction times out (§9.1), so every transaction ends on its own once the TU has cancelled.
  Server transactions in Trying/Proceeding wait for the TU: it must answer each one.

Bounds: at most ``max_transactions`` live transactions. A new server transaction beyond that is not
created: the TU gets :class:`Overloaded` and answers 503 statelessly with :meth:`~TransactionLayer.send`
(an ACK never creates one). :meth:`~TransactionLayer.request` beyond it raises
:class:`TransactionLimitError` (503); a CANCEL from :meth:`~TransactionLayer.cancel` is always allowed
(it frees resources). Terminated transactions are dropped at once. The timer heap only holds timers
armed within the last 64*T1, and cancelled ones are swept out whenever it has doubled since the
last sweep (amortized O(1)), so its size stays proportional to the live timers.

Every transaction ends with exactly one :class:`TransactionTerminated` event, after the
:class:`TransactionTimeout` or :class:`TransportFailed` that ended it, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heapify, heappop, heappush
from itertools import count

from sipcore.headers import Method
from sipcore.message import Request, Response, make_response
from sipcore.net import Outgoing, Peer
from sipcore.txn_records import (
    COOKIE,
    CancelRequested,
    ClientTransaction,
    Event,
    IncomingRequest,
    IncomingResponse,
    Overloaded,
    ServerTransaction,
    StrayResponse,
    Transaction,
    TransactionLimitError,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    build_ack,
    build_cancel,
    new_branch,
    new_tag,
)
from sipcore.txn_tables import (
    INVITE_CLIENT,
    INVITE_SERVER,
    NON_INVITE_CLIENT,
    NON_INVITE_SERVER,
    Effect,
    IllegalTransition,
    Machine,
    TransactionError,
    TxnInput,
    TxnState,
)

__all__ = [
    "COOKIE", "CancelRequested", "ClientTransaction", "Event", "IllegalTransition", "IncomingRequest",
    "IncomingResponse", "Overloaded", "ServerTransaction", "StrayResponse", "Transaction", "TransactionError",
    "TransactionLayer", "TransactionLimitError", "TransactionTerminated", "TransactionTimeout",
    "TransportFailed", "TxnState", "build_ack", "build_cancel", "new_branch", "new_tag",
]

_S, _I, _E = TxnState, TxnInput, Effect
_INVITE, _ACK, _CANCEL = Method.INVITE, Method.ACK, Method.CANCEL
_TERMINATED = TxnState.TERMINATED
_CANCEL_NONE, _CANCEL_PENDING, _CANCEL_SENT = 0, 1, 2
_MIN_COMPACT = 4096  # heap size below which stale timers are left to expire
TimerHandler = Callable[..., None]
"""``handler(obj, what, token, now, events)``: called by :meth:`TransactionLayer.on_timer`."""


def _same_peer(a: Peer, b: Peer) -> bool:
    """Same transport and address; connection ids must agree when both are known."""
    return a.host == b.host and a.port == b.port and a.transport == b.transport and \
        (a.conn is None or b.conn is None or a.conn == b.conn)


# --- the layer -------------------------------------------------------------------------------------

class TransactionLayer:
    """All client and server transactions of one SIP element. See the module documentation."""

    def __init__(self, *, t1: float = 0.5, t2: float = 4.0, t4: float = 5.0, timer_d: float = 32.0,
                 trying_delay: float | None = 0.2, max_transactions: int = 100_000) -> None:
        if not (0 < t1 <= t2) or t4 <= 0 or timer_d < 0:
            raise ValueError("timers need 0 < t1 <= t2, t4 > 0, timer_d >= 0")
        if trying_delay is not None and trying_delay < 0:
            raise ValueError("trying_delay must be >= 0 or None")
        if max_transactions < 1:
            raise ValueError("max_transactions must be >= 1")
        self.t1, self.t2, self.t4, self.timer_d = t1, t2, t4, timer_d
        self.trying_delay = trying_delay
        self.max_transactions = max_transactions
        self._t64 = 64 * t1  # Timers B, F, H, J (unreliable), L, M (§17, RFC 6026)
        self._clients: dict[str, ClientTransaction] = {}          # branch -> non-CANCEL client txn
        self._client_cancels: dict[str, ClientTransaction] = {}   # branch -> CANCEL client txn
        self._servers: dict[object, ServerTransaction] = {}       # (branch, host, port) -> txn
        self._server_cancels: dict[object, ServerTransaction] = {}
        self._count = 0
        self._heap: list[tuple[float, int, TimerHandler, object, object]] = []
        self._compact_at = _MIN_COMPACT
        self._tokens = count(1)
        self._out: list[Outgoing] = []
        self._rx_peer: Peer | None = None  # the peer of the message being received (for ACK_TO_TU)
        self._fire = self._fire_txn
        self._effects: dict[Effect, Callable[[Transaction, object, float, list], None]] = {
            _E.ABSORB: self._nothing, _E.TERMINATE: self._nothing,
            _E.RESPONSE: self._e_response, _E.PROCEEDING: self._e_proceeding, _E.ACCEPT: self._e_accept,
            _E.REJECTED: self._e_rejected, _E.RESEND_ACK: self._e_resend_ack, _E.COMPLETE: self._e_complete,
            _E.RETRANSMIT: self._e_retransmit, _E.TIMEOUT: self._e_timeout,
            _E.DEFER_CANCEL: self._e_defer_cancel, _E.SEND_CANCEL: self._e_send_cancel,
            _E.RESEND_LAST: self._e_resend_last, _E.SEND_PROVISIONAL: self._e_send_provisional,
            _E.SEND_2XX: self._e_send_2xx, _E.SEND_FINAL: self._e_send_final, _E.SEND_AGAIN: self._e_send_again,
            _E.SEND_TRYING: self._e_send_trying, _E.CONFIRM: self._e_confirm, _E.ACK_TO_TU: self._e_ack_to_tu,
            _E.TRANSPORT_FAILED: self._e_transport_failed,
        }

    # --- public API: the adapter ---------------------------------------------------------------------
    def receive(self, msg: Request | Response, peer: Peer, now: float) -> list[Event]:
        """A validated message from ``peer``; returns the events for the TU (often none: a
        retransmission is absorbed here). Only :class:`~sipcore.syntax.ParseError` can escape, and
        only for a message that was not validated."""
        events: list = []
        if isinstance(msg, Response):
            via = msg.via
            method = msg.cseq.method
            branch = via.branch
            txn = (self._client_cancels if method == _CANCEL else self._clients).get(branch) if branch else None
            if txn is None or txn.method != method:
                return [StrayResponse(msg, peer)]
            status = msg.status
            self._step(txn, _I.RX_1XX if status < 200 else _I.RX_2XX if status < 300 else _I.RX_ERR,
                       msg, now, events)
            return events
        via = msg.via
        branch = via.branch
        if branch is not None and branch.startswith(COOKIE):
            key: object = (branch, via.host, via.port)
        else:  # RFC 2543 peer: a simplified §17.2.3 fallback (see the module documentation)
            key = (msg.call_id, msg.cseq.number, msg.from_tag, via.host, via.port)
        method = msg.method
        if method == _ACK:
            stxn = self._servers.get(key)
            if stxn is None or stxn.method != _INVITE:
                return [IncomingRequest(msg, peer, None)]
            self._rx_peer = peer
            self._step(stxn, _I.RX_ACK, msg, now, events)
            return events
        table = self._server_cancels if method == _CANCEL else self._servers
        stxn = table.get(key)
        if stxn is not None:
            if stxn.method == method:
                self._step(stxn, _I.RX_REQUEST, msg, now, events)
            return events  # else: a branch reused for another method: dropped
        if self._count >= self.max_transactions:
            return [Overloaded(msg, peer)]
        stxn = ServerTransaction()
        if method == _INVITE:
            stxn._setup(Machine.INVITE_SERVER, _S.PROCEEDING, INVITE_SERVER, msg, peer, branch, key)
        else:
            stxn._setup(Machine.NON_INVITE_SERVER, _S.TRYING, NON_INVITE_SERVER, msg, peer, branch, key)
        stxn.response = None
        table[key] = stxn
        self._count += 1
        if method == _CANCEL:
            invite = self._servers.get(key)
            if invite is not None and invite.method != _INVITE:
                invite = None
            stxn.cancels = invite
            events.append(CancelRequested(stxn, invite))
        else:
            events.append(IncomingRequest(msg, peer, stxn))
            if method == _INVITE and self.trying_delay is not None:
                if self.trying_delay == 0:
                    self._step(stxn, _I.TIMER_TRYING, None, now, events)
                else:
                    self._arm_retx(stxn, _I.TIMER_TRYING, self.trying_delay, now)
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (None: no timer armed)."""
        heap = self._heap
        while heap:
            _, token, _, obj, _ = heap[0]
            if token != obj._retx and token != obj._main:  # type: ignore[attr-defined]
                heappop(heap)  # a cancelled timer
                continue
            return heap[0][0]
        return None

    def on_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``; returns the events for the TU."""
        heap = self._heap
        events: list = []
        while heap and heap[0][0] <= now:
            _, token, handler, obj, what = heappop(heap)
            handler(obj, what, token, now, events)
        return events

    def outgoing(self) -> list[Outgoing]:
        """What to send, in order; the list is handed over (the layer starts a new one)."""
        out = self._out
        self._out = []
        return out

    def transport_error(self, target: Transaction | Peer, now: float) -> list[Event]:
        """The transport failed to send to ``target`` (a transaction, or a peer: every live
        transaction with that peer). Each one ends; the TU gets TransportFailed (§17.1.4, §17.2.4)."""
        if isinstance(target, Transaction):
            victims = [target]
        else:
            victims = [t for d in (self._clients, self._client_cancels, self._servers, self._server_cancels)
                       for t in d.values() if _same_peer(t.peer, target)]
        events: list = []
        for txn in victims:
            if txn.state is not _TERMINATED:
                self._step(txn, _I.TRANSPORT_ERROR, None, now, events)
        return events

    # --- public API: the TU --------------------------------------------------------------------------
    def request(self, request: Request, peer: Peer, now: float) -> ClientTransaction:
        """Start a client transaction for ``request`` (sent as it is: the TU wrote its Via, with a
        branch from :func:`new_branch`). ACK is never sent this way (use :meth:`send`)."""
        method = request.method
        if method == _ACK:
            raise TransactionError("an ACK is not a transaction (§17.1.1.3, §13.2.2.4): use send()")
        branch = request.via.branch
        if branch is None or not branch.startswith(COOKIE):
            raise TransactionError(f"the top Via branch must start with {COOKIE} (§8.1.1.7): {branch!r}")
        table = self._client_cancels if method == _CANCEL else self._clients
        if branch in table:
            raise TransactionError(f"branch {branch} is in use by a live transaction")
        if self._count >= self.max_transactions:
            raise TransactionLimitError(f"{self._count} transactions are live")
        return self._start_client(request, peer, branch, table, now)

    def respond(self, transaction: ServerTransaction, response: Response, now: float) -> None:
        """Send ``response`` on a server transaction (built with ``make_response(txn.request, ...)``).
        Raises IllegalTransition for a response the transaction cannot send any more."""
        status = response.status
        self._step(transaction, _I.TU_1XX if status < 200 else _I.TU_2XX if status < 300 else _I.TU_ERR,
                   response, now, [])

    def cancel(self, transaction: ClientTransaction, now: float) -> ClientTransaction | None:
        """Cancel an INVITE (§9.1). Returns the CANCEL's client transaction when it went out now;
        None when it waits for the first provisional response (sent then, see
        ``cancel_transaction``), was already sent, or the INVITE had its final response (nothing
        to do). Raises IllegalTransition for a non-INVITE transaction."""
        before = transaction.cancel_transaction if isinstance(transaction, ClientTransaction) else None
        self._step(transaction, _I.TU_CANCEL, None, now, [])
        after = transaction.cancel_transaction
        return after if after is not before else None

    def send(self, message: Request | Response | bytes, peer: Peer) -> None:
        """Send outside any transaction: the ACK of a 2xx, a 2xx retransmitted by the dialog layer
        (§13.3.1.4), a stateless answer (503 after :class:`Overloaded`)."""
        self._out.append(Outgoing(message if isinstance(message, bytes) else bytes(message), peer))

    def schedule(self, when: float, handler: TimerHandler, obj: object, what: object) -> int:
        """Arm a timer in the layer's heap for another sans-IO layer (the dialogs): at ``when``,
        :meth:`on_timer` calls ``handler(obj, what, token, now, events)``. Returns the token.

        The timer-owner convention (transactions follow it too): ``obj`` has attributes ``_retx``
        and ``_main``, and the caller stores the token in one of them. A timer is live while its
        token is there; to cancel it, overwrite the attribute (0). Cancelled timers never fire and
        are swept from the heap."""
        token = next(self._tokens)
        heappush(self._heap, (when, token, handler, obj, what))
        return token

    def __len__(self) -> int:
        """Live transactions."""
        return self._count

    def client_transaction(self, branch: str, method: str) -> ClientTransaction | None:
        return (self._client_cancels if method == _CANCEL else self._clients).get(branch)

    def server_transaction(self, request: Request) -> ServerTransaction | None:
        """The live server transaction ``request`` belongs to (ACK: its INVITE's), if any."""
        via = request.via
        branch = via.branch
        if branch is not None and branch.startswith(COOKIE):
            key: object = (branch, via.host, via.port)
        else:
            key = (request.call_id, request.cseq.number, request.from_tag, via.host, via.port)
        return (self._server_cancels if request.method == _CANCEL else self._servers).get(key)

    # --- the machine ---------------------------------------------------------------------------------
    def _step(self, txn: Transaction, inp: TxnInput, msg: object, now: float, events: list) -> None:
        state = txn.state
        try:
            effect, nxt = txn._table[(state, inp)]
        except KeyError:
            raise IllegalTransition(txn.machine, state, inp) from None
        txn.state = nxt
        self._effects[effect](txn, msg, now, events)
        if nxt is _TERMINATED and state is not _TERMINATED:
            txn._retx = txn._main = 0
            table = (self._client_cancels if txn.method == _CANCEL else self._clients) \
                if isinstance(txn, ClientTransaction) else \
                (self._server_cancels if txn.method == _CANCEL else self._servers)
            if table.get(txn._key) is txn:  # type: ignore[call-overload]
                del table[txn._key]  # type: ignore[arg-type]
                self._count -= 1
            events.append(TransactionTerminated(txn))

    def _start_client(self, request: Request, peer: Peer, branch: str, table: dict[str, ClientTransaction],
                      now: float) -> ClientTransaction:
        txn = ClientTransaction()
        if request.method == _INVITE:
            txn._setup(Machine.INVITE_CLIENT, _S.CALLING, INVITE_CLIENT, request, peer, branch, branch)
            retx, timeout = _I.TIMER_A, _I.TIMER_B
        else:
            txn._setup(Machine.NON_INVITE_CLIENT, _S.TRYING, NON_INVITE_CLIENT, request, peer, branch, branch)
            retx, timeout = _I.TIMER_E, _I.TIMER_F
        txn.cancel_transaction = None
        txn.dialogs = None
        txn._ack = None
        txn._cancel_state = _CANCEL_NONE
        data = bytes(request)
        txn._data = data
        table[branch] = txn
        self._count += 1
        self._out.append(Outgoing(data, peer))
        if not peer.reliable:  # §17.1.1.2, §17.1.2.2: no retransmissions on reliable transports
            self._arm_retx(txn, retx, self.t1, now)
        self._arm_main(txn, timeout, self._t64, now)
        return txn

    def _arm_retx(self, txn: Transaction, inp: TxnInput, delay: float, now: float) -> None:
        token = next(self._tokens)
        txn._retx = token
        txn._interval = delay
        heap = self._heap
        heappush(heap, (now + delay, token, self._fire, txn, inp))
        if len(heap) > self._compact_at:
            self._compact()

    def _arm_main(self, txn: Transaction, inp: TxnInput, delay: float, now: float) -> None:
        """Zero delays (D, I, J, K on reliable transports) fire at the next on_timer(now)."""
        token = next(self._tokens)
        txn._main = token
        heap = self._heap
        heappush(heap, (now + delay, token, self._fire, txn, inp))
        if len(heap) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        """Drop cancelled transaction timers (in place: on_timer may be iterating). Amortized O(1)
        per timer: it runs again only once the heap has doubled."""
        heap = self._heap
        heap[:] = [e for e in heap if e[1] == e[3]._retx or e[1] == e[3]._main]  # type: ignore[attr-defined]
        heapify(heap)
        self._compact_at = max(_MIN_COMPACT, 2 * len(heap))

    def _fire_txn(self, txn: Transaction, inp: TxnInput, token: int, now: float, events: list) -> None:
        if token == txn._retx:
            txn._retx = 0
        elif token == txn._main:
            txn._main = 0
        else:
            return  # cancelled
        self._step(txn, inp, None, now, events)

    # --- effects (see txn_tables.Effect) -------------------------------------------------------------
    def _nothing(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        pass

    def _e_response(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        events.append(IncomingResponse(msg, txn))  # type: ignore[arg-type]

    def _e_proceeding(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = txn._main = 0  # Timer A and B stop (§17.1.1.2)
        events.append(IncomingResponse(msg, txn))  # type: ignore[arg-type]
        if txn._cancel_state == _CANCEL_PENDING:  # type: ignore[attr-defined]
            self._send_cancel(txn, now)  # type: ignore[arg-type]

    def _e_accept(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0
        self._arm_main(txn, _I.TIMER_M, self._t64, now)  # RFC 6026 §8.4
        events.append(IncomingResponse(msg, txn))  # type: ignore[arg-type]

    def _e_rejected(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0
        ack = bytes(build_ack(txn.request, msg))  # type: ignore[arg-type]
        txn._ack = ack  # type: ignore[attr-defined]
        self._out.append(Outgoing(ack, txn.peer))
        self._arm_main(txn, _I.TIMER_D, 0.0 if txn.peer.reliable else self.timer_d, now)
        events.append(IncomingResponse(msg, txn))  # type: ignore[arg-type]

    def _e_resend_ack(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        ack = txn._ack  # type: ignore[attr-defined]
        if ack is not None:
            self._out.append(Outgoing(ack, txn.peer))

    def _e_complete(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0
        self._arm_main(txn, _I.TIMER_K, 0.0 if txn.peer.reliable else self.t4, now)
        events.append(IncomingResponse(msg, txn))  # type: ignore[arg-type]

    def _e_retransmit(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        data = txn._data
        if data is not None:
            self._out.append(Outgoing(data, txn.peer))
        if txn.machine is Machine.INVITE_CLIENT:  # Timer A doubles without a cap (§17.1.1.2)
            interval, inp = 2 * txn._interval, _I.TIMER_A
        elif txn.machine is Machine.NON_INVITE_CLIENT:  # Timer E: T2 once a 1xx came (§17.1.2.2)
            interval = self.t2 if txn.state is _S.PROCEEDING else min(2 * txn._interval, self.t2)
            inp = _I.TIMER_E
        else:  # Timer G (§17.2.1)
            interval, inp = min(2 * txn._interval, self.t2), _I.TIMER_G
        self._arm_retx(txn, inp, interval, now)

    def _e_timeout(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        events.append(TransactionTimeout(txn))

    def _e_transport_failed(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        events.append(TransportFailed(txn))

    def _e_defer_cancel(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        if txn._cancel_state == _CANCEL_NONE:  # type: ignore[attr-defined]
            txn._cancel_state = _CANCEL_PENDING  # type: ignore[attr-defined]

    def _e_send_cancel(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        if txn._cancel_state != _CANCEL_SENT:  # type: ignore[attr-defined]
            self._send_cancel(txn, now)  # type: ignore[arg-type]

    def _send_cancel(self, invite: ClientTransaction, now: float) -> None:
        invite._cancel_state = _CANCEL_SENT
        branch = invite.branch
        assert branch is not None
        if branch not in self._client_cancels:  # the TU may have sent one itself with request()
            cancel = self._start_client(build_cancel(invite.request), invite.peer, branch,
                                        self._client_cancels, now)
            cancel.cancels = invite
            invite.cancel_transaction = cancel
        self._arm_main(invite, _I.TIMER_CANCEL, self._t64, now)  # §9.1

    def _e_resend_last(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        data = txn._data
        if data is not None:
            self._out.append(Outgoing(data, txn.peer))

    def _sent(self, txn: Transaction, response: Response) -> None:
        data = bytes(response)
        txn._data = data
        txn.response = response  # type: ignore[attr-defined]
        self._out.append(Outgoing(data, txn.peer))

    def _e_send_provisional(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0  # no automatic 100 Trying any more
        self._sent(txn, msg)  # type: ignore[arg-type]

    def _e_send_2xx(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0
        self._sent(txn, msg)  # type: ignore[arg-type]
        self._arm_main(txn, _I.TIMER_L, self._t64, now)  # RFC 6026 §8.7

    def _e_send_final(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0
        self._sent(txn, msg)  # type: ignore[arg-type]
        reliable = txn.peer.reliable
        if txn.machine is Machine.INVITE_SERVER:  # §17.2.1: G (unreliable only) and H
            if not reliable:
                self._arm_retx(txn, _I.TIMER_G, self.t1, now)
            self._arm_main(txn, _I.TIMER_H, self._t64, now)
        else:  # §17.2.2: J
            self._arm_main(txn, _I.TIMER_J, 0.0 if reliable else self._t64, now)

    def _e_send_again(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        self._sent(txn, msg)  # type: ignore[arg-type]

    def _e_send_trying(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        self._sent(txn, make_response(txn.request, 100))

    def _e_confirm(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        txn._retx = 0  # Timer G stops, H is replaced by I
        self._arm_main(txn, _I.TIMER_I, 0.0 if txn.peer.reliable else self.t4, now)

    def _e_ack_to_tu(self, txn: Transaction, msg: object, now: float, events: list) -> None:
        events.append(IncomingRequest(msg, self._rx_peer or txn.peer, None))  # type: ignore[arg-type]
