"""The RFC 3261 §17 transaction layer (with RFC 6026): every timer of every machine on UDP and TCP,
retransmission absorption, CANCEL, ACK for 2xx, strays, transport errors, bounds, every (state,
input) pair of the four tables, and UAC↔UAS back to back over a lossy fake network.

Fake clock throughout: ``now`` is passed in, timers are driven with ``next_deadline``/``on_timer``.
Every message crosses a "wire" (serialized, parsed, validated) as it would between two hosts.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from sipcore.dialog import error_response
from sipcore.errors import SipError
from sipcore.headers import Method
from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.transaction import (
    COOKIE,
    CancelRequested,
    ClientTransaction,
    IllegalTransition,
    Overloaded,
    ServerTransaction,
    StrayResponse,
    TransactionError,
    TransactionLayer,
    TransactionLimitError,
    TransactionTimeout,
    TransportFailed,
    build_ack,
    new_branch,
    new_tag,
)
from sipcore.txn_tables import (
    Machine,
    TxnInput,
    TxnState,
    render_table,
)

UDP_A = Peer("udp", "192.0.2.1", 5060)          # the client host
UDP_B = Peer("udp", "192.0.2.2", 5060)          # the server host
TCP_A = Peer("tcp", "192.0.2.1", 40000, conn=3)
TCP_B = Peer("tcp", "192.0.2.2", 5060)
S, I = TxnState, TxnInput  # noqa: E741
T1 = 0.5


def make_request(method: str = "INVITE", *, branch: str | None = None, transport: str = "UDP",
                 sent_by: str = "192.0.2.1:5060", cseq: int = 1, call_id: str = "c1@192.0.2.1",
                 from_tag: str | None = "ft1", to_tag: str | None = None, routes: tuple[str, ...] = ()) -> Request:
    if branch is None:
        branch = new_branch()
    via = f"SIP/2.0/{transport} {sent_by}" + (f";branch={branch}" if branch else "")
    return Request(method, "sip:bob@biloxi.example.com", [
        ("Via", via), ("Max-Forwards", 70),
        ("From", "<sip:alice@atlanta.example.com>" + (f";tag={from_tag}" if from_tag else "")),
        ("To", "<sip:bob@biloxi.example.com>" + (f";tag={to_tag}" if to_tag else "")),
        ("Call-ID", call_id), ("CSeq", f"{cseq} {method}"),
        *[("Route", r) for r in routes],
        ("Contact", "<sip:alice@192.0.2.1>"),
    ])


def wire(msg: Request | Response) -> Request | Response:
    """Across the network: serialized, parsed and validated, as the transport would."""
    out = parse_message(bytes(msg))
    out.validate()
    return out


def reply(request: Request, status: int, *, to_tag: str | None = "tt1") -> Response:
    got = wire(make_response(request, status, to_tag=to_tag))
    assert isinstance(got, Response)
    return got


def sent(layer: TransactionLayer) -> list[Request | Response]:
    return [parse_message(o.data) for o in layer.outgoing()]


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def run_timers(layer: TransactionLayer, until: float = 1000.0) -> list[tuple[float, list, list]]:
    """Fire every timer up to ``until``: ``(time, events, messages sent)`` per firing."""
    fired = []
    while (when := layer.next_deadline()) is not None and when <= until:
        events = layer.on_timer(when)
        fired.append((when, events, sent(layer)))
    return fired


def sends(fired: list[tuple[float, list, list]]) -> list[float]:
    return [round(t, 6) for t, _, msgs in fired for _ in msgs]


def server_txn(layer: TransactionLayer, request: Request, peer: Peer = UDP_A, now: float = 0.0) -> ServerTransaction:
    events = layer.receive(wire(request), peer, now)
    assert kinds(events) == ["IncomingRequest"]
    txn = events[0].transaction
    assert isinstance(txn, ServerTransaction)
    return txn


# --- helpers and records ---------------------------------------------------------------------------

def test_branch_and_tag_helpers() -> None:
    branches = {new_branch() for _ in range(1000)}
    assert len(branches) == 1000 and all(b.startswith(COOKIE) and len(b) == 23 for b in branches)
    tags = {new_tag() for _ in range(1000)}
    assert len(tags) == 1000 and all(len(t) == 12 for t in tags)


def test_events_are_frozen() -> None:
    layer = TransactionLayer()
    [event] = layer.receive(wire(make_request()), UDP_A, 0.0)
    with pytest.raises(FrozenInstanceError):
        event.transaction = None  # type: ignore[misc]


def test_constructor_checks_its_settings() -> None:
    for bad in ({"t1": 0}, {"t1": 5.0, "t2": 4.0}, {"t4": 0}, {"max_transactions": 0}, {"trying_delay": -1},
                {"timer_d": -1}):
        with pytest.raises(ValueError):
            TransactionLayer(**bad)  # type: ignore[arg-type]


# --- INVITE client (§17.1.1, RFC 6026) --------------------------------------------------------------

def test_invite_client_udp_timer_a_doubles_until_timer_b() -> None:
    layer = TransactionLayer()
    txn = layer.request(make_request(), UDP_B, 0.0)
    assert txn.state is S.CALLING and len(layer) == 1
    assert [m.method for m in sent(layer)] == ["INVITE"]
    fired = run_timers(layer)
    assert sends(fired) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # Timer A: T1, 2T1, 4T1, ...
    when, events, _ = fired[-1]
    assert when == 32.0 and kinds(events) == ["TransactionTimeout", "TransactionTerminated"]
    assert events[0].transaction is txn and txn.state is S.TERMINATED and txn.terminated
    assert len(layer) == 0 and layer.next_deadline() is None


def test_invite_client_tcp_no_retransmissions_timer_b_still_runs() -> None:
    layer = TransactionLayer()
    layer.request(make_request(transport="TCP"), TCP_B, 0.0)
    sent(layer)
    fired = run_timers(layer)
    assert sends(fired) == [] and [t for t, _, _ in fired] == [32.0]
    assert kinds(fired[0][1]) == ["TransactionTimeout", "TransactionTerminated"]


def test_invite_client_provisional_stops_timers_a_and_b() -> None:
    layer = TransactionLayer()
    txn = layer.request(req := make_request(), UDP_B, 0.0)
    sent(layer)
    run_timers(layer, 0.5)  # one retransmission
    events = layer.receive(reply(req, 180), UDP_B, 0.7)
    assert kinds(events) == ["IncomingResponse"] and txn.state is S.PROCEEDING
    assert events[0].response.status == 180 and events[0].transaction is txn
    assert kinds(layer.receive(reply(req, 180), UDP_B, 0.8)) == ["IncomingResponse"]  # every 1xx goes up
    assert layer.next_deadline() is None and run_timers(layer) == []
    assert len(layer) == 1  # waits for the final response (or the TU's CANCEL)


@pytest.mark.parametrize("peer,timer_d", [(UDP_B, 32.0), (TCP_B, 0.0)])
def test_invite_client_non_2xx_acks_itself_and_waits_timer_d(peer: Peer, timer_d: float) -> None:
    layer = TransactionLayer()
    req = make_request(transport=peer.transport.upper(), routes=("<sip:p1.example.com;lr>",))
    txn = layer.request(req, peer, 0.0)
    sent(layer)
    layer.receive(reply(req, 180), peer, 0.1)
    events = layer.receive(reply(req, 486, to_tag="busy"), peer, 1.0)
    assert kinds(events) == ["IncomingResponse"] and txn.state is S.COMPLETED
    [ack] = sent(layer)  # §17.1.1.3
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.uri_text == req.uri_text
    assert ack.via.branch == req.via.branch and len(ack.vias) == 1
    assert ack.cseq.number == 1 and ack.cseq.method == "ACK" and ack.to_tag == "busy"
    assert ack.from_tag == "ft1" and ack.call_id == req.call_id and ack.routes == req.routes
    # a retransmitted 486 is absorbed and ACKed again
    assert layer.receive(reply(req, 486, to_tag="busy"), peer, 2.0) == []
    assert [m.method for m in sent(layer)] == ["ACK"]  # type: ignore[union-attr]
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [1.0 + timer_d]
    assert kinds(fired[0][1]) == ["TransactionTerminated"] and len(layer) == 0


def test_invite_client_2xx_accepted_retransmissions_go_up_until_timer_m() -> None:
    layer = TransactionLayer()
    txn = layer.request(req := make_request(), UDP_B, 0.0)
    sent(layer)
    assert kinds(layer.receive(reply(req, 200), UDP_B, 0.1)) == ["IncomingResponse"]
    assert txn.state is S.ACCEPTED and sent(layer) == []  # the 2xx ACK is the TU's (§13.2.2.4)
    # RFC 6026: each retransmitted 2xx goes up so the TU ACKs again; 1xx and errors are absorbed
    assert kinds(layer.receive(reply(req, 200), UDP_B, 1.0)) == ["IncomingResponse"]
    assert layer.receive(reply(req, 180), UDP_B, 1.1) == []
    assert layer.receive(reply(req, 500), UDP_B, 1.2) == []
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [0.1 + 64 * T1] and kinds(fired[0][1]) == ["TransactionTerminated"]
    events = layer.receive(reply(req, 200), UDP_B, 40.0)  # now a stray, for the dialog layer
    assert kinds(events) == ["StrayResponse"] and events[0].peer == UDP_B


def test_invite_client_transport_error() -> None:
    layer = TransactionLayer()
    txn = layer.request(make_request(), UDP_B, 0.0)
    events = layer.transport_error(txn, 0.1)
    assert kinds(events) == ["TransportFailed", "TransactionTerminated"] and len(layer) == 0
    assert layer.transport_error(txn, 0.2) == []  # already over: nothing


# --- non-INVITE client (§17.1.2) --------------------------------------------------------------------

def test_non_invite_client_udp_timer_e_caps_at_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    txn = layer.request(make_request("OPTIONS"), UDP_B, 0.0)
    assert txn.state is S.TRYING
    sent(layer)
    fired = run_timers(layer)
    assert sends(fired) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1][0] == 32.0 and kinds(fired[-1][1]) == ["TransactionTimeout", "TransactionTerminated"]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    txn = layer.request(req := make_request("BYE", to_tag="x"), UDP_B, 0.0)
    sent(layer)
    assert kinds(layer.receive(reply(req, 100, to_tag=None), UDP_B, 0.2)) == ["IncomingResponse"]
    assert txn.state is S.PROCEEDING
    fired = run_timers(layer)
    assert sends(fired) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert fired[-1][0] == 32.0 and kinds(fired[-1][1])[0] == "TransactionTimeout"


@pytest.mark.parametrize("peer,timer_k", [(UDP_B, 5.0), (TCP_B, 0.0)])
def test_non_invite_client_final_then_timer_k(peer: Peer, timer_k: float) -> None:
    layer = TransactionLayer()
    txn = layer.request(req := make_request("OPTIONS", transport=peer.transport.upper()), peer, 0.0)
    sent(layer)
    events = layer.receive(reply(req, 200), peer, 0.3)
    assert kinds(events) == ["IncomingResponse"] and txn.state is S.COMPLETED
    assert layer.receive(reply(req, 200), peer, 0.4) == []  # retransmission absorbed
    assert layer.receive(reply(req, 180), peer, 0.4) == []
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [0.3 + timer_k] and sends(fired) == []
    assert kinds(fired[0][1]) == ["TransactionTerminated"]


# --- INVITE server (§17.2.1, RFC 6026) --------------------------------------------------------------

def test_invite_server_sends_100_trying_after_200_ms() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, make_request())
    assert txn.state is S.PROCEEDING and sent(layer) == []
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [0.2]
    [trying] = fired[0][2]
    assert isinstance(trying, Response) and trying.status == 100 and trying.to_tag is None
    assert txn.response is not None and txn.response.status == 100
    # a retransmitted INVITE gets the 100 again, and the TU hears nothing
    assert layer.receive(wire(txn.request), UDP_A, 0.5) == []
    assert [m.status for m in sent(layer)] == [100]  # type: ignore[union-attr]


def test_invite_server_no_100_when_the_tu_answers_in_time() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, make_request())
    layer.respond(txn, make_response(txn.request, 180, to_tag="tt1"), 0.1)
    assert [m.status for m in sent(layer)] == [180]  # type: ignore[union-attr]
    assert run_timers(layer) == []


@pytest.mark.parametrize("delay,expected", [(0.0, [100]), (None, [])])
def test_invite_server_trying_delay_choices(delay: float | None, expected: list[int]) -> None:
    layer = TransactionLayer(trying_delay=delay)
    server_txn(layer, make_request())
    assert [m.status for m in sent(layer)] == expected  # type: ignore[union-attr]
    assert run_timers(layer) == []


def test_invite_server_retransmitted_invite_is_absorbed_and_last_response_resent() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request())
    assert layer.receive(wire(req), UDP_A, 0.05) == []  # nothing sent yet: nothing to resend
    assert sent(layer) == []
    layer.respond(txn, make_response(req, 180, to_tag="tt1"), 0.1)
    layer.respond(txn, make_response(req, 183, to_tag="tt1"), 0.15)
    assert [m.status for m in sent(layer)] == [180, 183]  # type: ignore[union-attr]
    for t in (0.5, 1.5):
        assert layer.receive(wire(req), UDP_A, t) == []
        assert [m.status for m in sent(layer)] == [183]  # type: ignore[union-attr]


def test_invite_server_non_2xx_timer_g_until_timer_h() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request())
    layer.respond(txn, make_response(req, 486, to_tag="tt1"), 1.0)
    assert txn.state is S.COMPLETED and [m.status for m in sent(layer)] == [486]  # type: ignore[union-attr]
    assert layer.receive(wire(req), UDP_A, 1.2) == []  # a retransmitted INVITE gets the 486 again
    assert [m.status for m in sent(layer)] == [486]  # type: ignore[union-attr]
    fired = run_timers(layer)
    assert sends(fired) == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]  # Timer G
    assert fired[-1][0] == 33.0  # Timer H: 64*T1 without ACK
    assert kinds(fired[-1][1]) == ["TransactionTimeout", "TransactionTerminated"]


@pytest.mark.parametrize("peer,timer_i", [(UDP_A, 5.0), (TCP_A, 0.0)])
def test_invite_server_ack_confirms_and_timer_i_absorbs(peer: Peer, timer_i: float) -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request(transport=peer.transport.upper()), peer)
    layer.respond(txn, resp := make_response(req, 404, to_tag="tt1"), 1.0)
    sent(layer)
    ack = wire(build_ack(req, resp))
    assert layer.receive(ack, peer, 1.1) == [] and txn.state is S.CONFIRMED  # absorbed (§17.2.1)
    assert layer.receive(ack, peer, 1.2) == [] and layer.receive(wire(req), peer, 1.3) == []
    fired = run_timers(layer)
    assert sends(fired) == [] and [t for t, _, _ in fired] == [1.1 + timer_i]
    assert kinds(fired[0][1]) == ["TransactionTerminated"] and len(layer) == 0


def test_invite_server_tcp_has_no_timer_g() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request(transport="TCP"), TCP_A)
    layer.respond(txn, make_response(req, 486, to_tag="tt1"), 1.0)
    assert [o.peer for o in layer.outgoing()] == [TCP_A]  # answered on the request's connection
    fired = run_timers(layer)
    assert sends(fired) == [] and [t for t, _, _ in fired] == [33.0]


def test_invite_server_2xx_accepted_ack_goes_up_without_transaction() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request())
    layer.respond(txn, ok := make_response(req, 200, to_tag="tt1"), 1.0)
    assert txn.state is S.ACCEPTED and [m.status for m in sent(layer)] == [200]  # type: ignore[union-attr]
    # RFC 6026: a retransmitted INVITE is absorbed (the 2xx retransmissions are the TU's)
    assert layer.receive(wire(req), UDP_A, 1.5) == [] and sent(layer) == []
    # the TU may pass its 2xx again (§13.3.1.4 through RFC 6026 §8.7)
    layer.respond(txn, ok, 1.5)
    assert [m.status for m in sent(layer)] == [200]  # type: ignore[union-attr]
    # the ACK of a 2xx has its own branch; one with the INVITE's branch comes up the same way
    for branch in (new_branch(), req.via.branch):
        ack = make_request("ACK", branch=branch, to_tag="tt1")
        events = layer.receive(wire(ack), UDP_A, 2.0)
        assert kinds(events) == ["IncomingRequest"] and events[0].transaction is None
        assert events[0].request.method == "ACK" and events[0].peer == UDP_A
    assert txn.state is S.ACCEPTED
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [33.0] and kinds(fired[0][1]) == ["TransactionTerminated"]


def test_invite_server_respond_after_final_is_illegal_and_changes_nothing() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request())
    layer.respond(txn, make_response(req, 486, to_tag="tt1"), 1.0)
    sent(layer)
    before = (txn.state, txn._retx, txn._main, txn._data, len(layer._heap))
    for status in (180, 200, 500):
        with pytest.raises(IllegalTransition) as info:
            layer.respond(txn, make_response(req, status, to_tag="tt1"), 1.1)
        assert isinstance(info.value, SipError) and info.value.status == 500
        assert info.value.state is S.COMPLETED and info.value.machine is Machine.INVITE_SERVER
    assert (txn.state, txn._retx, txn._main, txn._data, len(layer._heap)) == before and sent(layer) == []


# --- non-INVITE server (§17.2.2) --------------------------------------------------------------------

@pytest.mark.parametrize("peer,timer_j", [(UDP_A, 32.0), (TCP_A, 0.0)])
def test_non_invite_server_retransmitted_bye_and_timer_j(peer: Peer, timer_j: float) -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request("BYE", to_tag="tt1", transport=peer.transport.upper()), peer)
    assert txn.state is S.TRYING
    assert layer.receive(wire(req), peer, 0.1) == [] and sent(layer) == []  # nothing to resend yet
    layer.respond(txn, make_response(req, 200), 0.2)
    assert txn.state is S.COMPLETED and [m.status for m in sent(layer)] == [200]  # type: ignore[union-attr]
    assert layer.receive(wire(req), peer, 0.6) == []  # one IncomingRequest in all
    assert [m.status for m in sent(layer)] == [200]  # type: ignore[union-attr]
    fired = run_timers(layer)
    assert [t for t, _, _ in fired] == [0.2 + timer_j] and kinds(fired[0][1]) == ["TransactionTerminated"]
    events = layer.receive(wire(req), peer, 100.0)  # after Timer J: a new transaction
    assert kinds(events) == ["IncomingRequest"]


def test_non_invite_server_provisional_then_final() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request("REGISTER"))
    layer.respond(txn, make_response(req, 100), 0.1)
    assert txn.state is S.PROCEEDING
    assert layer.receive(wire(req), UDP_A, 0.5) == []
    assert [m.status for m in sent(layer)] == [100, 100]  # type: ignore[union-attr]
    layer.respond(txn, make_response(req, 200, to_tag="r1"), 0.7)
    assert txn.state is S.COMPLETED
    with pytest.raises(IllegalTransition):
        layer.respond(txn, make_response(req, 200, to_tag="r1"), 0.8)


# --- CANCEL (§9) ------------------------------------------------------------------------------------

def test_cancel_before_provisional_waits_for_it() -> None:
    layer = TransactionLayer()
    invite = layer.request(req := make_request(routes=("<sip:p1.example.com;lr>",)), UDP_B, 0.0)
    sent(layer)
    assert layer.cancel(invite, 0.1) is None and sent(layer) == []  # §9.1: not before a 1xx
    assert invite.state is S.CALLING and invite.cancel_transaction is None
    assert layer.cancel(invite, 0.2) is None  # still just remembered
    events = layer.receive(reply(req, 180), UDP_B, 0.3)
    assert kinds(events) == ["IncomingResponse"]
    [cancel] = sent(layer)
    assert isinstance(cancel, Request) and cancel.method == "CANCEL"
    assert cancel.uri_text == req.uri_text and cancel.via.branch == req.via.branch and len(cancel.vias) == 1
    assert (cancel.cseq.number, cancel.cseq.method) == (1, "CANCEL") and cancel.to_tag is None
    assert cancel.call_id == req.call_id and cancel.from_tag == "ft1" and cancel.routes == req.routes
    ctxn = invite.cancel_transaction
    assert ctxn is not None and ctxn.method == "CANCEL" and ctxn.cancels is invite and len(layer) == 2
    # the CANCEL and the INVITE share the branch; responses go to the right one by CSeq method
    events = layer.receive(reply(cancel, 200), UDP_B, 0.4)
    assert kinds(events) == ["IncomingResponse"] and events[0].transaction is ctxn
    events = layer.receive(reply(req, 487), UDP_B, 0.5)
    assert kinds(events) == ["IncomingResponse"] and events[0].transaction is invite
    assert [m.method for m in sent(layer)] == ["ACK"]  # type: ignore[union-attr]
    assert layer.cancel(invite, 0.6) is None and sent(layer) == []  # after a final: nothing
    run_timers(layer)
    assert len(layer) == 0 and layer.cancel(invite, 99.0) is None  # even when terminated


def test_cancel_after_provisional_goes_at_once_and_bounds_the_invite() -> None:
    layer = TransactionLayer()
    invite = layer.request(req := make_request(), UDP_B, 0.0)
    sent(layer)
    layer.receive(reply(req, 180), UDP_B, 0.3)
    ctxn = layer.cancel(invite, 1.0)
    assert isinstance(ctxn, ClientTransaction) and ctxn.state is S.TRYING
    assert [m.method for m in sent(layer)] == ["CANCEL"]  # type: ignore[union-attr]
    assert layer.cancel(invite, 1.1) is None and sent(layer) == []  # only one CANCEL
    layer.receive(reply(ctxn.request, 200), UDP_B, 1.2)
    # §9.1: no final response for the INVITE 64*T1 after the CANCEL: the INVITE times out
    fired = run_timers(layer)
    timeouts = [(t, e.transaction) for t, events, _ in fired for e in events if isinstance(e, TransactionTimeout)]
    assert timeouts == [(33.0, invite)] and len(layer) == 0


def test_cancel_of_a_non_invite_is_illegal() -> None:
    layer = TransactionLayer()
    txn = layer.request(make_request("OPTIONS"), UDP_B, 0.0)
    with pytest.raises(IllegalTransition):
        layer.cancel(txn, 0.1)
    server = server_txn(layer, make_request())
    with pytest.raises(IllegalTransition):
        layer.cancel(server, 0.1)  # type: ignore[arg-type]


def test_server_cancel_names_the_invite_it_cancels() -> None:
    layer = TransactionLayer()
    invite = server_txn(layer, req := make_request())
    layer.respond(invite, make_response(req, 180, to_tag="tt1"), 0.1)
    sent(layer)
    cancel = Request("CANCEL", req.uri_text, [
        ("Via", str(req.via)), ("Max-Forwards", 70), ("From", req.header("From") or ""),
        ("To", req.header("To") or ""), ("Call-ID", req.call_id), ("CSeq", "1 CANCEL")])
    events = layer.receive(wire(cancel), UDP_A, 0.5)
    assert kinds(events) == ["CancelRequested"]
    event = events[0]
    assert isinstance(event, CancelRequested) and event.invite is invite
    assert event.transaction.method == "CANCEL" and event.transaction.cancels is invite
    assert event.transaction is not invite and len(layer) == 2
    layer.respond(event.transaction, make_response(event.transaction.request, 200), 0.5)
    layer.respond(invite, make_response(req, 487, to_tag="tt1"), 0.5)
    assert [m.status for m in sent(layer)] == [200, 487]  # type: ignore[union-attr]
    assert layer.receive(wire(cancel), UDP_A, 0.7) == []  # retransmitted CANCEL: 200 again
    assert [m.status for m in sent(layer)] == [200]  # type: ignore[union-attr]


def test_server_cancel_for_unknown_invite() -> None:
    layer = TransactionLayer()
    events = layer.receive(wire(make_request("CANCEL")), UDP_A, 0.0)
    assert kinds(events) == ["CancelRequested"] and events[0].invite is None  # the TU answers 481
    layer.respond(events[0].transaction, make_response(events[0].transaction.request, 481), 0.0)
    assert [m.status for m in sent(layer)] == [481]  # type: ignore[union-attr]


# --- matching ---------------------------------------------------------------------------------------

def test_stray_responses() -> None:
    layer = TransactionLayer()
    layer.request(req := make_request(), UDP_B, 0.0)
    other = make_request(branch=new_branch())
    events = layer.receive(reply(other, 200), UDP_B, 0.1)
    assert kinds(events) == ["StrayResponse"] and isinstance(events[0], StrayResponse)
    # same branch, another CSeq method (§17.1.3 needs both)
    bye = make_request("BYE", branch=req.via.branch)
    assert kinds(layer.receive(reply(bye, 200), UDP_B, 0.1)) == ["StrayResponse"]
    # no branch at all
    assert kinds(layer.receive(reply(make_request(branch=""), 200), UDP_B, 0.1)) == ["StrayResponse"]


def test_unmatched_ack_goes_up() -> None:
    layer = TransactionLayer()
    events = layer.receive(wire(make_request("ACK", to_tag="x")), UDP_A, 0.0)
    assert kinds(events) == ["IncomingRequest"] and events[0].transaction is None and len(layer) == 0


def test_server_matching_uses_sent_by_and_method() -> None:
    layer = TransactionLayer()
    branch = new_branch()
    a = server_txn(layer, make_request(branch=branch))
    # same branch from another sent-by: another transaction (§17.2.3)
    b = server_txn(layer, make_request(branch=branch, sent_by="192.0.2.9:5060"), Peer("udp", "192.0.2.9", 5060))
    assert a is not b and len(layer) == 2
    # same branch and sent-by, another method (not ACK/CANCEL): a broken client, dropped
    assert layer.receive(wire(make_request("OPTIONS", branch=branch)), UDP_A, 0.1) == []
    assert layer.server_transaction(make_request(branch=branch)) is a
    # an ACK matching a non-INVITE transaction is not that transaction's
    opt = server_txn(layer, make_request("OPTIONS", branch=(b2 := new_branch())))
    events = layer.receive(wire(make_request("ACK", branch=b2)), UDP_A, 0.1)
    assert events[0].transaction is None and opt.state is S.TRYING


def test_rfc2543_requests_match_without_branch() -> None:
    layer = TransactionLayer()
    txn = server_txn(layer, req := make_request(branch=""))
    assert txn.branch is None
    layer.respond(txn, resp := make_response(req, 486, to_tag="tt1"), 0.1)
    sent(layer)
    assert layer.receive(wire(req), UDP_A, 0.5) == []  # the retransmission matched
    assert [m.status for m in sent(layer)] == [486]  # type: ignore[union-attr]
    ack = build_ack(req, resp)
    assert ack.via.branch is None
    assert layer.receive(wire(ack), UDP_A, 0.6) == [] and txn.state is S.CONFIRMED


def test_request_checks() -> None:
    layer = TransactionLayer()
    with pytest.raises(TransactionError, match="ACK"):
        layer.request(make_request("ACK"), UDP_B, 0.0)
    with pytest.raises(TransactionError, match="z9hG4bK"):
        layer.request(make_request(branch="1234"), UDP_B, 0.0)
    with pytest.raises(TransactionError, match="z9hG4bK"):
        layer.request(make_request(branch=""), UDP_B, 0.0)
    req = make_request()
    layer.request(req, UDP_B, 0.0)
    with pytest.raises(TransactionError, match="in use"):
        layer.request(req, UDP_B, 0.0)
    assert layer.client_transaction(req.via.branch or "", "INVITE") is not None
    assert len(layer) == 1


def test_send_is_stateless() -> None:
    layer = TransactionLayer()
    req = make_request()
    layer.send(make_response(req, 503), UDP_A)
    layer.send(b"raw", UDP_B)
    out = layer.outgoing()
    assert [o.peer for o in out] == [UDP_A, UDP_B] and out[1].data == b"raw" and len(layer) == 0
    assert layer.outgoing() == []


# --- transport errors (§17.1.4, §17.2.4) -------------------------------------------------------------

def test_transport_error_by_peer_ends_that_peers_transactions() -> None:
    layer = TransactionLayer()
    c1 = layer.request(make_request(transport="TCP"), TCP_B, 0.0)
    c2 = layer.request(make_request("OPTIONS", transport="TCP"), TCP_B, 0.0)
    other = layer.request(make_request(), UDP_B, 0.0)
    s1 = server_txn(layer, make_request(transport="TCP"), TCP_A)
    events = layer.transport_error(Peer("tcp", "192.0.2.2", 5060, conn=9), 1.0)  # the connection opened for them
    failed = [e.transaction for e in events if isinstance(e, TransportFailed)]
    assert set(failed) == {c1, c2} and kinds(events).count("TransactionTerminated") == 2
    assert other.state is S.CALLING and s1.state is S.PROCEEDING
    assert layer.transport_error(Peer("tcp", "192.0.2.1", 40000, conn=4), 1.0) == []  # another connection
    events = layer.transport_error(TCP_A, 1.0)
    assert kinds(events) == ["TransportFailed", "TransactionTerminated"] and events[0].transaction is s1
    with pytest.raises(IllegalTransition):
        layer.respond(s1, make_response(s1.request, 200, to_tag="x"), 1.1)  # over: the TU was told


# --- bounds -----------------------------------------------------------------------------------------

def test_max_transactions() -> None:
    layer = TransactionLayer(max_transactions=2)
    invite = layer.request(req := make_request(), UDP_B, 0.0)
    server_txn(layer, make_request("OPTIONS"))
    with pytest.raises(TransactionLimitError) as info:
        layer.request(make_request("OPTIONS"), UDP_B, 0.0)
    assert info.value.status == 503
    events = layer.receive(wire(new := make_request("INVITE")), UDP_A, 0.0)
    assert kinds(events) == ["Overloaded"] and events[0].request.call_id == new.call_id and len(layer) == 2
    assert isinstance(events[0], Overloaded)
    layer.send(make_response(events[0].request, 503), events[0].peer)  # the TU's stateless answer
    # ACKs never make transactions; a CANCEL we send is always allowed
    assert kinds(layer.receive(wire(make_request("ACK")), UDP_A, 0.0)) == ["IncomingRequest"]
    layer.receive(reply(req, 180), UDP_B, 0.1)
    assert layer.cancel(invite, 0.2) is not None and len(layer) == 3


def test_timers_heap_skips_and_sweeps_cancelled_timers() -> None:
    layer = TransactionLayer()
    for _ in range(100):
        txn = layer.request(req := make_request("OPTIONS"), UDP_B, 0.0)
        layer.receive(reply(req, 200), UDP_B, 0.1)
        assert txn.state is S.COMPLETED
    # E and F of 100 transactions are cancelled: the next deadline is Timer K's (E's popped on the way)
    assert layer.next_deadline() == 5.1 and len(layer._heap) == 200
    run_timers(layer)
    assert len(layer) == 0 and layer._heap == []
    # many transactions: cancelled timers are swept, the heap stays proportional to the live ones
    biggest = 0
    for n in range(20_000):
        txn = layer.request(make_request("OPTIONS", call_id=f"{n}@x"), UDP_B, 10.0)
        layer._step(txn, I.RX_2XX, reply(txn.request, 200), 10.0, [])  # E and F cancelled, K armed
        biggest = max(biggest, len(layer._heap))
    assert len(layer) == 20_000 and biggest <= 2 * 2 * 20_000
    layer.outgoing()
    assert layer.next_deadline() == 15.0 and len(layer.on_timer(15.0)) == 20_000
    assert layer.next_deadline() is None and layer._heap == [] and len(layer) == 0


def test_error_response_helper_covers_any_sip_error() -> None:
    req = make_request("INFO", to_tag="x")
    resp = error_response(req, TransactionLimitError("busy"))
    assert resp.status == 503 and resp.reason == "Service Unavailable"
    assert Method.INFO == resp.cseq.method


def test_docs_sip_md_shows_the_invite_tables_as_the_code_has_them() -> None:
    """docs/sip.md carries the INVITE tables; they must be what render_table prints."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sip.md").read_text()
    for machine in (Machine.INVITE_CLIENT, Machine.INVITE_SERVER):
        rows = [line for line in render_table(machine).splitlines() if line.startswith("|")]
        assert rows and all(row in doc for row in rows), machine
