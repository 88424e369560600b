"""The four RFC 3261 §17 transaction state machines (with RFC 6026's "Accepted" state) as tables.

Each machine is a dict ``(TxnState, TxnInput) -> (Effect, TxnState)``: in this state, on this input,
perform this effect and move to that state. :mod:`sipcore.transaction` performs the effects (send,
arm or cancel timers, tell the TU); this module only says which. A pair missing from a table is an
illegal move: :func:`transition` raises :class:`IllegalTransition` (a :class:`~sipcore.errors.SipError`)
and the caller has changed nothing yet.

Who can cause which input, and why the tables look the way they do:

- *The peer* (``RX_*``): responses for client transactions, request retransmissions and ACKs for
  server ones. Every live state has an entry for every peer input the machine can be fed (a peer
  can never make us raise); the ones that mean nothing there are ``ABSORB``\\ ed.
- *The TU* (``TU_*``): responses to send on a server transaction, CANCEL on an INVITE client
  transaction. A response after the final one is a TU bug and raises. CANCEL is legal in every
  INVITE client state, even Terminated: the user may hang up at any moment (§9.1 says what to do
  in each state).
- *Timers* (``TIMER_*``): only those armed in a state appear in its row; the transaction layer
  cancels (lazily) every timer a transition leaves behind, so a stale timer never reaches a table.
- *The transport* (``TRANSPORT_ERROR``, §17.1.4, §17.2.4): in every live state the transaction
  ends and the TU is told.

Timers (RFC 3261 Table 4, RFC 6026 §8.11): A/E/G retransmit (unreliable transports only); B/F are
the client timeouts (the TU sees a 408-like :class:`~sipcore.transaction.TransactionTimeout`);
H waits for the ACK of a non-2xx; D/I/J/K absorb retransmissions (zero on reliable transports);
L and M keep the INVITE transactions around after a 2xx (RFC 6026 "Accepted"). Two more of ours:
``TIMER_TRYING`` sends the automatic 100 Trying (§17.2.1) and ``TIMER_CANCEL`` ends an INVITE client
transaction that got no final response 64*T1 after its CANCEL went out (§9.1).
"""

from __future__ import annotations

import enum

from sipcore.errors import SipError

__all__ = [
    "MACHINE_STATES", "PEER_INPUTS", "TABLES", "Effect", "IllegalTransition", "Machine", "TransactionError",
    "TxnInput", "TxnState", "render_table", "transition",
]


class TransactionError(SipError):
    """The TU used the transaction layer wrongly (a local error, never a peer's fault)."""

    status = 500
    reason = "Server Internal Error"


class Machine(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum.__hash__ is Python code
    INVITE_CLIENT = "invite client"          # §17.1.1, RFC 6026 §8.4
    NON_INVITE_CLIENT = "non-invite client"  # §17.1.2
    INVITE_SERVER = "invite server"          # §17.2.1, RFC 6026 §8.7
    NON_INVITE_SERVER = "non-invite server"  # §17.2.2


class TxnState(enum.Enum):
    __hash__ = object.__hash__
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"      # RFC 6026: a 2xx went by; the ACK is the TU's business
    TERMINATED = "terminated"


class TxnInput(enum.Enum):
    __hash__ = object.__hash__
    RX_1XX = "rx 1xx"              # provisional response from the peer
    RX_2XX = "rx 2xx"
    RX_ERR = "rx 3xx-6xx"
    RX_REQUEST = "rx request"      # the request again (a retransmission)
    RX_ACK = "rx ack"              # an ACK matching the INVITE server transaction
    TU_1XX = "tu 1xx"              # the TU sends a provisional response
    TU_2XX = "tu 2xx"
    TU_ERR = "tu 3xx-6xx"
    TU_CANCEL = "tu cancel"        # the TU wants the INVITE cancelled (§9.1)
    TIMER_A = "timer A"
    TIMER_B = "timer B"
    TIMER_D = "timer D"
    TIMER_E = "timer E"
    TIMER_F = "timer F"
    TIMER_G = "timer G"
    TIMER_H = "timer H"
    TIMER_I = "timer I"
    TIMER_J = "timer J"
    TIMER_K = "timer K"
    TIMER_L = "timer L"
    TIMER_M = "timer M"
    TIMER_TRYING = "timer 100"     # 200 ms without a TU answer: send 100 Trying (§17.2.1)
    TIMER_CANCEL = "timer cancel"  # 64*T1 after CANCEL without a final response (§9.1)
    TRANSPORT_ERROR = "transport error"


class Effect(enum.Enum):
    __hash__ = object.__hash__
    ABSORB = "absorb"                  # nothing to do (a retransmission, a late message)
    TERMINATE = "terminate"            # the state's wait is over; nothing to send
    # client side
    RESPONSE = "response"              # pass the response up
    PROCEEDING = "proceeding"          # pass the 1xx up, stop A/B, send a CANCEL waiting for it
    ACCEPT = "accept"                  # pass the 2xx up, stop timers, arm M
    REJECTED = "rejected"              # send the ACK (§17.1.1.3), pass the 3xx-6xx up, arm D
    RESEND_ACK = "resend ack"          # a retransmitted 3xx-6xx: ACK again
    COMPLETE = "complete"              # non-INVITE final: pass up, stop E/F, arm K
    RETRANSMIT = "retransmit"          # A/E/G fired: send again, re-arm with the next interval
    TIMEOUT = "timeout"                # B/F/H/CANCEL fired: tell the TU
    DEFER_CANCEL = "defer cancel"      # no 1xx yet: send the CANCEL when one comes (§9.1)
    SEND_CANCEL = "send cancel"        # build and send the CANCEL in its own transaction
    # server side
    RESEND_LAST = "resend last"        # a retransmitted request: send our last response again
    SEND_PROVISIONAL = "send 1xx"      # send, remember it for retransmitted requests
    SEND_2XX = "send 2xx"              # INVITE 2xx: send, stop timers, arm L (RFC 6026)
    SEND_FINAL = "send final"          # send, arm G+H (INVITE) or J (non-INVITE)
    SEND_AGAIN = "send again"          # the TU retransmits its 2xx in Accepted (RFC 6026 §8.7)
    SEND_TRYING = "send 100"           # the automatic 100 Trying
    CONFIRM = "confirm"                # the ACK came: stop G/H, arm I
    ACK_TO_TU = "ack to tu"            # an ACK for our 2xx: pass it up with no transaction
    # both
    TRANSPORT_FAILED = "transport failed"  # tell the TU, end


class IllegalTransition(TransactionError):
    """No entry for ``(state, input)`` in ``machine``'s table; nothing was changed."""

    def __init__(self, machine: Machine, state: TxnState, input: TxnInput) -> None:
        super().__init__(f"{machine.value} transaction: no transition for {input.value!r} in state {state.name}")
        self.machine = machine
        self.state = state
        self.input = input


S, I, E = TxnState, TxnInput, Effect  # noqa: E741 - short names keep the tables readable
_T = dict[tuple[TxnState, TxnInput], tuple[Effect, TxnState]]


def _fail_everywhere(states: tuple[TxnState, ...]) -> _T:
    return {(s, I.TRANSPORT_ERROR): (E.TRANSPORT_FAILED, S.TERMINATED) for s in states}


# §17.1.1.2 Figure 5 as amended by RFC 6026 §8.4 (Figure 3 there)
INVITE_CLIENT: _T = {
    (S.CALLING, I.RX_1XX): (E.PROCEEDING, S.PROCEEDING),
    (S.CALLING, I.RX_2XX): (E.ACCEPT, S.ACCEPTED),
    (S.CALLING, I.RX_ERR): (E.REJECTED, S.COMPLETED),
    (S.CALLING, I.TIMER_A): (E.RETRANSMIT, S.CALLING),
    (S.CALLING, I.TIMER_B): (E.TIMEOUT, S.TERMINATED),
    (S.CALLING, I.TU_CANCEL): (E.DEFER_CANCEL, S.CALLING),
    (S.PROCEEDING, I.RX_1XX): (E.RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.RX_2XX): (E.ACCEPT, S.ACCEPTED),
    (S.PROCEEDING, I.RX_ERR): (E.REJECTED, S.COMPLETED),
    (S.PROCEEDING, I.TU_CANCEL): (E.SEND_CANCEL, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_CANCEL): (E.TIMEOUT, S.TERMINATED),
    (S.COMPLETED, I.RX_1XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RX_2XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RX_ERR): (E.RESEND_ACK, S.COMPLETED),
    (S.COMPLETED, I.TU_CANCEL): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.TIMER_D): (E.TERMINATE, S.TERMINATED),
    (S.ACCEPTED, I.RX_1XX): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.RX_2XX): (E.RESPONSE, S.ACCEPTED),  # the TU ACKs every 2xx (RFC 6026 §8.4)
    (S.ACCEPTED, I.RX_ERR): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.TU_CANCEL): (E.ABSORB, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_M): (E.TERMINATE, S.TERMINATED),
    (S.TERMINATED, I.TU_CANCEL): (E.ABSORB, S.TERMINATED),
    **_fail_everywhere((S.CALLING, S.PROCEEDING, S.COMPLETED, S.ACCEPTED)),
}

# §17.1.2.2 Figure 6
NON_INVITE_CLIENT: _T = {
    (S.TRYING, I.RX_1XX): (E.RESPONSE, S.PROCEEDING),
    (S.TRYING, I.RX_2XX): (E.COMPLETE, S.COMPLETED),
    (S.TRYING, I.RX_ERR): (E.COMPLETE, S.COMPLETED),
    (S.TRYING, I.TIMER_E): (E.RETRANSMIT, S.TRYING),
    (S.TRYING, I.TIMER_F): (E.TIMEOUT, S.TERMINATED),
    (S.PROCEEDING, I.RX_1XX): (E.RESPONSE, S.PROCEEDING),
    (S.PROCEEDING, I.RX_2XX): (E.COMPLETE, S.COMPLETED),
    (S.PROCEEDING, I.RX_ERR): (E.COMPLETE, S.COMPLETED),
    (S.PROCEEDING, I.TIMER_E): (E.RETRANSMIT, S.PROCEEDING),
    (S.PROCEEDING, I.TIMER_F): (E.TIMEOUT, S.TERMINATED),
    (S.COMPLETED, I.RX_1XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RX_2XX): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.RX_ERR): (E.ABSORB, S.COMPLETED),
    (S.COMPLETED, I.TIMER_K): (E.TERMINATE, S.TERMINATED),
    **_fail_everywhere((S.TRYING, S.PROCEEDING, S.COMPLETED)),
}

# §17.2.1 Figure 7 as amended by RFC 6026 §8.7 (Figure 5 there)
INVITE_SERVER: _T = {
    (S.PROCEEDING, I.RX_REQUEST): (E.RESEND_LAST, S.PROCEEDING),
    (S.PROCEEDING, I.RX_ACK): (E.ABSORB, S.PROCEEDING),  # nothing final to acknowledge yet
    (S.PROCEEDING, I.TU_1XX): (E.SEND_PROVISIONAL, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (E.SEND_2XX, S.ACCEPTED),
    (S.PROCEEDING, I.TU_ERR): (E.SEND_FINAL, S.COMPLETED),
    (S.PROCEEDING, I.TIMER_TRYING): (E.SEND_TRYING, S.PROCEEDING),
    (S.COMPLETED, I.RX_REQUEST): (E.RESEND_LAST, S.COMPLETED),
    (S.COMPLETED, I.RX_ACK): (E.CONFIRM, S.CONFIRMED),
    (S.COMPLETED, I.TIMER_G): (E.RETRANSMIT, S.COMPLETED),
    (S.COMPLETED, I.TIMER_H): (E.TIMEOUT, S.TERMINATED),
    (S.CONFIRMED, I.RX_REQUEST): (E.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.RX_ACK): (E.ABSORB, S.CONFIRMED),
    (S.CONFIRMED, I.TIMER_I): (E.TERMINATE, S.TERMINATED),
    (S.ACCEPTED, I.RX_REQUEST): (E.ABSORB, S.ACCEPTED),  # RFC 6026 §8.7: absorbed, not passed up
    (S.ACCEPTED, I.RX_ACK): (E.ACK_TO_TU, S.ACCEPTED),
    (S.ACCEPTED, I.TU_2XX): (E.SEND_AGAIN, S.ACCEPTED),
    (S.ACCEPTED, I.TIMER_L): (E.TERMINATE, S.TERMINATED),
    **_fail_everywhere((S.PROCEEDING, S.COMPLETED, S.CONFIRMED, S.ACCEPTED)),
}

# §17.2.2 Figure 8
NON_INVITE_SERVER: _T = {
    (S.TRYING, I.RX_REQUEST): (E.ABSORB, S.TRYING),  # nothing to resend yet
    (S.TRYING, I.TU_1XX): (E.SEND_PROVISIONAL, S.PROCEEDING),
    (S.TRYING, I.TU_2XX): (E.SEND_FINAL, S.COMPLETED),
    (S.TRYING, I.TU_ERR): (E.SEND_FINAL, S.COMPLETED),
    (S.PROCEEDING, I.RX_REQUEST): (E.RESEND_LAST, S.PROCEEDING),
    (S.PROCEEDING, I.TU_1XX): (E.SEND_PROVISIONAL, S.PROCEEDING),
    (S.PROCEEDING, I.TU_2XX): (E.SEND_FINAL, S.COMPLETED),
    (S.PROCEEDING, I.TU_ERR): (E.SEND_FINAL, S.COMPLETED),
    (S.COMPLETED, I.RX_REQUEST): (E.RESEND_LAST, S.COMPLETED),
    (S.COMPLETED, I.TIMER_J): (E.TERMINATE, S.TERMINATED),
    **_fail_everywhere((S.TRYING, S.PROCEEDING, S.COMPLETED)),
}

TABLES: dict[Machine, _T] = {
    Machine.INVITE_CLIENT: INVITE_CLIENT,
    Machine.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Machine.INVITE_SERVER: INVITE_SERVER,
    Machine.NON_INVITE_SERVER: NON_INVITE_SERVER,
}
MACHINE_STATES: dict[Machine, tuple[TxnState, ...]] = {
    Machine.INVITE_CLIENT: (S.CALLING, S.PROCEEDING, S.COMPLETED, S.ACCEPTED, S.TERMINATED),
    Machine.NON_INVITE_CLIENT: (S.TRYING, S.PROCEEDING, S.COMPLETED, S.TERMINATED),
    Machine.INVITE_SERVER: (S.PROCEEDING, S.COMPLETED, S.CONFIRMED, S.ACCEPTED, S.TERMINATED),
    Machine.NON_INVITE_SERVER: (S.TRYING, S.PROCEEDING, S.COMPLETED, S.TERMINATED),
}
"""The states each machine can be in (the first one is where it starts)."""
PEER_INPUTS: dict[Machine, tuple[TxnInput, ...]] = {
    Machine.INVITE_CLIENT: (I.RX_1XX, I.RX_2XX, I.RX_ERR),
    Machine.NON_INVITE_CLIENT: (I.RX_1XX, I.RX_2XX, I.RX_ERR),
    Machine.INVITE_SERVER: (I.RX_REQUEST, I.RX_ACK),
    Machine.NON_INVITE_SERVER: (I.RX_REQUEST,),
}
"""What a peer can feed each machine: legal in every live state (a peer never makes us raise)."""


def transition(machine: Machine, state: TxnState, input: TxnInput) -> tuple[Effect, TxnState]:
    """The table lookup; raises :class:`IllegalTransition` for a pair the table lacks."""
    try:
        return TABLES[machine][(state, input)]
    except KeyError:
        raise IllegalTransition(machine, state, input) from None


def render_table(machine: Machine) -> str:
    """One machine's table as Markdown (inputs × states), for docs/sip.md. ``—`` is illegal."""
    table = TABLES[machine]
    states = MACHINE_STATES[machine]
    inputs = [i for i in TxnInput if any((s, i) in table for s in states)]
    lines = [f"**{machine.value}**", "", "| input \\ state | " + " | ".join(s.name for s in states) + " |",
             "|---|" + "---|" * len(states)]
    for i in inputs:
        cells = []
        for s in states:
            entry = table.get((s, i))
            if entry is None:
                cells.append("—")
            else:
                effect, nxt = entry
                cells.append(effect.name if nxt is s else f"{effect.name} → {nxt.name}")
        lines.append(f"| {i.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
