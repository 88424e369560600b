"""Agents who hold several contacts at once: slots, channel exclusivity, presence, the aggregate state.

An agent whose capacity is at most 1 in every channel is one :class:`~ctiserver.acd.queues.AgentRt`
driven by the table of :mod:`~ctiserver.acd.agents`, as before: nothing here runs for him. An agent
who may hold several chats or e-mails (``capacity[ch] > 1``) gets a :class:`Group` of *slots*, each
an ``AgentRt`` holding at most one contact, each driven by the same table:

* the **first slot** is the agent's own record (his id, his queues in every channel he handles);
* ``capacity[ch] - 1`` **extra slots** per such channel: ``only = ch``, so they are indexed in that
  channel's queues alone. They share his miss counters, his held-for-him contacts and his
  contacts-today (the same objects), and carry his id, so every action names the agent.

**Channel exclusivity** is by routability. The channel of what he holds is the group's ``mode``:

* holding nothing (``mode`` None): only the first slot is routable, in all his channels — exactly
  what a one-slot agent is;
* holding a contact of channel X: the first slot, when free, is routable for X only (``only = X``,
  re-listed when the mode changes; only for an agent with several channels), and so are the extra
  slots of X; every other extra slot is *parked* (NOT_READY, internally).

**Presence is per agent** (``Group.presence``: LOGGED_OUT, NOT_READY or READY, with his pending
wish in the first slot's ``pending``). A free slot is READY exactly when presence is READY, no
not-ready/logout is pending and the mode allows it (:meth:`Slots._target`); :meth:`Slots._settle`
moves every free slot to its target after each change, giving READY ones work through ``_free``
(the no-stall invariant per slot). A not-ready or logout while he works is pending until the wrap-up
of his LAST contact ends; meanwhile his free slots are parked and his offers withdrawn.

**Misses are per agent**: the counters are shared; the miss that reaches the limit logs him out as
a whole (his other offers are withdrawn and re-queued; contacts he is busy with stay his until they
end, their slots then log out too).

**The reported state** (``AgentStateChanged``, ``AgentView.state``, ``brief()``) is one per agent,
recomputed from slot counts after every slot change (:meth:`Slots._show`): presence when it is
LOGGED_OUT or NOT_READY; else OFFERED if a slot is reserved or offered (RESERVED when every slot
holding anything is reserved), else BUSY, else WRAP_UP, else READY. It is emitted exactly when it
changes (or, in NOT_READY, its reason), so history keeps one interval per agent. Slot changes are
internal.

A capacity change applies at once: new extra slots open, surplus ones are *retired* (dropped when
free); an agent left with no multi-capacity becomes one slot again once nothing else holds.
"""

from __future__ import annotations

from collections.abc import Mapping

from .agents import AgentInput, AgentState, IllegalTransition, transition
from .events import Action, AgentPending, AgentStateChanged, AutoLogout, CancelOffer
from .model import Channel, EngineError, MissKind
from .queues import AgentRt
from .routing import HELD, MISS_INPUT, Router

A, I = AgentState, AgentInput  # noqa: E741
R_, O_, B_, W_ = A.RESERVED, A.OFFERED, A.BUSY, A.WRAP_UP


class Group:
    """The slots of one agent (``slots[0]`` is his own record) and what is per agent."""

    __slots__ = ("id", "slots", "presence", "preason", "state", "reason", "since", "n", "mode", "mixed", "single")

    def __init__(self, first: AgentRt) -> None:
        st = first.state
        self.id = first.id
        self.slots = [first]
        self.presence: AgentState = st if st is A.LOGGED_OUT or st is A.NOT_READY else A.READY
        self.preason = first.reason if self.presence is not A.READY else ""
        self.state, self.reason, self.since = st, first.reason, first.since   # the aggregate last emitted
        self.n = dict.fromkeys(AgentState, 0)   # slots per state
        self.n[st] = 1
        self.mode: Channel | None = None        # the channel of what he holds
        if st in HELD:
            self.mode = first.contact.queue.channel if first.contact is not None else first.chan
        self.mixed = False                      # handles several channels (his first slot is re-listed)
        self.single = False                     # his capacity no longer needs slots: collapse when idle

    @property
    def first(self) -> AgentRt:
        return self.slots[0]

    def held(self) -> int:
        n = self.n
        return n[R_] + n[O_] + n[B_] + n[W_]

    def contact_ids(self) -> tuple[str, ...]:
        """The contacts reserved, offered or answered, in order of offer."""
        slots = sorted((s for s in self.slots if s.contact is not None), key=lambda s: s.oseq)
        return tuple(s.contact.id for s in slots if s.contact is not None)


def wants_slots(capacity: Mapping[Channel, int]) -> dict[Channel, int]:
    """Extra slots per channel for a capacity: ``capacity[ch] - 1`` where it is above 1."""
    return {ch: n - 1 for ch, n in capacity.items() if n > 1}


class Slots(Router):
    """The multi-capacity half of the engine (base of :class:`~ctiserver.acd.engine.Engine`)."""

    # ==== slot changes and the aggregate ==========================================================

    def _gset(self, a: AgentRt, new: AgentState, reason: str, now: float, out: list[Action]) -> None:
        """A slot changes state (not emitted); the agent's aggregate is emitted if it changed."""
        g = a.group
        assert g is not None
        old = a.state
        n = g.n
        n[old] -= 1
        n[new] += 1
        a.state, a.reason, a.since = new, reason, now
        if new in HELD:
            if g.mode is None:
                g.mode = a.chan
        elif old in HELD and not g.held():
            g.mode = None
        self._show(g, reason, now, out)

    def _show(self, g: Group, reason: str, now: float, out: list[Action]) -> None:
        pres = g.presence
        new: AgentState
        if pres is not A.READY:
            new, reason = pres, g.preason
        else:
            n = g.n
            if n[R_] or n[O_]:
                new = R_ if n[R_] == g.held() else O_
            elif n[B_]:
                new = B_
            elif n[W_]:
                new = W_
            else:
                new = A.READY
        if new is not g.state:
            out.append(AgentStateChanged(g.id, g.state, new, reason, now))
            g.state, g.reason, g.since = new, reason, now

    def _target(self, g: Group, s: AgentRt) -> AgentState:
        """Where a free slot belongs now."""
        if g.presence is A.LOGGED_OUT:
            return A.LOGGED_OUT
        if g.presence is A.NOT_READY or g.first.pending is not None or s.retired:
            return A.NOT_READY
        if s is g.first or g.mode is s.only:
            return A.READY
        return A.NOT_READY   # an extra slot of a channel he is not working in: parked

    def _step(self, s: AgentRt, inp: AgentInput, reason: str, now: float, out: list[Action]) -> None:
        _, nxt = transition(s.state, inp, s.id)
        self._gset(s, nxt, reason, now, out)

    def _settle(self, g: Group, now: float, out: list[Action]) -> None:
        """Bring every free slot to its target: READY ones get work (``_free``) or are indexed,
        the others leave READY. Retired free slots are dropped. Re-entered (once) when a slot taken
        here gives him his first contact."""
        first = g.first
        mode = g.mode
        want = mode if g.mixed else None
        if first.only is not want:
            if first.entry is not None:
                first.unindex()
            first.only = want
            first.relist()
        # in a mode, READY slots + slots holding <= capacity (a retired slot still holding counts)
        budget = 1 if mode is None else first.profile.capacity.get(mode, 0) - g.held()
        for s in list(g.slots):
            st = s.state
            if st in HELD:
                continue
            if s.retired:
                self._drop(g, s)
                continue
            t = self._target(g, s)
            if t is A.READY:
                if budget <= 0:
                    t = A.NOT_READY
                else:
                    budget -= 1
            if t is A.READY:
                if s.entry is not None:
                    continue
                if st is A.LOGGED_OUT:
                    self._step(s, I.LOGIN, "slot", now, out)
                if s.state is A.NOT_READY:
                    self._step(s, I.READY, "slot", now, out)
                self._free(s, now, out)
                if g.mode is not mode:
                    return   # his first contact: the settle it started has done the rest
            else:
                if s.entry is not None:
                    s.unindex()
                if st is not t:
                    self._step(s, I.LOGOUT if t is A.LOGGED_OUT else I.LOGIN if st is A.LOGGED_OUT else I.NOT_READY,
                               g.preason, now, out)
        if g.single and len(g.slots) == 1 and first.group is g and (g.presence is A.READY or first.state not in HELD):
            first.group = None   # one slot again: the aggregate is his state
            first.only = None
            first.reason, first.since = g.reason, g.since
            first.relist()

    def _park(self, g: Group) -> None:
        """Take his READY slots out of the READY index (settle brings them back): a contact he gives
        back goes to someone else first, and one withdrawn from him does not come back."""
        for s in g.slots:
            if s.entry is not None:
                s.unindex()

    # ==== inputs =================================================================================

    def _g_presence(self, a: AgentRt, inp: AgentInput, now: float, reason: str,
                    workplace: str | None = None) -> list[Action]:
        """login / logout / ready / not_ready of an agent with slots; legal as the table says for
        his aggregate state (the reason of a not-ready is checked by the caller)."""
        g = a.group
        assert g is not None
        transition(g.state, inp, a.id)
        self._now = now
        out: list[Action] = []
        if inp is I.LOGIN:
            for k in a.misses:
                a.misses[k] = 0
            a.workplace = workplace
            g.presence, g.preason = A.NOT_READY, "login"
            self._show(g, "login", now, out)
        elif inp is I.READY:
            if g.presence is A.NOT_READY:
                g.presence, g.preason = A.READY, ""
                self._show(g, "ready", now, out)
            elif a.pending == "not_ready":
                a.pending, a.pending_reason = None, ""
                out.append(AgentPending(a.id, None, "ready", now))
            else:
                return out
        else:
            what = "logout" if inp is I.LOGOUT else "not_ready"
            self._park(g)
            if g.presence is A.READY and (g.n[B_] or g.n[W_]):   # working: pending until the last wrap-up ends
                if inp is I.LOGOUT or a.pending != "logout":
                    a.pending, a.pending_reason = what, reason
                    out.append(AgentPending(a.id, what, reason, now))
                self._withdraw_all(g, I.NOT_READY, what, now, out)
            else:
                new = A.LOGGED_OUT if inp is I.LOGOUT else A.NOT_READY
                if g.presence is A.NOT_READY and new is A.NOT_READY:   # a new reason is a recorded change
                    out.append(AgentStateChanged(a.id, g.state, new, reason, now))
                    g.state, g.reason, g.since = new, reason, now
                g.presence, g.preason = new, reason
                self._show(g, reason, now, out)
                self._withdraw_all(g, inp, what, now, out)
                if new is A.LOGGED_OUT:
                    self._logged_out(a, now, out)
        self._settle(g, now, out)
        return out

    def _withdraw_all(self, g: Group, inp: AgentInput, why: str, now: float, out: list[Action]) -> None:
        """Take back every offer he has (not a miss) and re-queue the contacts."""
        for s in list(g.slots):
            c = s.contact
            if c is None or (s.state is not R_ and s.state is not O_):
                continue
            _, nxt = transition(s.state, inp, s.id)
            s.contact = None
            out.append(CancelOffer(s.id, c.id, why))
            self._requeue(c, why, now, out)
            self._gset(s, nxt, why, now, out)

    def _g_miss(self, a: AgentRt, kind: MissKind, now: float, out: list[Action]) -> None:
        """A miss on one slot counts for the agent; at the limit he is logged out as a whole."""
        g = a.group
        assert g is not None
        count = a.misses[kind] + 1
        limit = self._limits[kind]
        at_limit = bool(limit) and count >= limit
        _, nxt = transition(a.state, I.MISS_LIMIT if at_limit else MISS_INPUT[kind], a.id)
        a.misses[kind] = count
        c = a.contact
        assert c is not None
        a.contact = None
        self._park(g)
        self._requeue(c, kind.value, now, out)   # first, so that the NEXT agent gets it
        if at_limit:
            out.append(AutoLogout(a.id, kind, count, now))
            g.presence, g.preason = A.LOGGED_OUT, f"auto-logout: {count} consecutive {kind.value}"
            self._gset(a, nxt, g.preason, now, out)
            self._withdraw_all(g, I.LOGOUT, "logout", now, out)
            self._logged_out(g.first, now, out)
        else:
            self._gset(a, nxt, kind.value, now, out)
        self._settle(g, now, out)

    def _g_end_wrap_up(self, a: AgentRt, reason: str, now: float, out: list[Action], settle: bool = True) -> None:
        """One slot's wrap-up ends; when it was the last thing he held, his pending wish applies."""
        g = a.group
        assert g is not None
        first = g.first
        pending = first.pending
        last = pending is not None and g.held() == 1
        to: AgentState
        if last:
            to = A.LOGGED_OUT if pending == "logout" else A.NOT_READY
        else:
            to = self._target(g, a)
        inp = (I.WRAP_UP_END if to is A.READY else
               I.WRAP_UP_END_LOGOUT if to is A.LOGGED_OUT else I.WRAP_UP_END_NOT_READY)
        _, nxt = transition(a.state, inp, a.id)
        a.wrap_tok = 0
        if last:
            g.presence, g.preason = to, first.pending_reason
            first.pending, first.pending_reason = None, ""
            reason = g.preason
        self._gset(a, nxt, reason, now, out)
        if last and to is A.LOGGED_OUT:
            self._logged_out(first, now, out)
        if settle:
            self._settle(g, now, out)

    def _g_end_wrap_ups(self, a: AgentRt, now: float) -> list[Action]:
        """end_wrap_up(agent): every slot in wrap-up ends it, then his slots settle once."""
        g = a.group
        assert g is not None
        slots = [s for s in g.slots if s.state is W_]
        if not slots:
            raise IllegalTransition(g.state, I.WRAP_UP_END, a.id)
        self._now = now
        out: list[Action] = []
        for s in slots:
            self._g_end_wrap_up(s, "wrap-up done", now, out, settle=False)
        self._settle(g, now, out)
        return out

    def _slot(self, a: AgentRt, contact_id: str, inp: AgentInput) -> AgentRt:
        """The slot of agent ``a`` holding ``contact_id``; else the error a one-slot agent gets."""
        g = a.group
        assert g is not None
        c = self._contacts.get(contact_id)
        if c is not None and c.agent is not None and c.agent.group is g:
            return c.agent
        transition(g.state, inp, a.id)
        if inp is I.CALL_END:
            raise EngineError(f"agent {a.id} is not working on contact {contact_id}")
        raise EngineError(f"contact {contact_id} is not offered to agent {a.id}")

    # ==== capacity changes ========================================================================

    def _regroup(self, a: AgentRt, now: float, out: list[Action]) -> None:
        """Match his slots to his profile's capacity (his queues are up to date); settle follows."""
        want = wants_slots(a.profile.capacity)
        g = a.group
        if g is None:
            if not want:
                return
            g = a.group = Group(a)
        g.mixed = sum(1 for n in a.profile.capacity.values() if n > 0) > 1
        g.single = not want
        have: dict[Channel | None, list[AgentRt]] = {}
        for s in g.slots[1:]:
            if not s.retired:
                have.setdefault(s.only, []).append(s)
        for ch in {*have, *want}:
            mine = have.get(ch, [])
            k = want.get(ch, 0) if ch is not None else 0
            for s in sorted(mine, key=lambda s: s.state in HELD)[:max(0, len(mine) - k)]:
                s.retired = True   # free ones first
            for _ in range(k - len(mine)):
                self._add_slot(g, ch, now)   # type: ignore[arg-type]
        for s in g.slots[1:]:
            s.profile, s.queues = a.profile, a.queues
            s.relist()

    def _add_slot(self, g: Group, ch: Channel, now: float) -> None:
        first = g.first
        s = AgentRt(first.profile, now)
        s.group, s.only = g, ch
        s.misses, s.personal, s.today, s.queues = first.misses, first.personal, first.today, first.queues
        g.slots.append(s)
        g.n[s.state] += 1
        for pr in first.projects:
            pr.extra += 1
            pr.set_limits()
        s.relist()

    def _drop(self, g: Group, s: AgentRt) -> None:
        if s.entry is not None:
            s.unindex()
        g.slots.remove(s)
        g.n[s.state] -= 1
        for pr in g.first.projects:
            pr.extra -= 1
            pr.set_limits()
        s.queues = []
        s.relist()   # clears its ring bits
