"""Dialogs (RFC 3261 §12-§15): creation on both sides, in-dialog request building (route sets,
CSeq, strict routing), ACK for 2xx, 2xx retransmission until ACK and the give-up, 481/500/491,
target refresh, forking, bounds, and every (state, input) pair of the dialog table.

Two TransactionLayers (alice the UAC, bob the UAS) talk through a "wire" (serialize, parse,
validate) on a fake clock.
"""

from __future__ import annotations

import random

import pytest

from sipcore.dialog import (
    DIALOG_TABLE,
    AckTimeout,
    Dialog,
    DialogError,
    DialogInput,
    DialogLimitError,
    Dialogs,
    DialogState,
    Glare,
    IllegalDialogTransition,
    InviteInProgress,
    InvitePending,
    NoSuchDialog,
    OutOfOrder,
    ResponseKind,
    Role,
    error_response,
    render_dialog_table,
)
from sipcore.errors import SipError
from sipcore.message import Request, Response, make_response
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.syntax import ParseError
from sipcore.transaction import (
    ClientTransaction,
    IncomingRequest,
    IncomingResponse,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TxnState,
    new_branch,
)
from sipcore.uri import SipUri

ALICE = Peer("udp", "192.0.2.1", 5060)
BOB = Peer("udp", "192.0.2.2", 5060)
T1 = 0.5
ALICE_CONTACT = "<sip:alice@192.0.2.1:5060>"
BOB_CONTACT = "<sip:bob@192.0.2.2:5070;transport=udp>"
RR = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr;ftag=x>")  # as the UAS sees them: p1 is nearest


def wire(msg: Request | Response) -> Request | Response:
    out = parse_message(bytes(msg))
    out.validate()
    return out


class Pair:
    """alice (UAC) and bob (UAS), each a TransactionLayer and Dialogs."""

    def __init__(self, *, transport: str = "udp", max_dialogs: int = 100) -> None:
        self.alice_peer = Peer(transport, "192.0.2.1", 5060)
        self.bob_peer = Peer(transport, "192.0.2.2", 5060)
        self.transport = transport.upper()
        self.la, self.lb = TransactionLayer(), TransactionLayer()
        self.da = Dialogs(self.la, max_dialogs=max_dialogs, rng=random.Random(1))
        self.db = Dialogs(self.lb, max_dialogs=max_dialogs, rng=random.Random(1))

    def invite(self, *, record_route: tuple[str, ...] = RR, cseq: int = 10) -> Request:
        return Request("INVITE", "sip:bob@biloxi.example.com", [
            ("Via", f"SIP/2.0/{self.transport} 192.0.2.1:5060;branch={new_branch()}"), ("Max-Forwards", 70),
            ("From", '"Alice" <sip:alice@atlanta.example.com>;tag=atag'), ("To", "Bob <sip:bob@biloxi.example.com>"),
            ("Call-ID", "call-1@192.0.2.1"), ("CSeq", f"{cseq} INVITE"), ("Contact", ALICE_CONTACT),
            *[("Record-Route", r) for r in record_route]])

    def to_bob(self, now: float) -> list:
        events = []
        for out in self.la.outgoing():
            events += self.lb.receive(wire(parse_message(out.data)), self.alice_peer, now)
        return events

    def to_alice(self, now: float) -> list:
        events = []
        for out in self.lb.outgoing():
            events += self.la.receive(wire(parse_message(out.data)), self.bob_peer, now)
        return events

    def start(self, **kw: object) -> tuple[ClientTransaction, ServerTransaction]:
        ctxn = self.la.request(self.invite(**kw), self.bob_peer, 0.0)  # type: ignore[arg-type]
        [event] = self.to_bob(0.0)
        assert isinstance(event, IncomingRequest) and event.transaction is not None
        assert self.db.receive_request(event.request, event.transaction, 0.0) is None  # not in a dialog yet
        return ctxn, event.transaction

    def answer(self, stxn: ServerTransaction, status: int, now: float, tag: str = "btag") -> Dialog | None:
        return self.db.respond(stxn, make_response(stxn.request, status, to_tag=tag,
                                                   headers=[("Contact", BOB_CONTACT)]), now)

    def alice_hears(self, now: float) -> list:
        """Deliver bob's messages to alice and pass responses through alice's Dialogs."""
        results = []
        for event in self.to_alice(now):
            if isinstance(event, (IncomingResponse, StrayResponse)):
                txn = event.transaction if isinstance(event, IncomingResponse) else None
                results.append(self.da.receive_response(event.response, txn, now))
        return results

    def established(self) -> tuple[Dialog, Dialog, ServerTransaction]:
        """A confirmed call: INVITE, 180, 200, ACK. Returns (alice's, bob's, bob's INVITE txn)."""
        _, stxn = self.start()
        self.answer(stxn, 180, 0.1)
        self.alice_hears(0.1)
        bob = self.answer(stxn, 200, 0.2)
        [result] = self.alice_hears(0.2)
        assert result.kind is ResponseKind.ESTABLISHED and bob is not None
        alice = result.dialog
        ack = alice.new_ack(10, transport=self.transport, sent_by="192.0.2.1:5060")
        self.da.send_ack(alice, ack, self.bob_peer)
        [event] = self.to_bob(0.3)
        assert isinstance(event, IncomingRequest) and event.transaction is None
        assert self.db.receive_request(event.request, None, 0.3) is bob
        return alice, bob, stxn


def sent(layer: TransactionLayer) -> list[Request | Response]:
    return [parse_message(o.data) for o in layer.outgoing()]


# --- creation (§12.1) -------------------------------------------------------------------------------

def test_uas_dialog_from_invite_and_our_responses() -> None:
    pair = Pair()
    _, stxn = pair.start()
    early = pair.answer(stxn, 180, 0.1)
    assert isinstance(early, Dialog) and early.state is DialogState.EARLY and early.role is Role.UAS
    assert early.id == ("call-1@192.0.2.1", "btag", "atag") and pair.db.get(*early.id) is early
    assert [str(r) for r in early.route_set] == list(RR)  # §12.1.1: in order
    assert early.remote_target == SipUri("192.0.2.1", "alice", port=5060)  # the INVITE's Contact
    assert early.remote_seq == 10 and early.local_seq is None and early.secure is False
    assert early.local_uri.tag == "btag" and early.remote_uri.tag == "atag"
    assert early.remote_uri.display_name == "Alice" and early.local_contact == BOB_CONTACT
    assert pair.answer(stxn, 200, 0.2) is early and early.state is DialogState.CONFIRMED
    assert len(pair.db) == 1


def test_uac_dialog_early_then_confirmed_with_route_set_from_the_2xx() -> None:
    pair = Pair()
    ctxn, stxn = pair.start()
    pair.answer(stxn, 100, 0.05)  # no tag, no dialog
    assert pair.alice_hears(0.05) == [None]
    pair.answer(stxn, 180, 0.1)
    [result] = pair.alice_hears(0.1)
    assert result.kind is ResponseKind.EARLY
    early = result.dialog
    assert early.role is Role.UAC and early.state is DialogState.EARLY
    assert early.id == ("call-1@192.0.2.1", "atag", "btag")
    assert [str(r) for r in early.route_set] == list(reversed(RR))  # §12.1.2: reversed
    assert early.remote_target == SipUri("192.0.2.2", "bob", port=5070, params=(("transport", "udp"),))
    assert early.local_seq == 10 and early.remote_seq is None and early.local_contact == ALICE_CONTACT
    assert ctxn.dialogs == {"btag": early}
    # the 2xx confirms it; route set and target are taken from the 2xx (§13.2.2.4)
    ok = make_response(stxn.request, 200, to_tag="btag", headers=[("Contact", "<sip:bob@192.0.2.22>")])
    ok = ok.without_header("Record-Route").with_header("Record-Route", "<sip:p9.example.com;lr>")
    pair.db.respond(stxn, ok, 0.2)
    [result] = pair.alice_hears(0.2)
    assert result.kind is ResponseKind.ESTABLISHED and result.dialog is early
    assert early.state is DialogState.CONFIRMED and [str(r) for r in early.route_set] == ["<sip:p9.example.com;lr>"]
    assert early.remote_target == SipUri("192.0.2.22", "bob")


def test_2xx_to_invite_needs_a_to_tag() -> None:
    pair = Pair()
    _, stxn = pair.start()
    with pytest.raises(DialogError, match="To tag"):
        pair.db.respond(stxn, make_response(stxn.request, 200), 0.1)
    assert stxn.state is TxnState.PROCEEDING and pair.lb.outgoing() == []
    assert pair.db.respond(stxn, make_response(stxn.request, 404), 0.1) is None  # errors need none


# --- building requests (§12.2.1.1, §13.2.2.4) --------------------------------------------------------

def test_in_dialog_requests_from_the_uac() -> None:
    alice, _, _ = Pair().established()
    bye = alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1:5060")
    assert bye.method == "BYE" and bye.uri_text == "sip:bob@192.0.2.2:5070;transport=udp"  # remote target
    assert [str(r) for r in bye.routes] == list(reversed(RR))  # the route set, in order, lr kept
    assert bye.cseq.number == 11 and bye.cseq.method == "BYE" and alice.local_seq == 11
    assert bye.from_tag == "atag" and bye.to_tag == "btag" and bye.call_id == "call-1@192.0.2.1"
    assert bye.max_forwards == 70 and bye.from_.display_name == "Alice"
    via = bye.via
    assert via.transport == "UDP" and via.sent_by == ("192.0.2.1", 5060) and via.wants_rport
    assert via.branch is not None and via.branch.startswith("z9hG4bK")
    assert not bye.has_header("Contact")  # BYE is not a target refresh
    info = alice.new_request("INFO", transport="TCP", sent_by="[2001:db8::1]:5061",
                             headers=[("X-Thing", "1")], body=b"hello", content_type="text/plain")
    assert info.cseq.number == 12 and info.via.transport == "TCP" and info.via.host == "[2001:db8::1]"
    assert info.header("X-Thing") == "1" and info.body == b"hello" and info.content_type.mime == "text/plain"
    assert info.via.branch != bye.via.branch
    wire(info)
    reinvite = alice.new_request("INVITE", transport="UDP", sent_by="192.0.2.1:5060", body=b"v=0\r\n",
                                 content_type="application/sdp")
    assert reinvite.header("Contact") == ALICE_CONTACT and reinvite.cseq.number == 13  # target refresh
    own = alice.new_request("REFER", transport="UDP", sent_by="192.0.2.1", headers=[("Contact", "<sip:x@y>")])
    assert own.header_values("Contact") == ["<sip:x@y>"]
    for method in ("NOTIFY", "UPDATE", "MESSAGE"):
        wire(alice.new_request(method, transport="UDP", sent_by="192.0.2.1"))


def test_in_dialog_request_from_the_uas_starts_cseq() -> None:
    _, bob, _ = Pair().established()
    bye = bob.new_request("BYE", transport="UDP", sent_by="192.0.2.2:5060")
    assert bye.uri_text == "sip:alice@192.0.2.1:5060" and [str(r) for r in bye.routes] == list(RR)
    assert bye.cseq.number == 1 and bye.from_tag == "btag" and bye.to_tag == "atag"


def test_ack_for_2xx() -> None:
    alice, _, _ = Pair().established()
    ack = alice.new_ack(10, transport="UDP", sent_by="192.0.2.1:5060", body=b"v=0\r\n",
                        content_type="application/sdp", headers=[("Authorization", 'Digest username="a"')])
    assert ack.method == "ACK" and ack.cseq.number == 10 and ack.cseq.method == "ACK"  # §13.2.2.4
    assert alice.local_seq == 10  # an ACK takes no CSeq
    assert ack.uri_text == alice.request_uri and [str(r) for r in ack.routes] == list(reversed(RR))
    assert ack.header("Authorization") == 'Digest username="a"' and ack.body == b"v=0\r\n"
    assert not ack.has_header("Contact")
    with pytest.raises(DialogError):
        alice.new_ack(-1, transport="UDP", sent_by="x")


def test_request_building_checks() -> None:
    alice, _, _ = Pair().established()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(DialogError):
            alice.new_request(method, transport="UDP", sent_by="192.0.2.1")
    for kwargs in ({"transport": "U DP", "sent_by": "192.0.2.1"}, {"transport": "UDP", "sent_by": "bad host"}):
        with pytest.raises(ParseError):
            alice.new_request("BYE", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ParseError):
        alice.new_request("B YE", transport="UDP", sent_by="192.0.2.1")
    with pytest.raises(ParseError):
        alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1", headers=[("X", "a\r\nB: c")])
    with pytest.raises(ParseError):
        alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1", branch="z9hG4bK x")
    assert alice.new_request("BYE", transport="UDP", sent_by="h", branch="z9hG4bKmine").via.branch == "z9hG4bKmine"
    alice.local_seq = 0xFFFFFFFF
    with pytest.raises(DialogError, match="exhausted"):
        alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1")


def test_strict_routing() -> None:
    pair = Pair()
    _, stxn = pair.start(record_route=("<sip:strict.example.com>", "<sip:p2.example.com;lr>"))
    bob = pair.answer(stxn, 200, 0.1)
    assert bob is not None
    bye = bob.new_request("BYE", transport="UDP", sent_by="192.0.2.2")
    # §12.2.1.1: the strict router is the Request-URI; the remote target is the last Route
    assert bye.uri_text == "sip:strict.example.com"
    assert [str(r) for r in bye.routes] == ["<sip:p2.example.com;lr>", "<sip:alice@192.0.2.1:5060>"]
    assert bob.next_hop == SipUri("strict.example.com")


def test_next_hop() -> None:
    pair = Pair()
    alice, _, _ = pair.established()
    assert alice.next_hop == SipUri("p2.example.com", params=(("lr", None), ("ftag", "x")))
    _, stxn = Pair().start(record_route=())
    plain = Pair().answer(stxn, 200, 0.1)
    assert plain is not None and plain.next_hop == plain.remote_target and plain.route_set == ()


# --- receiving in-dialog requests (§12.2.2, §14.2) ---------------------------------------------------

def _arrive(pair: Pair, request: Request, now: float) -> IncomingRequest:
    pair.la.request(request, pair.bob_peer, now)
    [event] = pair.to_bob(now)
    assert isinstance(event, IncomingRequest)
    return event


def test_unknown_to_tag_is_481() -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    bye = alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1:5060").replace_header(
        "To", "<sip:bob@biloxi.example.com>;tag=nope")
    event = _arrive(pair, bye, 1.0)
    with pytest.raises(NoSuchDialog) as info:
        pair.db.receive_request(event.request, event.transaction, 1.0)
    assert isinstance(info.value, SipError) and info.value.status == 481
    resp = error_response(event.request, info.value)
    assert (resp.status, resp.reason) == (481, "Call/Transaction Does Not Exist")
    assert bob.state is DialogState.CONFIRMED and len(pair.db) == 1


def test_lower_cseq_is_500_and_higher_cseq_moves_the_remote_sequence() -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    info = alice.new_request("INFO", transport="UDP", sent_by="192.0.2.1:5060")
    event = _arrive(pair, info, 1.0)
    assert pair.db.receive_request(event.request, event.transaction, 1.0) is bob and bob.remote_seq == 11
    alice.local_seq = 5
    old = alice.new_request("INFO", transport="UDP", sent_by="192.0.2.1:5060")
    event = _arrive(pair, old, 1.1)
    with pytest.raises(OutOfOrder) as err:
        pair.db.receive_request(event.request, event.transaction, 1.1)
    assert err.value.status == 500 and bob.remote_seq == 11


def test_target_refresh_and_glare() -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    # bob's own re-INVITE is pending ...
    bob_reinvite = bob.new_request("INVITE", transport="UDP", sent_by="192.0.2.2:5060")
    bob_txn = pair.db.send_request(bob, bob_reinvite, pair.alice_peer, 1.0)
    with pytest.raises(InvitePending):  # §14.1: not two at once
        pair.db.send_request(bob, bob.new_request("INVITE", transport="UDP", sent_by="h"), pair.alice_peer, 1.0)
    # ... when alice's arrives: 491 (§14.2)
    reinvite = alice.new_request("INVITE", transport="UDP", sent_by="192.0.2.1:5060",
                                 headers=[("Contact", "<sip:alice@192.0.2.111>")])
    event = _arrive(pair, reinvite, 1.1)
    with pytest.raises(Glare) as err:
        pair.db.receive_request(event.request, event.transaction, 1.1)
    assert err.value.status == 491 and bob.remote_target == SipUri("192.0.2.1", "alice", port=5060)
    pair.lb.respond(event.transaction, error_response(event.request, err.value), 1.1)
    # bob's re-INVITE reaches alice and is answered; alice tries again: accepted, new target
    bob_event, glared = pair.to_alice(1.2)  # bob's re-INVITE, then the 491 for alice's
    assert isinstance(glared, IncomingResponse) and glared.response.status == 491
    assert isinstance(bob_event, IncomingRequest) and bob_event.transaction is not None
    assert pair.da.receive_request(bob_event.request, bob_event.transaction, 1.2) is alice
    pair.da.respond(bob_event.transaction, make_response(bob_event.request, 200,
                                                         headers=[("Contact", ALICE_CONTACT)]), 1.2)
    [ok] = pair.to_bob(1.2)
    assert pair.db.receive_response(ok.response, ok.transaction, 1.2).kind is ResponseKind.ESTABLISHED
    assert bob_txn.state is TxnState.ACCEPTED
    reinvite2 = alice.new_request("INVITE", transport="UDP", sent_by="192.0.2.1:5060",
                                  headers=[("Contact", "<sip:alice@192.0.2.111>")])
    event = _arrive(pair, reinvite2, 1.3)
    assert pair.db.receive_request(event.request, event.transaction, 1.3) is bob
    assert bob.remote_target == SipUri("192.0.2.111", "alice")  # §12.2.2
    # a third one while the second has no answer: 500 with Retry-After 0..10 (§14.2)
    alice._uac_invite = None  # (alice would refuse to send it: §14.1)
    reinvite3 = alice.new_request("INVITE", transport="UDP", sent_by="192.0.2.1:5060")
    event3 = _arrive(pair, reinvite3, 1.4)
    with pytest.raises(InviteInProgress) as err2:
        pair.db.receive_request(event3.request, event3.transaction, 1.4)
    resp = error_response(event3.request, err2.value)
    assert resp.status == 500 and 0 <= int(resp.header("Retry-After") or "x") <= 10
    pair.lb.respond(event3.transaction, resp, 1.4)
    # once the second is answered, the 2xx is retransmitted until its ACK
    pair.db.respond(event.transaction, make_response(event.request, 200, headers=[("Contact", BOB_CONTACT)]), 1.5)
    assert [m.status for m in sent(pair.lb)] == [500, 200]  # type: ignore[union-attr]
    assert bob._ok_cseq == reinvite2.cseq.number and bob._retx


def test_bye_ends_the_dialog_on_both_sides() -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    bye = alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1:5060")
    txn = pair.da.send_request(alice, bye, pair.bob_peer, 2.0)
    assert alice.state is DialogState.TERMINATED and len(pair.da) == 0
    [event] = pair.to_bob(2.0)
    assert pair.db.receive_request(event.request, event.transaction, 2.0) is bob
    assert bob.state is DialogState.TERMINATED and len(pair.db) == 0
    assert pair.db.respond(event.transaction, make_response(event.request, 200), 2.0) is None
    [result] = pair.alice_hears(2.0)
    assert result is None and txn.state is TxnState.COMPLETED  # no dialog any more
    with pytest.raises(IllegalDialogTransition):
        alice.new_request("BYE", transport="UDP", sent_by="192.0.2.1")
    with pytest.raises(IllegalDialogTransition):
        pair.da.send_request(alice, bye, pair.bob_peer, 2.1)


def test_ack_and_cancel_never_raise() -> None:
    pair = Pair()
    pair.established()
    stray_ack = Request("ACK", "sip:bob@192.0.2.2", [
        ("Via", f"SIP/2.0/UDP 192.0.2.1;branch={new_branch()}"), ("From", "<sip:a@b>;tag=zz"),
        ("To", "<sip:b@c>;tag=yy"), ("Call-ID", "other"), ("CSeq", "1 ACK")])
    assert pair.db.receive_request(stray_ack, None, 1.0) is None
    cancel = stray_ack.replace_header("CSeq", "1 CANCEL")
    assert pair.db.receive_request(Request("CANCEL", "sip:bob@192.0.2.2", [(n, v) for n, v in cancel.headers]),
                                   None, 1.0) is None


# --- 2xx reliability (§13.3.1.4, §13.2.2.4) ---------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_uas_retransmits_2xx_until_the_give_up(transport: str) -> None:
    pair = Pair(transport=transport)
    _, stxn = pair.start()
    bob = pair.answer(stxn, 200, 1.0)
    assert [m.status for m in sent(pair.lb)] == [200]  # type: ignore[union-attr]
    times, timeouts = [], []
    while (when := pair.lb.next_deadline()) is not None:
        for event in pair.lb.on_timer(when):
            if isinstance(event, AckTimeout):
                timeouts.append((when, event.dialog, event.response.status))
        times += [round(when, 6) for _ in pair.lb.outgoing()]
    # on TCP too: the 2xx is end-to-end and may cross UDP hops (§13.3.1.4)
    assert times == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5]
    assert timeouts == [(33.0, bob, 200)] and bob is not None and bob.state is DialogState.CONFIRMED


def test_ack_stops_the_2xx_retransmissions() -> None:
    pair = Pair()
    alice, bob, stxn = pair.established()  # the ACK came at 0.3
    assert bob._retx == 0
    seen = []
    while (when := pair.lb.next_deadline()) is not None:
        seen += pair.lb.on_timer(when)
        assert pair.lb.outgoing() == []
    assert not any(isinstance(e, AckTimeout) for e in seen)


def test_an_ack_for_another_cseq_does_not_stop_them() -> None:
    pair = Pair()
    _, stxn = pair.start()
    bob = pair.answer(stxn, 200, 0.1)
    [result] = pair.alice_hears(0.1)
    ack = result.dialog.new_ack(9, transport="UDP", sent_by="192.0.2.1")  # wrong CSeq
    assert pair.db.receive_request(wire(ack), None, 0.2) is bob  # type: ignore[arg-type]
    assert bob is not None and bob._retx != 0


def test_uac_acks_each_retransmitted_2xx_again() -> None:
    pair = Pair()
    ctxn, stxn = pair.start()
    pair.answer(stxn, 200, 0.1)
    [result] = pair.alice_hears(0.1)
    alice = result.dialog
    ack = alice.new_ack(10, transport="UDP", sent_by="192.0.2.1:5060")
    pair.da.send_ack(alice, ack, pair.bob_peer)
    pair.la.outgoing()  # the first ACK is lost
    when = pair.lb.next_deadline()
    assert when == pytest.approx(0.6)
    pair.lb.on_timer(when)  # bob retransmits the 200
    [again] = pair.alice_hears(when)
    assert again.kind is ResponseKind.RETRANSMISSION and again.dialog is alice
    [resent] = pair.la.outgoing()
    assert resent.data == bytes(ack) and resent.peer == pair.bob_peer
    # after Timer M the 2xx is a stray; the dialog layer still ACKs it
    assert ctxn.state is TxnState.ACCEPTED
    pair.la.on_timer(pair.la.next_deadline() or 0.0)
    assert ctxn.state is TxnState.TERMINATED
    pair.lb.send(make_response(stxn.request, 200, to_tag="btag"), pair.alice_peer)
    [late] = pair.alice_hears(40.0)
    assert late.kind is ResponseKind.RETRANSMISSION and [o.data for o in pair.la.outgoing()] == [bytes(ack)]


def test_a_2xx_retransmitted_after_our_bye_is_not_a_new_dialog() -> None:
    pair = Pair()
    ctxn, stxn = pair.start()
    pair.answer(stxn, 200, 0.1)
    [result] = pair.alice_hears(0.1)
    alice = result.dialog
    pair.da.send_ack(alice, alice.new_ack(10, transport="UDP", sent_by="h"), pair.bob_peer)
    pair.da.send_request(alice, alice.new_request("BYE", transport="UDP", sent_by="h"), pair.bob_peer, 0.2)
    pair.la.outgoing()
    pair.lb.send(make_response(stxn.request, 200, to_tag="btag"), pair.alice_peer)  # late retransmission
    [late] = pair.alice_hears(0.3)
    assert late.kind is ResponseKind.RETRANSMISSION and late.dialog is alice and len(pair.da) == 0
    assert [parse_message(o.data).method for o in pair.la.outgoing()] == ["ACK"]  # type: ignore[union-attr]


def test_reinvite_2xx_is_reported_once() -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    reinvite = alice.new_request("INVITE", transport="UDP", sent_by="192.0.2.1:5060")
    txn = pair.da.send_request(alice, reinvite, pair.bob_peer, 1.0)
    [event] = pair.to_bob(1.0)
    pair.db.receive_request(event.request, event.transaction, 1.0)
    pair.db.respond(event.transaction, make_response(event.request, 200, headers=[("Contact", "<sip:bob@192.0.2.99>")]),
                    1.1)
    [result] = pair.alice_hears(1.1)
    assert result.kind is ResponseKind.ESTABLISHED and alice.remote_target == SipUri("192.0.2.99", "bob")
    assert txn.state is TxnState.ACCEPTED
    assert pair.lb.next_deadline() == pytest.approx(1.6)  # the first 2xx's timer is gone (its ACK came)
    pair.lb.on_timer(1.6)
    [again] = pair.alice_hears(1.6)
    assert again.kind is ResponseKind.RETRANSMISSION


# --- ending dialogs (§12.2.1.2, §12.3, §13.2.2.3) ----------------------------------------------------

@pytest.mark.parametrize("status", [481, 408])
def test_481_or_408_ends_the_dialog(status: int) -> None:
    pair = Pair()
    alice, bob, _ = pair.established()
    info = alice.new_request("INFO", transport="UDP", sent_by="192.0.2.1:5060")
    pair.da.send_request(alice, info, pair.bob_peer, 1.0)
    [event] = pair.to_bob(1.0)
    pair.lb.respond(event.transaction, make_response(event.request, status), 1.0)
    [result] = pair.alice_hears(1.0)
    assert result.kind is ResponseKind.TERMINATED and alice.state is DialogState.TERMINATED and len(pair.da) == 0


def test_other_in_dialog_responses() -> None:
    pair = Pair()
    alice, _, _ = pair.established()
    pair.da.send_request(alice, alice.new_request("INFO", transport="UDP", sent_by="h"), pair.bob_peer, 1.0)
    [event] = pair.to_bob(1.0)
    pair.lb.respond(event.transaction, make_response(event.request, 415), 1.0)
    [result] = pair.alice_hears(1.0)
    assert result.kind is ResponseKind.IN_DIALOG and alice.state is DialogState.CONFIRMED


def test_transaction_failed() -> None:
    pair = Pair()
    alice, _, _ = pair.established()
    txn = pair.da.send_request(alice, alice.new_request("INFO", transport="UDP", sent_by="h"), pair.bob_peer, 1.0)
    assert pair.da.transaction_failed(txn) == [alice]  # §12.2.1.2: no response at all = 408
    assert alice.state is DialogState.TERMINATED and pair.da.transaction_failed(txn) == []
    # a dialog-creating INVITE: its early dialogs end
    pair2 = Pair()
    ctxn, stxn = pair2.start()
    pair2.answer(stxn, 183, 0.1)
    [result] = pair2.alice_hears(0.1)
    assert pair2.da.transaction_failed(ctxn) == [result.dialog] and len(pair2.da) == 0
    options = pair2.la.request(Request("OPTIONS", "sip:x@y", [
        ("Via", f"SIP/2.0/UDP h;branch={new_branch()}"), ("From", "<sip:a@b>;tag=1"), ("To", "<sip:x@y>"),
        ("Call-ID", "o"), ("CSeq", "1 OPTIONS")]), pair2.bob_peer, 0.2)
    assert pair2.da.transaction_failed(options) == []


def test_non_2xx_final_ends_the_early_dialog_on_both_sides() -> None:
    pair = Pair()
    _, stxn = pair.start()
    bob = pair.answer(stxn, 180, 0.1)
    [result] = pair.alice_hears(0.1)
    alice = result.dialog
    assert pair.answer(stxn, 486, 0.2) is bob and bob is not None and bob.state is DialogState.TERMINATED
    [result] = pair.alice_hears(0.2)
    assert result.kind is ResponseKind.TERMINATED and result.dialog is alice and alice.state is DialogState.TERMINATED
    assert len(pair.da) == 0 and len(pair.db) == 0
    assert [m.method for m in sent(pair.la)] == ["ACK"]  # type: ignore[union-attr]


def test_forking_one_dialog_per_tag_first_2xx_wins() -> None:
    pair = Pair()
    ctxn, stxn = pair.start()
    for tag in ("fork1", "fork2"):
        pair.answer(stxn, 180, 0.1, tag=tag)
    results = pair.alice_hears(0.1)
    assert [r.kind for r in results] == [ResponseKind.EARLY] * 2
    one, two = results[0].dialog, results[1].dialog
    assert one is not two and len(pair.da) == 2
    again = pair.da.receive_response(make_response(ctxn.request, 183, to_tag="fork1",
                                                   headers=[("Contact", "<sip:moved@192.0.2.50>")]), ctxn, 0.15)
    assert again is not None and again.dialog is one and one.remote_target == SipUri("192.0.2.50", "moved")
    pair.answer(stxn, 200, 0.2, tag="fork2")
    [result] = pair.alice_hears(0.2)
    assert result.kind is ResponseKind.ESTABLISHED and result.dialog is two
    assert one.state is DialogState.TERMINATED and two.state is DialogState.CONFIRMED and len(pair.da) == 1
    # a 2xx from yet another fork is another dialog (the TU ACKs and BYEs it)
    other = pair.da.receive_response(make_response(ctxn.request, 200, to_tag="fork3"), ctxn, 0.3)
    assert other is not None and other.kind is ResponseKind.ESTABLISHED and other.dialog not in (one, two)


def test_terminate_and_match() -> None:
    pair = Pair()
    alice, bob, stxn = pair.established()
    assert pair.db.match(stxn.request.replace_header("To", "<sip:b@c>;tag=btag")) is bob
    pair.db.terminate(bob)
    pair.db.terminate(bob)
    assert bob.state is DialogState.TERMINATED and len(pair.db) == 0 and pair.db.match(stxn.request) is None


# --- bounds -----------------------------------------------------------------------------------------

def test_max_dialogs() -> None:
    pair = Pair(max_dialogs=1)
    pair.established()
    # bob: a second call cannot get a dialog; nothing is sent
    ctxn = pair.la.request(pair.invite().replace_header("Call-ID", "call-2"), pair.bob_peer, 1.0)
    [event] = pair.to_bob(1.0)
    with pytest.raises(DialogLimitError) as err:
        pair.answer(event.transaction, 180, 1.1)
    assert err.value.status == 503 and pair.lb.outgoing() == [] and event.transaction.state is TxnState.PROCEEDING
    pair.db.respond(event.transaction, error_response(event.request, err.value, to_tag="x"), 1.1)
    # alice: no dialog beyond the bound (the TU ACKs and BYEs such a 2xx itself)
    assert pair.da.receive_response(make_response(ctxn.request, 180, to_tag="q"), ctxn, 1.2) is None
    assert pair.da.receive_response(make_response(ctxn.request, 200, to_tag="q"), ctxn, 1.2) is None
    with pytest.raises(ValueError):
        Dialogs(pair.la, max_dialogs=0)


# --- the table --------------------------------------------------------------------------------------

def test_every_dialog_state_input_pair() -> None:
    for state in DialogState:
        for inp in DialogInput:
            pair = Pair()
            alice, _, _ = pair.established()
            alice.state = state
            entry = DIALOG_TABLE.get((state, inp))
            if entry is None:
                with pytest.raises(IllegalDialogTransition) as info:
                    pair.da._step(alice, inp)
                assert (info.value.state, info.value.input) == (state, inp)
                assert alice.state is state and len(pair.da) == 1
            else:
                assert pair.da._step(alice, inp) is entry[0]
                assert alice.state is entry[1]
                ended = entry[1] is DialogState.TERMINATED and state is not DialogState.TERMINATED
                assert len(pair.da) == (0 if ended else 1), (state, inp)


def test_render_dialog_table() -> None:
    text = render_dialog_table()
    assert "| SUCCESS | CONFIRM → CONFIRMED |" in text and "—" in text
