"""UAC and UAS transaction layers back to back over a simulated network that drops, duplicates and
reorders (seeded): calls complete or time out per the timers, nothing leaks. ``Sim`` is also used
by the property tests in tests/fuzz/test_sip_transaction_fuzz.py."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import pytest

from sipcore.dialog import AckTimeout, DialogError, Dialogs, ResponseKind, error_response
from sipcore.message import Request, make_response
from sipcore.net import Peer
from sipcore.parser import parse_message
from sipcore.transaction import (
    CancelRequested,
    ClientTransaction,
    IncomingRequest,
    IncomingResponse,
    ServerTransaction,
    StrayResponse,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    new_branch,
    new_tag,
)
from sipcore.txn_tables import (
    TxnInput,
    TxnState,
)

UDP_A = Peer("udp", "192.0.2.1", 5060)          # the client host
UDP_B = Peer("udp", "192.0.2.2", 5060)          # the server host
TCP_A = Peer("tcp", "192.0.2.1", 40000, conn=3)
TCP_B = Peer("tcp", "192.0.2.2", 5060)
S, I = TxnState, TxnInput  # noqa: E741

T1 = 0.5


# --- UAC ↔ UAS back to back over a lossy network ---------------------------------------------------

class Endpoint:
    """One side: a TransactionLayer, its Dialogs, and a scripted TU."""

    def __init__(self, sim: Sim, peer: Peer, contact: str) -> None:
        self.sim = sim
        self.peer = peer
        self.layer = TransactionLayer()
        self.dialogs = Dialogs(self.layer, rng=random.Random(0))
        self.sent_by = f"{peer.host}:{peer.port}"
        self.contact = contact
        self.transport = peer.transport.upper()
        self.txns: list[Transaction] = []     # every transaction this side had
        self.ended: dict[int, int] = {}       # id(txn) -> TransactionTerminated events

    def note(self, txn: Transaction | None) -> None:
        if txn is not None and all(t is not txn for t in self.txns):
            self.txns.append(txn)

    def bye(self, dialog: object, now: float) -> None:
        from sipcore.dialog import Dialog, DialogState
        assert isinstance(dialog, Dialog)
        if dialog.state is DialogState.TERMINATED:
            return
        bye = dialog.new_request("BYE", transport=self.transport, sent_by=self.sent_by)
        self.note(self.dialogs.send_request(dialog, bye, self.sim.other(self).peer, now))

    def common(self, event: object, now: float) -> bool:
        """Events both TUs treat alike; True when handled."""
        if isinstance(event, TransactionTerminated):
            self.ended[id(event.transaction)] = self.ended.get(id(event.transaction), 0) + 1
            return True
        if isinstance(event, (TransactionTimeout, TransportFailed)):
            txn = event.transaction
            if isinstance(txn, ClientTransaction):
                self.dialogs.transaction_failed(txn)
                if txn.method == "INVITE":
                    self.sim.outcome.setdefault("invite", "timeout")
                elif txn.method == "BYE":
                    self.sim.outcome.setdefault("bye", "timeout")
            return True
        if isinstance(event, IncomingRequest) and event.request.method in ("BYE", "ACK"):
            req, txn = event.request, event.transaction
            self.note(txn)
            try:
                self.dialogs.receive_request(req, txn, now)
            except DialogError as err:
                assert txn is not None
                self.layer.respond(txn, error_response(req, err), now)
                return True
            if txn is not None:
                self.sim.outcome["bye_at_" + type(self).__name__.lower()] = True
                self.dialogs.respond(txn, make_response(req, 200), now)
            return True
        return False


class Uas(Endpoint):
    def handle(self, events: list, now: float) -> None:
        for event in events:
            if self.common(event, now):
                continue
            if isinstance(event, IncomingRequest):
                req, txn = event.request, event.transaction
                assert txn is not None and req.method == "INVITE" and req.to_tag is None
                self.note(txn)
                txn.context = tag = new_tag()
                self.dialogs.respond(txn, make_response(req, 180, to_tag=tag, headers=[("Contact", self.contact)]), now)
                self.sim.at(now + self.sim.ring, lambda t, txn=txn: self.answer(txn, t))
            elif isinstance(event, CancelRequested):
                self.note(event.transaction)
                cancel = event.transaction
                invite = event.invite
                self.layer.respond(cancel, make_response(cancel.request, 200 if invite else 481), now)
                if invite is not None and invite.state is S.PROCEEDING:
                    self.dialogs.respond(invite, make_response(invite.request, 487, to_tag=str(invite.context)), now)
            elif isinstance(event, AckTimeout):  # §13.3.1.4: no ACK: end the session
                self.sim.outcome["ack_timeout"] = True
                self.bye(event.dialog, now)
            elif isinstance(event, (IncomingResponse, StrayResponse)):
                txn = event.transaction if isinstance(event, IncomingResponse) else None
                self.dialogs.receive_response(event.response, txn, now)
            else:
                raise AssertionError(f"unexpected {event}")

    def answer(self, txn: ServerTransaction, now: float) -> None:
        if txn.state is S.PROCEEDING:
            self.dialogs.respond(txn, make_response(txn.request, 200, to_tag=str(txn.context),
                                                    headers=[("Contact", self.contact)]), now)


class Uac(Endpoint):
    invite: ClientTransaction

    def start(self, now: float) -> None:
        req = Request("INVITE", "sip:bob@192.0.2.2", [
            ("Via", f"SIP/2.0/{self.transport} {self.sent_by};branch={new_branch()}"), ("Max-Forwards", 70),
            ("From", f"<sip:alice@atlanta.example.com>;tag={new_tag()}"), ("To", "<sip:bob@biloxi.example.com>"),
            ("Call-ID", f"{new_tag()}@192.0.2.1"), ("CSeq", "1 INVITE"), ("Contact", self.contact)])
        self.invite = self.layer.request(req, self.sim.other(self).peer, now)
        self.note(self.invite)
        if self.sim.cancel_at is not None:
            self.sim.at(now + self.sim.cancel_at, self.cancel)
        self.sim.at(now + self.sim.no_answer, self.cancel)  # the TU bounds ringing (§17.1.1.2 has no timer)

    def cancel(self, now: float) -> None:
        self.note(self.layer.cancel(self.invite, now))

    def handle(self, events: list, now: float) -> None:
        for event in events:
            if self.common(event, now):
                continue
            if isinstance(event, (IncomingResponse, StrayResponse)):
                resp = event.response
                txn = event.transaction if isinstance(event, IncomingResponse) else None
                if txn is not None:
                    self.note(txn.cancel_transaction)
                result = self.dialogs.receive_response(resp, txn, now)
                method = resp.cseq.method
                if method == "INVITE" and result is not None and result.kind is ResponseKind.ESTABLISHED:
                    dialog = result.dialog
                    assert dialog is not None
                    ack = dialog.new_ack(resp.cseq.number, transport=self.transport, sent_by=self.sent_by)
                    self.dialogs.send_ack(dialog, ack, self.sim.other(self).peer)
                    self.sim.outcome["invite"] = "answered"
                    self.sim.at(now + self.sim.hold, lambda t, d=dialog: self.bye(d, t))
                elif method == "INVITE" and resp.status >= 300 and txn is not None:
                    self.sim.outcome["invite"] = resp.status
                elif method == "BYE" and resp.status >= 200 and txn is not None:
                    self.sim.outcome["bye"] = resp.status
            else:
                raise AssertionError(f"unexpected {event}")


class Sim:
    """Two endpoints through a seeded lossy network: drop, duplicate, reorder (random delay)."""

    def __init__(self, *, seed: int, drop: float = 0.0, dup: float = 0.0, jitter: float = 0.0,
                 transport: str = "udp", ring: float = 1.0, hold: float = 2.0, cancel_at: float | None = None,
                 no_answer: float = 60.0) -> None:
        self.rng = random.Random(seed)
        reliable = transport != "udp"
        self.drop, self.dup = (0.0, 0.0) if reliable else (drop, dup)
        self.jitter = 0.0 if reliable else jitter  # a stream keeps its order
        self.ring, self.hold, self.cancel_at, self.no_answer = ring, hold, cancel_at, no_answer
        self.uac = Uac(self, Peer(transport, "192.0.2.1", 5060), "<sip:alice@192.0.2.1>")
        self.uas = Uas(self, Peer(transport, "192.0.2.2", 5060), "<sip:bob@192.0.2.2>")
        self._seq = 0
        self._net: list[tuple[float, int, Endpoint, bytes, Peer]] = []
        self._tu: list[tuple[float, int, Callable[[float], None]]] = []
        self.outcome: dict[str, object] = {}
        self.messages = 0
        self.now = 0.0
        self.last_event = 0.0  # the last message delivered or transaction event

    def other(self, ep: Endpoint) -> Endpoint:
        return self.uas if ep is self.uac else self.uac

    def at(self, when: float, action: Callable[[float], None]) -> None:
        self._seq += 1
        heapq.heappush(self._tu, (when, self._seq, action))

    def _flush(self, ep: Endpoint, now: float) -> None:
        for out in ep.layer.outgoing():
            dst = self.uas if (out.peer.host, out.peer.port) == (self.uas.peer.host, self.uas.peer.port) else self.uac
            copies = 0 if self.rng.random() < self.drop else 1
            if copies and self.rng.random() < self.dup:
                copies = 2
            for _ in range(copies):
                self._seq += 1
                delay = 0.01 + self.rng.uniform(0.0, self.jitter)
                heapq.heappush(self._net, (now + delay, self._seq, dst, out.data, ep.peer))

    def run(self, limit: float = 400.0) -> float:
        self.uac.start(0.0)
        self._flush(self.uac, 0.0)
        while True:
            times = [t for t in (self._net[0][0] if self._net else None, self._tu[0][0] if self._tu else None,
                                 self.uac.layer.next_deadline(), self.uas.layer.next_deadline()) if t is not None]
            if not times:
                return self.now
            now = self.now = min(times)
            assert now <= limit, "the calls do not end"
            while self._net and self._net[0][0] <= now:
                _, _, dst, data, src = heapq.heappop(self._net)
                msg = parse_message(data)
                msg.validate()
                self.messages += 1
                self.last_event = now
                dst.handle(dst.layer.receive(msg, src, now), now)  # type: ignore[attr-defined]
            while self._tu and self._tu[0][0] <= now:
                heapq.heappop(self._tu)[2](now)
            for ep in (self.uac, self.uas):
                events = ep.layer.on_timer(now)
                if events:
                    self.last_event = now
                ep.handle(events, now)  # type: ignore[attr-defined]
            for ep in (self.uac, self.uas):
                self._flush(ep, now)

    def check(self) -> None:
        """The invariants of every run, whatever the network did."""
        for ep in (self.uac, self.uas):
            assert len(ep.layer) == 0 and ep.layer.next_deadline() is None  # no transaction leaks
            for txn in ep.txns:  # each one ended exactly once
                assert txn.state is S.TERMINATED and ep.ended.get(id(txn)) == 1, txn
            assert sum(ep.ended.values()) == len(ep.txns)
        assert len(self.uac.dialogs) == 0
        # the UAS keeps its dialog only if our BYE never got through (then a session timer would end it)
        assert len(self.uas.dialogs) == 0 or self.outcome.get("bye") == "timeout"
        # per the timers: ringing is bounded by the TU's CANCEL, the INVITE then by 64*T1 (§9.1), the
        # BYE by Timer F, and what lingers (D, J, L, M) by 64*T1 more; jitter adds a little
        assert self.last_event <= self.no_answer + 3 * 64 * T1 + 3 * (0.01 + self.jitter), self.last_event
        invite = self.outcome.get("invite")
        assert invite in ("answered", "timeout", 487), self.outcome
        if invite == "answered":  # we hung up, or the callee did (no ACK got through: §13.3.1.4)
            assert self.outcome.get("bye") in (200, 481, "timeout") or self.outcome.get("bye_at_uac"), self.outcome
        if self.outcome.get("bye_at_uac"):
            assert self.outcome.get("ack_timeout"), self.outcome


def test_back_to_back_clean_network_call() -> None:
    sim = Sim(seed=1)
    sim.run()
    sim.check()
    assert sim.outcome == {"invite": "answered", "bye": 200, "bye_at_uas": True}
    # INVITE, 180, 200, ACK, BYE, 200 and nothing else; the BYE's Timer J is the last to end
    assert sim.messages == 6 and sim.last_event == pytest.approx(1.02 + 2.0 + 0.01 + 64 * T1)


def test_back_to_back_clean_network_cancel() -> None:
    sim = Sim(seed=1, cancel_at=0.5, ring=5.0)
    sim.run()
    sim.check()
    assert sim.outcome == {"invite": 487}
    assert sim.messages == 6  # INVITE, 180, CANCEL, 200 (CANCEL), 487, ACK; no 200 for the INVITE
    assert len(sim.uas.dialogs) == 0


def test_back_to_back_cancel_before_any_provisional_is_deferred() -> None:
    sim = Sim(seed=1, cancel_at=0.001, ring=5.0)
    sim.run()
    sim.check()
    assert sim.outcome == {"invite": 487}


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_back_to_back_tcp_and_udp_clean(transport: str) -> None:
    sim = Sim(seed=3, transport=transport)
    sim.run()
    sim.check()
    assert sim.outcome == {"invite": "answered", "bye": 200, "bye_at_uas": True}


@pytest.mark.parametrize("seed", range(40))
def test_back_to_back_lossy_network(seed: int) -> None:
    rng = random.Random(seed)
    sim = Sim(seed=seed, drop=rng.choice((0.1, 0.3, 0.5)), dup=rng.choice((0.0, 0.2)),
              jitter=rng.choice((0.0, 0.3, 2.0)), cancel_at=rng.choice((None, 0.001, 0.5, 1.5)),
              ring=rng.choice((0.1, 1.0, 3.0)))
    sim.run()
    sim.check()


def test_back_to_back_total_loss_times_out_per_the_timers() -> None:
    sim = Sim(seed=0, drop=1.0)
    sim.run()
    sim.check()
    assert sim.outcome == {"invite": "timeout"} and sim.last_event == 32.0  # Timer B
    assert sim.messages == 0
