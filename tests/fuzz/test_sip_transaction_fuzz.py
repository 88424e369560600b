"""Property tests for the transaction and dialog layers.

1. UAC↔UAS calls through a lossy fake network (drop, duplicate, reorder; seeded): whatever the loss
   pattern, every call is answered, cancelled (487) or times out within the bounds the timers set,
   no transaction leaks (both layers empty, no timer left once everything has run), each transaction
   ends exactly once, and only the documented dialog errors (answered by the TU) ever escape.
2. Random sequences of TU, peer, timer and transport inputs on one layer: only TransactionError
   (IllegalTransition, TransactionLimitError) escapes, and once the TU has answered and cancelled what
   it must, every transaction ends.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.transaction import (
    CancelRequested,
    ClientTransaction,
    IncomingRequest,
    ServerTransaction,
    Transaction,
    TransactionError,
    TransactionLayer,
    TransactionTerminated,
    TxnState,
    build_ack,
    new_branch,
)
from tests.unit.test_sip_back_to_back import Sim

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(seed=st.integers(0, 2**32 - 1), drop=st.floats(0.0, 0.8), dup=st.floats(0.0, 0.5),
       jitter=st.sampled_from((0.0, 0.05, 0.5, 3.0)), transport=st.sampled_from(("udp", "udp", "tcp")),
       cancel_at=st.sampled_from((None, 0.001, 0.3, 1.2, 5.0)), ring=st.sampled_from((0.05, 0.8, 4.0)),
       hold=st.sampled_from((0.0, 1.0, 40.0)))
def test_calls_over_a_lossy_network(seed: int, drop: float, dup: float, jitter: float, transport: str,
                                    cancel_at: float | None, ring: float, hold: float) -> None:
    sim = Sim(seed=seed, drop=drop, dup=dup, jitter=jitter, transport=transport, cancel_at=cancel_at,
              ring=ring, hold=hold)
    sim.run()
    sim.check()
    if drop == 0.0 and transport == "udp" or transport == "tcp":
        # nothing lost: the call is answered (or cancelled while ringing) and hung up cleanly
        assert sim.outcome.get("invite") in ("answered", 487)
        assert sim.outcome.get("bye", 200) == 200 and "ack_timeout" not in sim.outcome
        assert "bye_at_uac" not in sim.outcome


# --- random inputs on one layer ---------------------------------------------------------------------

CLIENT = Peer("udp", "192.0.2.1", 5060)
SERVER = Peer("udp", "192.0.2.2", 5060)
TCP_SERVER = Peer("tcp", "192.0.2.3", 5060)
STATUSES = (100, 180, 200, 404, 487, 503)


def _request(method: str, n: int, transport: str = "UDP", branch: str | None = None) -> Request:
    return Request(method, "sip:bob@192.0.2.2", [
        ("Via", f"SIP/2.0/{transport} 192.0.2.1:5060;branch={branch or new_branch()}"), ("Max-Forwards", 70),
        ("From", f"<sip:alice@a.example.com>;tag=f{n}"), ("To", "<sip:bob@b.example.com>"),
        ("Call-ID", f"call{n}@a"), ("CSeq", f"{n + 1} {method}")])


def _wire(msg: Request | Response) -> Request | Response:
    out = parse_message(bytes(msg))
    out.validate()
    return out


op = st.tuples(st.sampled_from(("request", "rx_new", "rx_again", "rx_ack", "rx_cancel", "rx_response",
                                "respond", "cancel", "timer", "transport_error")),
               st.integers(0, 1000), st.sampled_from(STATUSES), st.floats(0.0, 8.0))


@settings(FAST, max_examples=500)
@given(ops=st.lists(op, min_size=5, max_size=80), limit=st.sampled_from((3, 1000)))
def test_random_inputs_only_documented_errors_and_no_leaks(ops: list[tuple[str, int, int, float]],
                                                           limit: int) -> None:
    layer = TransactionLayer(max_transactions=limit)
    clients: list[ClientTransaction] = []
    servers: list[ServerTransaction] = []   # server transactions the TU was given
    received: list[Request] = []            # requests from the peer (for retransmissions and ACKs)
    ended: dict[int, int] = {}
    seen: list[Transaction] = []
    now = 0.0

    def absorb(events: list) -> None:
        for event in events:
            if isinstance(event, TransactionTerminated):
                ended[id(event.transaction)] = ended.get(id(event.transaction), 0) + 1
            elif isinstance(event, IncomingRequest) and event.transaction is not None:
                servers.append(event.transaction)
                seen.append(event.transaction)
            elif isinstance(event, CancelRequested):
                servers.append(event.transaction)
                seen.append(event.transaction)
        for txn in clients:
            if txn.cancel_transaction is not None and all(t is not txn.cancel_transaction for t in seen):
                seen.append(txn.cancel_transaction)

    for name, n, status, dt in ops:
        now += dt
        try:
            if name == "request":
                peer = TCP_SERVER if n % 3 == 0 else SERVER
                txn = layer.request(_request("INVITE" if n % 2 else "OPTIONS", n, peer.transport.upper()), peer, now)
                clients.append(txn)
                seen.append(txn)
            elif name == "rx_new":
                req = _request("INVITE" if n % 2 else "BYE", n)
                received.append(req)
                absorb(layer.receive(_wire(req), CLIENT, now))
            elif name in ("rx_again", "rx_ack", "rx_cancel") and received:
                req = received[n % len(received)]
                if name == "rx_ack":
                    req = build_ack(req, make_response(req, status, to_tag="t"))
                elif name == "rx_cancel":
                    req = _request("CANCEL", n, branch=req.via.branch)
                absorb(layer.receive(_wire(req), CLIENT, now))
            elif name == "rx_response" and clients:
                txn = clients[n % len(clients)]
                absorb(layer.receive(_wire(make_response(txn.request, status, to_tag="t")), txn.peer, now))
            elif name == "respond" and servers:
                stxn = servers[n % len(servers)]
                layer.respond(stxn, make_response(stxn.request, status, to_tag="t"), now)
            elif name == "cancel" and clients:
                layer.cancel(clients[n % len(clients)], now)
            elif name == "timer":
                absorb(layer.on_timer(now))
            elif name == "transport_error":
                targets: list = [CLIENT, SERVER, TCP_SERVER, *clients]
                absorb(layer.transport_error(targets[n % len(targets)], now))
        except TransactionError:
            pass  # documented: IllegalTransition (a TU mistake), TransactionLimitError (503)
        absorb([])
        layer.outgoing()

    # the TU's duties: answer every server transaction, cancel every ringing INVITE
    for stxn in servers:
        if stxn.state in (TxnState.TRYING, TxnState.PROCEEDING):
            layer.respond(stxn, make_response(stxn.request, 500, to_tag="t"), now)
    for txn in clients:
        if txn.is_invite and txn.state is TxnState.PROCEEDING:
            layer.cancel(txn, now)
    absorb([])
    while (when := layer.next_deadline()) is not None:
        assert when <= now + 200, "a timer too far out"
        now = max(now, when)
        absorb(layer.on_timer(now))
        layer.outgoing()
    assert len(layer) == 0 and layer._heap == []
    for txn in seen:
        assert txn.state is TxnState.TERMINATED and ended.get(id(txn)) == 1, txn
    assert sum(ended.values()) == len(seen)
