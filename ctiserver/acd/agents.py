"""The agent state machine as a table.

An agent is in one of seven :class:`AgentState`\\ s::

    LOGGED_OUT --login--> NOT_READY <--ready/not_ready--> READY --reserve--> RESERVED --ringing--> OFFERED
                                                            ^                    |  accept            |
                                                            +--miss / release----+----------> BUSY <--+
                                                            |                                   | call_end
                                                            +------------wrap_up_end--------- WRAP_UP

Every input — from the agent, a supervisor, the telephony or the engine's own timers — is an
:class:`AgentInput`. :data:`TABLE` maps ``(state, input)`` to ``(effect, next state)``; the engine
performs the :class:`Effect` (withdraw an offer, count a miss, arm the wrap-up timer, ...) and
records the change. A pair missing from the table is an illegal move and raises
:class:`IllegalTransition` *before* anything changes.

Choices the table encodes:

* Login lands in NOT_READY: the agent says when he is ready.
* NOT_READY or LOGOUT while BUSY or in WRAP_UP does not interrupt the work: it becomes *pending*
  (``SET_PENDING``) and takes effect when wrap-up ends. READY while busy cancels a pending
  not-ready (a pending logout stands). The engine picks the wrap-up-end input that matches the
  pending wish, so the target state stays in the table.
* NOT_READY or LOGOUT while RESERVED/OFFERED (the agent himself or a supervisor) withdraws the offer
  at once and re-queues the contact; it is not counted as a miss.
* A miss (no answer, rejected, unreachable) returns the agent to READY and bumps that kind's
  consecutive counter; the miss that reaches the limit is fed as MISS_LIMIT instead, which logs
  him out (auto-logout).
* The machine is pure: no clock, no I/O; the engine owns counters, timers and contacts.
"""

from __future__ import annotations

import enum

from .model import AcdError


class AgentState(enum.Enum):
    __hash__ = object.__hash__  # members are singletons; Enum.__hash__ is Python code
    LOGGED_OUT = "logged_out"
    READY = "ready"            # idle and routable
    NOT_READY = "not_ready"    # logged in, not routable; carries an admin-defined reason
    RESERVED = "reserved"      # chosen for a contact; the offer is on its way
    OFFERED = "offered"        # the workplace rings (or the chat/e-mail is shown)
    BUSY = "busy"              # working on an accepted contact
    WRAP_UP = "wrap_up"        # after-contact work; a timer returns him to READY


class AgentInput(enum.Enum):
    __hash__ = object.__hash__
    LOGIN = "login"
    LOGOUT = "logout"                       # agent or supervisor
    READY = "ready"
    NOT_READY = "not_ready"                 # agent or supervisor, with a reason
    RESERVE = "reserve"                     # engine: chose him for a contact
    RINGING = "ringing"                     # telephony: the workplace rings
    ACCEPT = "accept"                       # he answered
    REJECT = "reject"                       # he declined (a miss)
    NO_ANSWER = "no_answer"                 # ring timeout (a miss)
    UNREACHABLE = "unreachable"             # telephony could not reach the workplace (a miss)
    MISS_LIMIT = "miss_limit"               # engine: a miss that reached the consecutive limit
    RELEASE = "release"                     # the offered contact went away (caller hung up)
    CALL_END = "call_end"                   # the contact ended
    WRAP_UP_END = "wrap_up_end"             # timer or agent; nothing pending
    WRAP_UP_END_NOT_READY = "wrap_up_end_not_ready"  # ... with a pending not-ready
    WRAP_UP_END_LOGOUT = "wrap_up_end_logout"        # ... with a pending logout


class Effect(enum.Enum):
    """What the engine does besides recording the change."""

    __hash__ = object.__hash__
    NOTHING = "nothing"              # no change at all (nothing is recorded)
    LOGIN = "login"                  # reset miss counters, note the workplace
    LOGOUT = "logout"                # release contacts held for him as preferred agent
    GO_READY = "go_ready"            # find him work, else index him as READY
    GO_NOT_READY = "go_not_ready"    # leave the READY index (or just change the reason)
    RESERVE = "reserve"              # leave the READY index, offer the contact, arm the ring timer
    RING = "ring"                    # note that it rings
    ANSWER = "answer"                # contact answered; reset miss counters; count for today
    MISS = "miss"                    # count the miss, re-queue the contact, then as GO_READY
    AUTO_LOGOUT = "auto_logout"      # count the miss, re-queue the contact, log him out
    WITHDRAW = "withdraw"            # cancel the offer, re-queue the contact (no miss)
    RELEASE = "release"              # the contact is gone; then as GO_READY
    START_WRAP_UP = "start_wrap_up"  # contact ended; arm the wrap-up timer
    END_WRAP_UP = "end_wrap_up"      # disarm the timer, clear pending; then as the next state says
    SET_PENDING = "set_pending"      # remember not-ready/logout for when wrap-up ends
    CLEAR_PENDING = "clear_pending"  # forget a pending not-ready


class IllegalTransition(AcdError):
    """``input`` is not allowed in ``state``; nothing changed."""

    hint = "INVALID_STATE"

    def __init__(self, state: AgentState, input: AgentInput, agent_id: str = "") -> None:
        who = f"agent {agent_id}: " if agent_id else ""
        super().__init__(f"{who}{input.value} is not allowed in state {state.value}")
        self.state = state
        self.input = input
        self.agent_id = agent_id


S, I, E = AgentState, AgentInput, Effect  # noqa: E741 - short names keep the table readable

# RESERVED and OFFERED answer alike (None: stay)
_OFFER_PHASE: dict[AgentInput, tuple[Effect, AgentState | None]] = {
    I.LOGOUT: (E.WITHDRAW, S.LOGGED_OUT),
    I.READY: (E.NOTHING, None),
    I.NOT_READY: (E.WITHDRAW, S.NOT_READY),
    I.ACCEPT: (E.ANSWER, S.BUSY),
    I.REJECT: (E.MISS, S.READY),
    I.NO_ANSWER: (E.MISS, S.READY),
    I.UNREACHABLE: (E.MISS, S.READY),
    I.MISS_LIMIT: (E.AUTO_LOGOUT, S.LOGGED_OUT),
    I.RELEASE: (E.RELEASE, S.READY),
}

TABLE: dict[tuple[AgentState, AgentInput], tuple[Effect, AgentState]] = {
    (S.LOGGED_OUT, I.LOGIN): (E.LOGIN, S.NOT_READY),

    (S.READY, I.LOGOUT): (E.LOGOUT, S.LOGGED_OUT),
    (S.READY, I.READY): (E.NOTHING, S.READY),
    (S.READY, I.NOT_READY): (E.GO_NOT_READY, S.NOT_READY),
    (S.READY, I.RESERVE): (E.RESERVE, S.RESERVED),

    (S.NOT_READY, I.LOGOUT): (E.LOGOUT, S.LOGGED_OUT),
    (S.NOT_READY, I.READY): (E.GO_READY, S.READY),
    (S.NOT_READY, I.NOT_READY): (E.GO_NOT_READY, S.NOT_READY),  # a new reason is a recorded change

    (S.RESERVED, I.RINGING): (E.RING, S.OFFERED),
    (S.OFFERED, I.RINGING): (E.NOTHING, S.OFFERED),
    **{(st, i): (eff, nxt or st) for st in (S.RESERVED, S.OFFERED) for i, (eff, nxt) in _OFFER_PHASE.items()},

    (S.BUSY, I.LOGOUT): (E.SET_PENDING, S.BUSY),
    (S.BUSY, I.READY): (E.CLEAR_PENDING, S.BUSY),
    (S.BUSY, I.NOT_READY): (E.SET_PENDING, S.BUSY),
    (S.BUSY, I.CALL_END): (E.START_WRAP_UP, S.WRAP_UP),

    (S.WRAP_UP, I.LOGOUT): (E.SET_PENDING, S.WRAP_UP),
    (S.WRAP_UP, I.READY): (E.CLEAR_PENDING, S.WRAP_UP),
    (S.WRAP_UP, I.NOT_READY): (E.SET_PENDING, S.WRAP_UP),
    (S.WRAP_UP, I.WRAP_UP_END): (E.END_WRAP_UP, S.READY),
    (S.WRAP_UP, I.WRAP_UP_END_NOT_READY): (E.END_WRAP_UP, S.NOT_READY),
    (S.WRAP_UP, I.WRAP_UP_END_LOGOUT): (E.END_WRAP_UP, S.LOGGED_OUT),
}


def transition(state: AgentState, input: AgentInput, agent_id: str = "") -> tuple[Effect, AgentState]:
    """The table lookup; raises :class:`IllegalTransition` for a pair the table lacks."""
    try:
        return TABLE[(state, input)]
    except KeyError:
        raise IllegalTransition(state, input, agent_id) from None


def render_table() -> str:
    """The table as Markdown (inputs × states), for docs/acd.md. ``—`` marks an illegal pair."""
    states = list(AgentState)
    lines = ["| input \\ state | " + " | ".join(s.name for s in states) + " |",
             "|---|" + "---|" * len(states)]
    for i in AgentInput:
        cells = []
        for s in states:
            entry = TABLE.get((s, i))
            if entry is None:
                cells.append("—")
            else:
                effect, nxt = entry
                cells.append(effect.name if nxt is s else f"{effect.name} → {nxt.name}")
        lines.append(f"| {i.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
