"""The agent state table: every (state, input) pair lands where the spec says or raises."""

from __future__ import annotations

import pytest

from ctiserver.acd import TABLE, AgentInput, AgentState, Effect, IllegalTransition, render_table, transition

S, I, E = AgentState, AgentInput, Effect  # noqa: E741

_OFFER = {I.LOGOUT: S.LOGGED_OUT, I.READY: None, I.NOT_READY: S.NOT_READY, I.ACCEPT: S.BUSY, I.REJECT: S.READY,
          I.NO_ANSWER: S.READY, I.UNREACHABLE: S.READY, I.MISS_LIMIT: S.LOGGED_OUT, I.RELEASE: S.READY}

# The spec, written out independently of the table: the legal pairs and where they land.
EXPECTED: dict[tuple[AgentState, AgentInput], AgentState] = {
    (S.LOGGED_OUT, I.LOGIN): S.NOT_READY,
    (S.READY, I.LOGOUT): S.LOGGED_OUT,
    (S.READY, I.READY): S.READY,
    (S.READY, I.NOT_READY): S.NOT_READY,
    (S.READY, I.RESERVE): S.RESERVED,
    (S.NOT_READY, I.LOGOUT): S.LOGGED_OUT,
    (S.NOT_READY, I.READY): S.READY,
    (S.NOT_READY, I.NOT_READY): S.NOT_READY,
    (S.RESERVED, I.RINGING): S.OFFERED,
    (S.OFFERED, I.RINGING): S.OFFERED,
    **{(st, i): (nxt or st) for st in (S.RESERVED, S.OFFERED) for i, nxt in _OFFER.items()},
    (S.BUSY, I.LOGOUT): S.BUSY,           # pending
    (S.BUSY, I.READY): S.BUSY,            # cancels a pending not-ready
    (S.BUSY, I.NOT_READY): S.BUSY,        # pending
    (S.BUSY, I.CALL_END): S.WRAP_UP,
    (S.WRAP_UP, I.LOGOUT): S.WRAP_UP,
    (S.WRAP_UP, I.READY): S.WRAP_UP,
    (S.WRAP_UP, I.NOT_READY): S.WRAP_UP,
    (S.WRAP_UP, I.WRAP_UP_END): S.READY,
    (S.WRAP_UP, I.WRAP_UP_END_NOT_READY): S.NOT_READY,
    (S.WRAP_UP, I.WRAP_UP_END_LOGOUT): S.LOGGED_OUT,
}

ALL_PAIRS = [(s, i) for s in AgentState for i in AgentInput]


def test_table_has_exactly_the_legal_pairs() -> None:
    assert set(TABLE) == set(EXPECTED)


@pytest.mark.parametrize(("state", "inp"), ALL_PAIRS, ids=[f"{s.name}-{i.name}" for s, i in ALL_PAIRS])
def test_every_pair(state: AgentState, inp: AgentInput) -> None:
    if (state, inp) in EXPECTED:
        effect, nxt = transition(state, inp, "a1")
        assert nxt is EXPECTED[(state, inp)]
        assert isinstance(effect, Effect)
        # an entry that changes nothing says so; every real change has an effect
        assert (effect is E.NOTHING) == (nxt is state and inp in (I.READY, I.RINGING) and state is not S.BUSY
                                         and state is not S.WRAP_UP)
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(state, inp, "a1")
        err = info.value
        assert err.state is state and err.input is inp and err.agent_id == "a1"
        assert err.hint == "INVALID_STATE"
        assert state.value in str(err) and inp.value in str(err)


@pytest.mark.parametrize(("state", "inp", "effect"), [
    (S.BUSY, I.NOT_READY, E.SET_PENDING),
    (S.WRAP_UP, I.LOGOUT, E.SET_PENDING),
    (S.BUSY, I.READY, E.CLEAR_PENDING),
    (S.OFFERED, I.NOT_READY, E.WITHDRAW),
    (S.RESERVED, I.LOGOUT, E.WITHDRAW),
    (S.OFFERED, I.NO_ANSWER, E.MISS),
    (S.OFFERED, I.MISS_LIMIT, E.AUTO_LOGOUT),
    (S.OFFERED, I.RELEASE, E.RELEASE),
    (S.NOT_READY, I.READY, E.GO_READY),
    (S.READY, I.RESERVE, E.RESERVE),
    (S.BUSY, I.CALL_END, E.START_WRAP_UP),
])
def test_effects_of_the_interesting_pairs(state: AgentState, inp: AgentInput, effect: Effect) -> None:
    assert transition(state, inp)[0] is effect


def test_logged_out_accepts_only_login() -> None:
    legal = [i for i in AgentInput if (S.LOGGED_OUT, i) in TABLE]
    assert legal == [I.LOGIN]


def test_render_table_shows_every_pair() -> None:
    text = render_table()
    lines = text.splitlines()
    assert len(lines) == 2 + len(AgentInput)
    for s in AgentState:
        assert s.name in lines[0]
    for i, line in zip(AgentInput, lines[2:], strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == i.name
        for s, cell in zip(AgentState, cells[1:], strict=True):
            entry = TABLE.get((s, i))
            if entry is None:
                assert cell == "—"
            else:
                assert cell.startswith(entry[0].name)
                assert (entry[1] is s) == ("→" not in cell)
