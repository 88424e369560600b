"""Every (state, input) pair of the four transaction tables: the documented next state, or the
named error with nothing changed; a peer can never cause an illegal transition."""

from __future__ import annotations

import pytest

from sipcore.message import make_response
from sipcore.net import Peer
from sipcore.transaction import (
    IllegalTransition,
    Transaction,
    TransactionLayer,
    TransactionTerminated,
    build_ack,
)
from sipcore.txn_tables import (
    MACHINE_STATES,
    PEER_INPUTS,
    TABLES,
    Machine,
    TxnInput,
    TxnState,
    render_table,
    transition,
)
from tests.unit.test_sip_transaction import make_request, reply, server_txn, wire

UDP_A = Peer("udp", "192.0.2.1", 5060)          # the client host
UDP_B = Peer("udp", "192.0.2.2", 5060)          # the server host
TCP_A = Peer("tcp", "192.0.2.1", 40000, conn=3)
TCP_B = Peer("tcp", "192.0.2.2", 5060)
S, I = TxnState, TxnInput  # noqa: E741

T1 = 0.5


# --- the tables: every (state, input) pair ----------------------------------------------------------

def test_tables_only_name_their_machines_states() -> None:
    for machine, table in TABLES.items():
        assert {s for s, _ in table} | {n for _, n in table.values()} <= set(MACHINE_STATES[machine])


def test_a_peer_can_never_cause_an_illegal_transition() -> None:
    for machine, inputs in PEER_INPUTS.items():
        for state in MACHINE_STATES[machine]:
            if state is not S.TERMINATED:
                for inp in (*inputs, I.TRANSPORT_ERROR):
                    transition(machine, state, inp)  # raises if missing


def test_render_table() -> None:
    text = render_table(Machine.INVITE_CLIENT)
    assert "| RX_2XX | ACCEPT → ACCEPTED |" in text and "TIMER_M" in text and "—" in text
    assert "RX_ACK" not in text  # rows are the machine's own inputs
    for machine in Machine:
        assert machine.value in render_table(machine)


def _live(machine: Machine, state: TxnState) -> tuple[TransactionLayer, Transaction]:
    """A fresh layer with one transaction of ``machine`` put in ``state`` (white box)."""
    layer = TransactionLayer()
    txn: Transaction
    if machine is Machine.INVITE_CLIENT:
        txn = layer.request(make_request(), UDP_B, 0.0)
    elif machine is Machine.NON_INVITE_CLIENT:
        txn = layer.request(make_request("OPTIONS"), UDP_B, 0.0)
    else:
        txn = server_txn(layer, make_request("INVITE" if machine is Machine.INVITE_SERVER else "OPTIONS"))
    txn.state = state
    layer.outgoing()
    return layer, txn


def _input_message(txn: Transaction, inp: TxnInput) -> object:
    req = txn.request
    if inp in (I.RX_1XX, I.RX_2XX, I.RX_ERR):
        return reply(req, {I.RX_1XX: 180, I.RX_2XX: 200, I.RX_ERR: 486}[inp])
    if inp in (I.TU_1XX, I.TU_2XX, I.TU_ERR):
        return make_response(req, {I.TU_1XX: 180, I.TU_2XX: 200, I.TU_ERR: 486}[inp], to_tag="tt1")
    if inp is I.RX_REQUEST:
        return wire(req)
    if inp is I.RX_ACK:
        return wire(build_ack(req, make_response(req, 486, to_tag="tt1")))
    return None


@pytest.mark.parametrize("machine", list(Machine))
def test_every_state_input_pair(machine: Machine) -> None:
    table = TABLES[machine]
    for state in MACHINE_STATES[machine]:
        for inp in TxnInput:
            layer, txn = _live(machine, state)
            msg = _input_message(txn, inp)
            entry = table.get((state, inp))
            events: list = []
            if entry is None:
                with pytest.raises(IllegalTransition):
                    transition(machine, state, inp)
                snapshot = (txn.state, txn._retx, txn._main, txn._data, len(layer._heap), len(layer),
                            layer._count)
                with pytest.raises(IllegalTransition) as info:
                    layer._step(txn, inp, msg, 1.0, events)
                assert (info.value.machine, info.value.state, info.value.input) == (machine, state, inp)
                after = (txn.state, txn._retx, txn._main, txn._data, len(layer._heap), len(layer), layer._count)
                assert after == snapshot and events == [] and layer.outgoing() == [], (state, inp)
            else:
                assert transition(machine, state, inp) == entry
                layer._step(txn, inp, msg, 1.0, events)
                assert txn.state is entry[1], (state, inp)
                if entry[1] is S.TERMINATED and state is not S.TERMINATED:
                    assert len(layer) == 0 and isinstance(events[-1], TransactionTerminated)
                    assert events[-1].transaction is txn
                    assert (txn._retx, txn._main) == (0, 0)
